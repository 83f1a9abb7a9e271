"""Blameless by construction: flag wording that blames a person and suggest a system-level phrasing.

A post-mortem that says "Bob forgot to run the migration" teaches nothing and stops people from
speaking up next time; "nothing in the deploy ran or checked the migration" names the gap to fix. The
check is deliberately simple and explainable: known names (users, approvers, change authors, people in
the timeline), a capitalised name before a failure verb, and blame vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from firebreak.memory.postmortem.model import BlamelessFinding, PostMortem

BLAME_WORDS = re.compile(
    r"\b(human error|operator error|user error|careless(?:ly|ness)?|negligen(?:t|ce)|sloppy|incompetent|lazy|"
    r"should have known|should have checked|messed up|screwed up|fault of|(?:his|her|their) fault|"
    r"to blame|blamed?|didn't bother|did not bother)\b",
    re.IGNORECASE,
)
FAILURE_VERBS = (r"forgot|forgets|forgotten|neglected|failed to|missed|ignored|broke|screwed|messed|overlooked|"
                 r"didn't|did not|accidentally|mistakenly|wrongly|should have")
PERSON_VERB = re.compile(rf"\b([A-Z][a-z]{{1,20}})\s+(?:{FAILURE_VERBS})\b(?P<rest>[^.;\n]*)")
FORGOT_TO = re.compile(r"\b(?:forgot|neglected|failed|did not|didn't)\s+(?:to\s+)?(?P<what>[^.;\n]+)", re.IGNORECASE)
# Capitalised words that start sentences, not people.
NOT_NAMES = frozenset(str.split("""The This That These Those It We Our Nothing Nobody Someone No A An When While
    After Before
    Since Because If Then And But Or Users Customers Alerts Alert Deploy Deploys Monitoring Grafana Sentry Slack
    Prometheus Kubernetes Postgres Redis Why What Who How Impact Root Cause Action Timeline Summary"""))


def _suggest(sentence: str) -> str:
    m = FORGOT_TO.search(sentence)
    if m:
        what = m.group("what").strip().rstrip(".")
        return (f"Nothing in the process made sure to {what} (no automated step, check or reminder); "
                "describe that gap and how the system will close it.")
    return ("Describe what in the system allowed this (a missing check, an unclear runbook, a tool that did "
            "not warn) rather than who did it.")


def check_text(section: str, text: str, names: Iterable[str] = ()) -> list[BlamelessFinding]:
    findings: list[BlamelessFinding] = []
    known = {n.strip() for n in names if n and len(n.strip()) > 1}
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        if not sentence.strip():
            continue
        hit = BLAME_WORDS.search(sentence)
        if hit:
            findings.append(BlamelessFinding(section=section, excerpt=sentence.strip()[:200],
                                             rule=f"blame wording: {hit.group(0)!r}", suggestion=_suggest(sentence)))
            continue
        pm = PERSON_VERB.search(sentence)
        if pm and pm.group(1) not in NOT_NAMES:
            findings.append(BlamelessFinding(section=section, excerpt=sentence.strip()[:200],
                                             rule=f"a person as the cause: {pm.group(1)!r}",
                                             suggestion=_suggest(sentence)))
            continue
        for name in known:
            if re.search(rf"\b{re.escape(name)}\b", sentence) and re.search(FAILURE_VERBS, sentence, re.IGNORECASE):
                findings.append(BlamelessFinding(section=section, excerpt=sentence.strip()[:200],
                                                 rule=f"a person as the cause: {name!r}",
                                                 suggestion=_suggest(sentence)))
                break
    return findings


def check(pm: PostMortem, names: Iterable[str] = ()) -> list[BlamelessFinding]:
    """Every free-text section a person may have edited, checked for blame."""
    names = list(names)
    sections: list[tuple[str, str]] = [("summary", pm.summary), ("root_cause", pm.root_cause),
                                       ("impact", pm.impact.who + "\n" + pm.impact.lost_or_delayed)]
    sections += [(f"whys[{i}]", w.answer) for i, w in enumerate(pm.whys)]
    sections += [(f"contributing_factors[{i}]", t) for i, t in enumerate(pm.contributing_factors)]
    sections += [(f"went_well[{i}]", t) for i, t in enumerate(pm.went_well)]
    sections += [(f"went_badly[{i}]", t) for i, t in enumerate(pm.went_badly)]
    sections += [(f"action_items[{i}]", a.what) for i, a in enumerate(pm.action_items)]
    out: list[BlamelessFinding] = []
    for section, text in sections:
        out.extend(check_text(section, text, names))
    return out
