"""The customer version: impact in plain words, built from categories, never from internal free text.

Internal text (titles, evidence, action items) carries service names, hosts, versions and people. The
customer version is therefore written from structured facts (the cause category, the action that ran,
times and severity) through fixed sentences, then scrubbed once more for anything that looks internal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from firebreak.memory.postmortem.model import CustomerPostMortem, PostMortem

WHAT_HAPPENED = {
    "deploy": "A software update we released introduced a fault.",
    "config": "A configuration change in our systems introduced a fault.",
    "flag": "A feature we switched on behaved in a way we did not expect.",
    "dependency": "A provider or system we depend on stopped working correctly.",
    "resource": "One of our systems ran out of capacity.",
    "traffic": "An unusual surge of traffic overloaded part of our systems.",
    "certificate": "A security certificate expired, so some secure connections failed.",
    "data": "Some data in our systems was damaged.",
    "infra": "A change to our infrastructure introduced a fault.",
}
WHAT_WE_DID = {
    "rollback": "We rolled back the update.",
    "disable_flag": "We switched the feature off.",
    "enable_flag": "We switched to a backup path.",
    "set_flag_variant": "We switched the feature to a safe setting.",
    "revert_config": "We reverted the configuration change.",
    "restart": "We restarted the affected system.",
    "scale": "We added capacity.",
    "failover": "We moved to a standby system.",
    "block_traffic": "We blocked the source of the excess traffic.",
    "renew_certificate": "We renewed the certificate.",
    "restore_data": "We restored the damaged data.",
}
WHAT_WE_CHANGE = {
    "deploy": "We are adding checks that catch this kind of fault before an update reaches everyone.",
    "config": "We are adding validation so that configuration changes like this one are caught before they apply.",
    "flag": "We are rolling out features more gradually, with an automatic switch-off on errors.",
    "dependency": "We are making our systems keep working when a provider fails.",
    "resource": "We are adding capacity alerts that warn us well before a limit is reached.",
    "traffic": "We are adding limits so that one source of traffic cannot overload our systems.",
    "certificate": "We are renewing certificates automatically, well before they expire.",
    "data": "We are adding checks on the data we import and rehearsing our restore procedure.",
    "infra": "We are adding safeguards to infrastructure changes.",
}
IMPACT = {
    "critical": "Most users could not use part of our service",
    "major": "Some users saw errors or slow responses",
    "minor": "A small number of users saw a degraded feature",
}
HOST = re.compile(r"\b(?:[a-z0-9-]+\.)+[a-z]{2,}\b|\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[\w.+-]+@[\w-]+\.[\w.]+\b",
                  re.IGNORECASE)
VERSION = re.compile(r"\bv?\d+\.\d+(?:\.\d+)?\b")


def scrub(text: str, names: Iterable[str]) -> str:
    """Remove hosts, addresses, versions and any known internal name (people, services)."""
    out = HOST.sub("[internal]", text)
    out = VERSION.sub("", out)
    for name in sorted({n for n in names if n and len(n) > 1}, key=len, reverse=True):
        out = re.sub(rf"\b{re.escape(name)}\b", "[internal]", out, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", out).strip()


def customer_version(pm: PostMortem, *, executed_actions: list[str], internal_names: Iterable[str],
                     slow_detection: bool) -> CustomerPostMortem:
    names = list(internal_names)
    what = WHAT_HAPPENED.get(pm.root_cause_category, "We are still confirming the cause.")
    impact = IMPACT.get(pm.impact.severity, IMPACT["major"])
    if pm.impact.started_at and pm.impact.ended_at:
        start = pm.impact.started_at.strftime("%Y-%m-%d %H:%M")
        end = pm.impact.ended_at.strftime("%H:%M")
        minutes = round((pm.impact.ended_at - pm.impact.started_at).total_seconds() / 60)
        impact += f" between {start} and {end} UTC ({minutes} minutes)."
    else:
        impact += "."
    did = " ".join(WHAT_WE_DID[a] for a in dict.fromkeys(executed_actions) if a in WHAT_WE_DID)
    changing = [WHAT_WE_CHANGE[pm.root_cause_category]] if pm.root_cause_category in WHAT_WE_CHANGE else []
    if slow_detection:
        changing.append("We are improving our monitoring so that we notice problems like this sooner.")
    return CustomerPostMortem(
        title=scrub("Incident report: service disruption", names),
        what_happened=scrub(what, names),
        impact=scrub(impact, names),
        started_at=pm.impact.started_at,
        ended_at=pm.impact.ended_at,
        what_we_did=scrub(did or "Our engineers restored normal service.", names),
        what_we_are_changing=[scrub(c, names) for c in changing],
    )
