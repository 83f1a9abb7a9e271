"""`firebreak drill history`: each person's drills, and who has not practised lately."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.settings import get_settings


class RunRow(BaseModel):
    id: str
    scenario: str
    person: str
    mode: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    rank: int | None = None
    hit_at_1: bool | None = None
    mitigation_ok: bool | None = None


class PersonRow(BaseModel):
    person: str
    drills: int
    answered: int
    hit_at_1: int
    right_fix: int
    last_practice: datetime | None


class History(BaseModel):
    days: int
    runs: list[RunRow] = Field(default_factory=list)
    people: list[PersonRow] = Field(default_factory=list)
    not_lately: list[str] = Field(default_factory=list)


def _known_people(ctx: ToolContext) -> set[str]:
    """On-call people: approvers and named web users, besides everyone who has drilled."""
    people = set(ctx.settings.approvers)
    try:
        from firebreak.state.users import User

        with ctx.db.session() as s:
            people.update(s.scalars(select(User.name)))
    except Exception:  # an older database without the users table
        pass
    return people


def drill_history(days: int = 30, ctx: ToolContext | None = None, now: datetime | None = None) -> History:
    """Runs newest first, per-person totals, and who has no practice drill in the last `days` days."""
    from firebreak.state.drills import DrillRun

    own = ctx is None
    context = ctx or ToolContext(settings=get_settings())
    try:
        moment = now or context.clock.now()
        with context.db.session() as s:
            rows = list(s.scalars(select(DrillRun).order_by(DrillRun.started_at.desc())))
            runs = []
            for r in rows:
                res: dict[str, Any] = r.result or {}
                runs.append(RunRow(id=r.id, scenario=r.scenario_id, person=r.person, mode=r.mode,
                                   started_at=r.started_at, finished_at=r.finished_at,
                                   status=str(res.get("status") or ("done" if r.finished_at else "running")),
                                   rank=res.get("rank"), hit_at_1=res.get("hit_at_1"),
                                   mitigation_ok=res.get("mitigation_ok")))
        per: dict[str, PersonRow] = {}
        for run in runs:
            if run.mode != "practice":
                continue
            row = per.setdefault(run.person, PersonRow(person=run.person, drills=0, answered=0, hit_at_1=0,
                                                       right_fix=0, last_practice=None))
            row.drills += 1
            if run.status == "answered":
                row.answered += 1
                row.hit_at_1 += int(bool(run.hit_at_1))
                row.right_fix += int(bool(run.mitigation_ok))
                if row.last_practice is None or run.started_at > row.last_practice:
                    row.last_practice = run.started_at
        cutoff = moment - timedelta(days=days)
        people = _known_people(context) | set(per)
        stale = sorted(p for p in people if p not in per or per[p].last_practice is None
                       or per[p].last_practice < cutoff)  # type: ignore[operator]
        return History(days=days, runs=runs, people=sorted(per.values(), key=lambda p: p.person),
                       not_lately=stale)
    finally:
        if own:
            context.close()


def print_history(h: History, console: Console) -> None:
    """Runs (ids whole: `firebreak transcripts show ID` opens a kept run), then people."""
    from firebreak.tables import Col, fit_table

    if not h.runs:
        console.print("No drill has run yet: `firebreak drill run FILE` or `firebreak drill practice FILE`.")
    else:
        cols = [Col("Run", "id"), Col("Started (UTC)", drop=1), Col("Who", drop=3), Col("Scenario", "id"),
                Col("Mode", drop=2), Col("Status", drop=4), Col("Rank"), Col("Fix")]
        console.print(fit_table(cols, [
            [r.id, r.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"), r.person, r.scenario, r.mode, r.status,
             str(r.rank) if r.rank is not None else "–",
             "–" if r.mitigation_ok is None else ("right" if r.mitigation_ok else "wrong")] for r in h.runs[:50]
        ], title="Drills", console=console))
        if any(r.id.startswith("drill-") for r in h.runs[:50]):
            console.print("Report and transcript of a run: `firebreak transcripts show RUN`.", highlight=False)
    if h.people:
        cols = [Col("Person", "id"), Col("Drills", justify="right"), Col("Answered", justify="right", drop=1),
                Col("Hit@1", justify="right"), Col("Right fix", justify="right"), Col("Last practice")]
        console.print(fit_table(cols, [
            [p.person, str(p.drills), str(p.answered), str(p.hit_at_1), str(p.right_fix),
             p.last_practice.strftime("%Y-%m-%d") if p.last_practice else "never"] for p in h.people
        ], title="People", console=console))
    if h.not_lately:
        console.print(f"Not practised in the last {h.days} days: {', '.join(h.not_lately)}", highlight=False)
    elif h.people:
        console.print(f"Everyone has practised in the last {h.days} days.")
    else:
        console.print("No on-call people known yet: set FIREBREAK_APPROVERS or add web users.")
