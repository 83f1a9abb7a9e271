"""Weekly indicators of the incident log: the view an executive committee reads."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from firebreak.memory.incident_log import SEVERITIES
from firebreak.memory.postmortem.schedule import DUE_SEVERITIES, due_at
from firebreak.state.incidents import Incident, Remediation, TimelineEntry
from firebreak.state.postmortems import PostMortemRow


class WeekStats(BaseModel):
    week_start: date
    incidents: int
    by_severity: dict[str, int]
    hotfixes: int
    rollbacks: int
    mean_minutes_to_mitigate: float | None
    mean_minutes_to_resolve: float | None
    overdue_remediations: int
    # Major/critical incidents whose post-mortem was due by the week's end and not yet published then.
    postmortems_due: int = 0


class Recurrence(BaseModel):
    last_30_days: int
    last_90_days: int
    sentence: str


def week_start(d: date) -> date:
    """ISO weeks start on Monday."""
    return d - timedelta(days=d.weekday())


def _start(inc: Incident) -> datetime | None:
    return inc.started_at or inc.detected_at


_SCHEDULED = re.compile(r"^Remediation #(\d+) scheduled")


def _created_times(session: Session) -> dict[int, datetime]:
    """When each remediation was written down, from the timeline entry `add_remediation` records (the
    table keeps no creation time; the timeline keeps every change). Imported ones may have none."""
    out: dict[int, datetime] = {}
    rows = session.execute(
        select(TimelineEntry.text, TimelineEntry.at).where(TimelineEntry.kind == "remediation")
    ).all()
    for text, at in rows:
        m = _SCHEDULED.match(text or "")
        if m:
            rid = int(m.group(1))
            aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            out[rid] = min(out.get(rid, aware), aware)
    return out


def _mean_minutes(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def weekly_stats(session: Session, *, weeks: int, now: datetime, postmortem_delay_hours: float | None = None
                 ) -> list[WeekStats]:
    """Per week (oldest first, the current week last): incidents by severity, hotfixes, rollbacks,
    mean time to mitigate and resolve (from when users were first hit), remediations overdue at week end
    (counted only from the week they were created in)."""
    first = week_start(now.date()) - timedelta(weeks=weeks - 1)
    first_dt = datetime.combine(first, time(), tzinfo=UTC)
    incidents = session.scalars(select(Incident)).all()
    remediations = session.scalars(select(Remediation).options(selectinload(Remediation.incident))).all()
    created = _created_times(session)
    published = dict(session.execute(select(PostMortemRow.incident_id, PostMortemRow.published_at)).tuples().all())
    due_times = [(due_at(inc.resolved_at, postmortem_delay_hours), published.get(inc.id))
                 for inc in incidents if inc.severity in DUE_SEVERITIES and inc.resolved_at is not None]
    out = []
    for i in range(weeks):
        ws = first + timedelta(weeks=i)
        ws_dt = first_dt + timedelta(weeks=i)
        we_dt = ws_dt + timedelta(weeks=1)
        in_week = [inc for inc in incidents if (s := _start(inc)) is not None and ws_dt <= s < we_dt]
        by_sev = {sev: sum(1 for inc in in_week if inc.severity == sev) for sev in SEVERITIES}
        ttm = [
            (inc.mitigated_at - s).total_seconds() / 60
            for inc in in_week if inc.mitigated_at and (s := _start(inc)) is not None
        ]
        ttr = [
            (inc.resolved_at - s).total_seconds() / 60
            for inc in in_week if inc.resolved_at and (s := _start(inc)) is not None
        ]
        week_end_day = (we_dt - timedelta(days=1)).date()
        overdue = sum(
            1 for r in remediations
            if r.due_date is not None and r.due_date < week_end_day and r.status != "cancelled"
            and (r.done_at is None or r.done_at >= we_dt) and ws_dt <= now
            and (_start(r.incident) or ws_dt) < we_dt
            and created.get(r.id, ws_dt) < we_dt  # one added today was not overdue in past weeks
        )
        out.append(WeekStats(
            week_start=ws, incidents=len(in_week), by_severity=by_sev,
            hotfixes=sum(1 for inc in in_week if inc.hotfix), rollbacks=sum(1 for inc in in_week if inc.rollback),
            mean_minutes_to_mitigate=_mean_minutes(ttm), mean_minutes_to_resolve=_mean_minutes(ttr),
            overdue_remediations=overdue,
            postmortems_due=sum(1 for due, pub in due_times if we_dt - timedelta(days=30) <= due < min(we_dt, now)
                                and (pub is None or pub >= we_dt)),
        ))
    return out


def overdue_remediations(session: Session, *, today: date) -> list[Remediation]:
    return list(session.scalars(
        select(Remediation).where(
            Remediation.status == "open", Remediation.due_date.is_not(None), Remediation.due_date < today
        ).order_by(Remediation.due_date)
    ))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def recurrence(session: Session, incident: Incident) -> Recurrence:
    """How many earlier incidents share a service and the root-cause category ("the 5th time this month")."""
    ref = _start(incident) or incident.created_at
    services = set(incident.services or [])
    others = session.scalars(
        select(Incident).where(Incident.id != incident.id, Incident.root_cause_category == incident.root_cause_category)
    ).all()

    def count(days: int) -> int:
        lo = ref - timedelta(days=days)
        return sum(
            1 for o in others
            if (s := _start(o)) is not None and lo <= s < ref and services & set(o.services or [])
        )

    c30, c90 = count(30), count(90)
    what = f"{', '.join(sorted(services)) or 'this service'} / {incident.root_cause_category}"
    if c30:
        sentence = f"the {_ordinal(c30 + 1)} time in 30 days ({what}); {c90} earlier in 90 days"
    elif c90:
        sentence = f"{c90} earlier incident(s) in 90 days ({what}), none in the last 30"
    else:
        sentence = f"no earlier incident in 90 days ({what})"
    return Recurrence(last_30_days=c30, last_90_days=c90, sentence=sentence)


def render_chart(stats: list[WeekStats], path: str) -> None:
    """Write the weekly chart (see `chart_figure`) as an image; the format follows the file's suffix."""
    fig = chart_figure(stats)  # selects the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)


def chart_figure(stats: list[WeekStats]) -> Any:
    """Stacked incidents by severity per week, with mean time to mitigate on a second axis.

    Reads well empty and full: whole-number incident ticks from 0, headroom so the per-week notes
    (rollbacks, hotfixes, overdue) stay inside the plot under the title, and a plain sentence when
    there is nothing to draw instead of an axis from -0.04 to 0.04.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = [s.week_start.strftime("%d %b") for s in stats]
    x = list(range(len(stats)))
    colors = {"minor": "#9ecae1", "major": "#fd8d3c", "critical": "#d62728"}
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    bottom = [0] * len(stats)
    for sev in SEVERITIES:
        vals = [s.by_severity.get(sev, 0) for s in stats]
        ax.bar(x, vals, bottom=bottom, color=colors[sev], label=sev)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(x, labels, rotation=0)
    ax.set_ylabel("incidents")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = max(bottom, default=0)
    ax.set_ylim(0, max(top, 1) * 1.35 + 0.5)  # room for the notes and the legend inside the plot
    ax.set_title("Incidents per week by severity, mean time to mitigate", pad=10)
    ttm = [s.mean_minutes_to_mitigate for s in stats]
    ax2 = ax.twinx()
    ax2.set_ylabel("minutes to mitigate")
    known = [v for v in ttm if v is not None]
    if known:
        ax2.plot(x, [v if v is not None else float("nan") for v in ttm], color="black", marker="o",
                 label="MTTM (min)")
        ax2.set_ylim(0, max(known) * 1.35 + 1)
    else:
        ax2.set_ylim(0, 60)
    for xi, s in zip(x, stats, strict=True):
        marks = []
        if s.rollbacks:
            marks.append(f"{s.rollbacks} rb")
        if s.hotfixes:
            marks.append(f"{s.hotfixes} hf")
        if s.overdue_remediations:
            marks.append(f"{s.overdue_remediations} overdue")
        if marks:
            ax.annotate(", ".join(marks), (xi, bottom[xi]), textcoords="offset points", xytext=(0, 4),
                        ha="center", va="bottom", fontsize=7, annotation_clip=True)
    if top == 0 and not known:
        ax.text(0.5, 0.5, "No incidents in these weeks", transform=ax.transAxes, ha="center", va="center",
                fontsize=11, color="#555555")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, ncols=4, frameon=False)
    fig.tight_layout()
    return fig
