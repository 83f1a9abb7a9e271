"""Errors that name their cause: a line that says which host's certificate failed, which dependency
timed out, which table holds damaged values. A change whose linked service's errors name a different
cause explains less; a change on a service that callers' errors name explains more."""

from __future__ import annotations

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature
from firebreak.agent.triage.observe import mentions_service
from firebreak.agent.triage.vocab import CERT_WORDS, DEPENDENCY_FAIL_WORDS, damage_strength

CHANGES = ("deploy", "config", "flag", "infra")


def _names_other_cause(text: str, service: str, ctx: Context) -> bool:
    low = text.lower()
    if any(w in low for w in CERT_WORDS) or damage_strength(text) == 2:
        return True
    return any(w in low for w in DEPENDENCY_FAIL_WORDS) and any(
        d != service and mentions_service(text, d, ctx.services) >= 0.9 for d in ctx.services
    )


@feature("errors_blame_elsewhere", CHANGES)
def errors_blame_elsewhere(cand: Candidate, ctx: Context) -> float:
    """Share of the linked service's new error weight whose lines name another cause (a failing dependency,
    a certificate, damaged data) rather than anything this change touches."""
    svc = cand.origin or cand.suspect.service
    st = ctx.states.get(svc or "")
    if st is None or not st.bad_patterns:
        return 0.0
    own = cand.suspect.service or ""
    total = sum(b.weight for b in st.bad_patterns) or 1.0
    named = 0.0
    for b in st.bad_patterns:
        if own and mentions_service(b.text, own, ctx.services) >= 0.9:
            continue
        if _names_other_cause(b.text, svc or "", ctx):
            named += b.weight
    return named / total


@feature("callers_name_service")
def callers_name_service(cand: Candidate, ctx: Context) -> float:
    """Share of services in trouble, other than the suspect's, whose new errors name its service failing."""
    svc = cand.suspect.service if cand.suspect.kind != "traffic" else None
    others = [s for s in ctx.anomalous if s != svc]
    if not svc or not others:
        return 0.0
    naming = 0
    for s in others:
        st = ctx.states[s]
        if any(
            mentions_service(b.text, svc, ctx.services) >= 0.9
            and any(w in b.text.lower() for w in DEPENDENCY_FAIL_WORDS)
            for b in st.bad_patterns
        ):
            naming += 1
    return naming / len(others)


@feature("change_on_suspect_service", ("dependency", "resource"))
def change_on_suspect_service(cand: Candidate, ctx: Context) -> float:
    """1 when a change landed on the suspect's service in the hour before the trouble (the change is the
    likelier cause; the exhausted resource or failing dependency its symptom)."""
    svc = cand.suspect.service
    onset = ctx.earliest_onset or ctx.f.incident_start()
    from firebreak.agent.triage.observe import parse_time

    for c in ctx.f.changes:
        t = parse_time(c.get("at"))
        if c.get("service") == svc and t is not None and -1 <= (onset - t).total_seconds() / 60.0 <= 60:
            return 1.0
    return 0.0
