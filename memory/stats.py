"""Weekly indicators of the incident log: the view an executive committee reads."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

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


class ChartFormatError(ValueError):
    """The chart file's suffix names a format the chart is not written in."""


SEVERITY_COLORS = {"minor": "#9ecae1", "major": "#fd8d3c", "critical": "#d62728"}


def week_notes(s: WeekStats) -> str:
    """The week's rollbacks, hotfixes and overdue fixes in a few characters, for under its bar."""
    marks = [f"{n} {what}" for n, what in ((s.rollbacks, "rb"), (s.hotfixes, "hf"),
                                           (s.overdue_remediations, "overdue")) if n]
    return ", ".join(marks)


def render_chart(stats: list[WeekStats], path: str) -> None:
    """Write the weekly chart (see `weekly_chart`) as SVG; any other suffix is refused with a reason."""
    if not path.lower().endswith(".svg"):
        raise ChartFormatError(f"the chart is written as SVG: name the file *.svg, not {path!r}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(weekly_chart(stats))


def weekly_chart(stats: list[WeekStats], *, inline: bool = False) -> str:
    """Stacked incidents by severity per week, mean minutes to mitigate on a second axis, as SVG.

    pygal draws it (a small pure-Python SVG library, so the install carries no plotting stack). Reads
    well empty and full: whole-number incident ticks from 0, each week's notes (rollbacks, hotfixes,
    overdue fixes) in its slanted label rather than over the bars, and a plain sentence when there is nothing
    to draw. `inline` drops the XML declaration so the SVG can sit inside an HTML page.
    """
    import pygal
    from pygal.style import Style

    top = max((sum(s.by_severity.get(sev, 0) for sev in SEVERITIES) for s in stats), default=0)
    step = max(1, -(-top // 8))  # at most about eight whole-number ticks
    known = [s.mean_minutes_to_mitigate for s in stats if s.mean_minutes_to_mitigate is not None]
    style = Style(colors=(*SEVERITY_COLORS.values(), "#222222"), background="white", plot_background="white",
                  font_family="sans-serif")
    chart = pygal.StackedBar(
        title="Incidents per week by severity, mean time to mitigate", y_title="incidents",
        style=style, width=1000, height=480, legend_at_bottom=True, legend_at_bottom_columns=4,
        truncate_label=-1,
        x_label_rotation=25 if any(week_notes(s) for s in stats) else 0,  # long labels slant, never overlap
        no_data_text="No incidents in these weeks", disable_xml_declaration=inline, print_values=False, js=[],
    )
    chart.x_labels = [s.week_start.strftime("%d %b") + (f" ({week_notes(s)})" if week_notes(s) else "")
                      for s in stats]
    if top or known:
        chart.config.y_labels = list(range(0, max(top, 1) + step, step))
        for sev in SEVERITIES:
            chart.add(sev, [s.by_severity.get(sev, 0) or None for s in stats])
        chart.add("minutes to mitigate", [s.mean_minutes_to_mitigate for s in stats], secondary=True)
    rendered: str = chart.render(is_unicode=True)
    return rendered
