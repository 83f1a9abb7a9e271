"""A drill's debrief in the shape of a post-mortem, so practice rehearses the "learn" step too.

The drill is over when this runs, so the scenario's own summary and root cause (hidden during the drill)
may be shown. The rest is the same draft a real incident gets, built from the drill world's records,
plus what the investigator (or the person practising) got right and wrong.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.memory.postmortem.draft import draft
from firebreak.memory.postmortem.model import PostMortem, Source, Why
from firebreak.simulations.scenario import Scenario
from firebreak.state.incidents import Incident


def _verdicts(result: dict[str, object], who: str) -> tuple[list[str], list[str]]:
    good: list[str] = []
    bad: list[str] = []
    rank = result.get("rank")
    if rank == 1:
        good.append(f"{who} put the real culprit first.")
    elif isinstance(rank, int):
        bad.append(f"{who} ranked the real culprit at position {rank}: what pointed elsewhere first?")
    else:
        bad.append(f"{who} did not name the real culprit among its hypotheses.")
    if result.get("mitigation_ok"):
        good.append("The proposed fix was one the scenario accepts.")
    else:
        bad.append("The proposed fix was not one the scenario accepts.")
    if result.get("severity_ok") is False:
        bad.append("The severity differed from the scenario's.")
    return good, bad


def debrief(ctx: ToolContext, sc: Scenario, result: dict[str, object], *, now: datetime,
            who: str = "The investigator") -> PostMortem | None:
    """The drill's post-mortem: None when the drill opened no incident (nothing to debrief)."""
    with ctx.db.session() as s:
        incident = s.scalars(select(Incident).where(Incident.source != "history")
                             .order_by(Incident.created_at)).first()
        if incident is None:
            return None
        pm = draft(s, incident, now=now, update_minutes=ctx.settings.update_minutes)
    pm.title = f"Drill debrief: {sc.title}"
    if sc.summary:
        pm.summary = sc.summary.strip()
    pm.root_cause = sc.truth.root_cause
    pm.root_cause_category = sc.truth.culprit.kind
    pm.whys.insert(1, Why(question="What was the real cause?", answer=sc.truth.root_cause, source=Source.RECORDS))
    pm.whys = pm.whys[:5]
    good, bad = _verdicts(result, who)
    pm.went_well = good + pm.went_well
    pm.went_badly = bad + pm.went_badly
    return pm
