"""Scoring a triage report (or a trainee's answer) against a scenario's `truth`.

The only module that reads `truth`. Matching follows the spec: kind equal, ref equal
case-insensitively (versions compared as strings), services equal where both name one; a fix is
right when its action equals a listed one and every field that entry gives is equal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from firebreak.simulations.scenario import Mitigation, SuspectRef, Truth

if TYPE_CHECKING:
    from firebreak.simulations.recorded.model import RecordedTruth


class SuspectIn(BaseModel):
    """A suspect as a report or a trainee names it."""

    kind: str
    service: str | None = None
    ref: str


class Score(BaseModel):
    rank: int | None
    hit_at_1: bool
    hit_at_3: bool
    mitigation_ok: bool
    severity_ok: bool | None


def _norm(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip().casefold()


def suspect_matches(suspect: SuspectIn, target: SuspectRef) -> bool:
    if _norm(suspect.kind) != target.kind:
        return False
    if _norm(suspect.ref) != _norm(target.ref):
        return False
    return not (suspect.service and target.service and _norm(suspect.service) != _norm(target.service))


def matches_truth(suspect: SuspectIn, truth: Truth | RecordedTruth) -> bool:
    return any(suspect_matches(suspect, t) for t in [truth.culprit, *truth.also_accept])


def fix_matches(fix: dict[str, Any] | None, mitigations: list[Mitigation]) -> bool:
    """`fix` in the flat spec shape: {"action": "rollback", "service": "mailer", "to": "4.6.1"}."""
    if not fix or "action" not in fix:
        return False
    for m in mitigations:
        if _norm(fix["action"]) != m.action:
            continue
        if all(k in fix and fix[k] is not None and _norm(fix[k]) == _norm(v) for k, v in m.fields().items()):
            return True
    return False


def rank_of(suspects: list[SuspectIn], truth: Truth | RecordedTruth) -> int | None:
    for i, s in enumerate(suspects, start=1):
        if matches_truth(s, truth):
            return i
    return None


def score(suspects: list[SuspectIn], fix: dict[str, Any] | None, severity: str | None, truth: Truth) -> Score:
    """Rank of the first right suspect, hit@1/@3, right fix, right severity (None when truth gives none)."""
    rank = rank_of(suspects, truth)
    sev_ok = None if truth.severity is None else (severity is not None and _norm(severity) == truth.severity)
    return Score(
        rank=rank,
        hit_at_1=rank == 1,
        hit_at_3=rank is not None and rank <= 3,
        mitigation_ok=fix_matches(fix, truth.mitigations),
        severity_ok=sev_ok,
    )


def blamed_service(suspect: SuspectIn) -> str | None:
    """The service a hypothesis blames: its service, or for a dependency suspect the dependency (its ref)."""
    if _norm(suspect.kind) == "dependency":
        return suspect.ref
    return suspect.service


def _target_service(target: SuspectRef) -> str | None:
    return target.ref if target.kind == "dependency" and not target.service else target.service


def service_rank(suspects: list[SuspectIn], truth: RecordedTruth) -> int | None:
    """`level: service`: 1-based position of the first hypothesis whose blamed service is the culprit's
    (or one of `also_accept`'s), hypotheses counted as given, so hit@k reads the first k hypotheses."""
    targets = {_norm(s) for s in (_target_service(t) for t in [truth.culprit, *truth.also_accept]) if s}
    for i, s in enumerate(suspects, start=1):
        service = blamed_service(s)
        if service and _norm(service) in targets:
            return i
    return None


def acts_on(fix: dict[str, Any] | None, service: str | None) -> bool:
    """A fix that acts on the service: its `service` parameter names it."""
    return bool(fix and service and fix.get("service") is not None and _norm(fix["service"]) == _norm(service))


def score_recorded(suspects: list[SuspectIn], fix: dict[str, Any] | None, severity: str | None,
                   truth: RecordedTruth) -> Score:
    """A recorded incident: service level, or suspect level as drills; a fix is right when it is listed in
    `truth.mitigations` or (none listed, or service level) acts on the culprit's service."""
    rank = service_rank(suspects, truth) if truth.level == "service" else rank_of(suspects, truth)
    fix_ok = fix_matches(fix, truth.mitigations)
    if not fix_ok and (truth.level == "service" or not truth.mitigations):
        fix_ok = acts_on(fix, _target_service(truth.culprit))
    sev_ok = None if truth.severity is None else (severity is not None and _norm(severity) == truth.severity)
    return Score(rank=rank, hit_at_1=rank == 1, hit_at_3=rank is not None and rank <= 3, mitigation_ok=fix_ok,
                 severity_ok=sev_ok)


def ac_at(ranks: list[int | None], k: int) -> float:
    """AC@k: the share of cases whose culprit is within the first k."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def avg_at(ranks: list[int | None], k: int = 5) -> float:
    """Avg@k: the mean of AC@1..AC@k."""
    return sum(ac_at(ranks, j) for j in range(1, k + 1)) / k if ranks else 0.0


def describe_truth(truth: Truth) -> dict[str, Any]:
    """The truth as shown in a debrief, after the drill is over."""
    culprit = truth.culprit.model_dump(exclude_none=True)
    return {
        "culprit": culprit,
        "also_accept": [a.model_dump(exclude_none=True) for a in truth.also_accept],
        "root_cause": truth.root_cause,
        "severity": truth.severity,
        "mitigations": [{"action": m.action, **m.fields()} for m in truth.mitigations],
    }
