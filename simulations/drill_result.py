"""A drill's result: which report the drill is scored on, the score in the spec's JSON shape, the
naive baselines beside it, and the common end of a drill or a recorded incident.

Only this module (through `simulations.scorer`) reads the scenario's `truth`, after the investigation is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from firebreak.context import ToolContext
from firebreak.kinds import SEVERITIES
from firebreak.simulations.drill_env import DrillEnv
from firebreak.simulations.scenario import Scenario
from firebreak.simulations.scorer import SuspectIn, score
from firebreak.simulations.timeline import Progress, count_drill_incidents

# minor 1, major 2, critical 3: the most severe incident is the drill's.
SEVERITY_RANK = {s: i + 1 for i, s in enumerate(SEVERITIES)}


class HypothesisOut(BaseModel):
    title: str
    suspect: dict[str, Any]
    confidence: float


class DrillResult(BaseModel):
    """One drill's outcome, exactly the JSON object the spec gives (`details` stays out of it)."""

    scenario: str
    investigator: str
    rank: int | None
    hit_at_1: bool
    hit_at_3: bool
    mitigation_ok: bool
    severity_ok: bool | None
    alerts_delivered: int
    incidents_opened: int
    hypotheses: list[HypothesisOut]
    proposed_fix: dict[str, Any] | None
    tool_calls: int
    wall_seconds: float
    details: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def spec_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass
class Triage:
    """The report the drill is scored on and where it came from."""

    incident_id: str | None = None
    investigation_id: str | None = None
    report: dict[str, Any] | None = None
    tool_calls: int = 0
    investigator: str | None = None


def read_triage(ctx: ToolContext) -> Triage:
    """The drill's incident: the most severe one with a finished report, then most alerts, then earliest."""
    from firebreak.state.alerts import Alert
    from firebreak.state.incidents import Incident
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:
        rows = list(s.execute(
            select(Investigation, Incident).join(Incident, Incident.id == Investigation.incident_id)
            .where(Investigation.report.is_not(None), Incident.source != "history")
        ))
        if not rows:
            return Triage()
        alert_counts = dict(s.execute(
            select(Alert.incident_id, func.count()).where(Alert.incident_id.is_not(None)).group_by(Alert.incident_id)
        ).tuples().all())

        def key(row: Any) -> tuple[int, int, float]:
            inv, inc = row
            return (-SEVERITY_RANK.get(str((inv.report or {}).get("severity") or inc.severity), 0),
                    -int(alert_counts.get(inc.id, 0)), (inc.created_at or inv.queued_at).timestamp())

        inv, inc = min(rows, key=key)
        return Triage(inc.id, inv.id, dict(inv.report or {}), len(inv.tool_calls or []), inv.model)


def suspects_of(report: dict[str, Any] | None) -> list[SuspectIn]:
    out = []
    for h in (report or {}).get("hypotheses") or []:
        sus = h.get("suspect") or {}
        if sus.get("kind") and sus.get("ref") is not None:
            out.append(SuspectIn(kind=str(sus["kind"]), service=sus.get("service"), ref=str(sus["ref"])))
    return out


def flat_fix(fix: dict[str, Any] | None) -> dict[str, Any] | None:
    """A report's ProposedFix as the spec's flat object {"action", ...parameters}."""
    if not fix:
        return None
    return {"action": fix.get("action"), **(fix.get("parameters") or {})}


def result_of(sc: Scenario, env: DrillEnv, progress: Progress, triage: Triage, started: float) -> DrillResult:
    report = triage.report
    fix = flat_fix((report or {}).get("proposed_fix"))
    sc_score = score(suspects_of(report), fix, (report or {}).get("severity"), sc.truth)
    hyps = [HypothesisOut(title=str(h.get("title", "")), suspect=dict(h.get("suspect") or {}),
                          confidence=float(h.get("confidence") or 0.0))
            for h in (report or {}).get("hypotheses") or []]
    investigator = str((report or {}).get("investigator") or triage.investigator or env.settings.model)
    if (report or {}).get("fallback") and env.settings.model != investigator:
        investigator = f"{investigator} (fallback from {env.settings.model})"
    return DrillResult(
        scenario=sc.id, investigator=investigator, rank=sc_score.rank, hit_at_1=sc_score.hit_at_1,
        hit_at_3=sc_score.hit_at_3, mitigation_ok=sc_score.mitigation_ok, severity_ok=sc_score.severity_ok,
        alerts_delivered=progress.alerts_delivered, incidents_opened=count_drill_incidents(env.ctx),
        hypotheses=hyps, proposed_fix=fix, tool_calls=triage.tool_calls,
        wall_seconds=round(time.perf_counter() - started, 3),
        details={"incident": triage.incident_id, "investigation": triage.investigation_id,
                 "severity": (report or {}).get("severity"), "summary": (report or {}).get("summary"),
                 "refused": progress.refused, "triage_error": progress.triage_error,
                 "triaged_at": progress.triaged_at.isoformat() if progress.triaged_at else None,
                 "title": sc.title},
    )


def drill_baselines(sc: Scenario, env: DrillEnv, progress: Progress) -> dict[str, dict[str, Any]]:
    """The naive rankers of `simulations.baselines` on this drill, from the stores, by the same scorer."""
    from firebreak.simulations.baselines import run_baselines

    until = progress.triaged_at or env.clock.now()
    return run_baselines(env.ctx, until, lambda suspects, fix: score(suspects, fix, None, sc.truth))


def failed_result(sc: Scenario, error: str) -> DrillResult:
    """A drill the machinery could not finish: scored as a miss, the error kept in the details."""
    return DrillResult(scenario=sc.id, investigator="none", rank=None, hit_at_1=False, hit_at_3=False,
                       mitigation_ok=False, severity_ok=None if sc.truth.severity is None else False,
                       alerts_delivered=0, incidents_opened=0, hypotheses=[], proposed_fix=None, tool_calls=0,
                       wall_seconds=0.0, details={"error": error})


def finish(result: DrillResult, env: DrillEnv, counts: dict[str, int], marks: dict[str, float], *,
           keep_dir: Path | None, on_done: Callable[[ToolContext, DrillResult], None] | None) -> DrillResult:
    """The common end of a drill or a recorded incident: counts, timings, where it was kept, the hook."""
    result.details.update(counts)
    result.details["timings"] = {k: round(v, 3) for k, v in marks.items()}
    result.details["data_dir"] = str(env.data_dir) if keep_dir else None
    if on_done is not None:
        on_done(env.ctx, result)
    return result
