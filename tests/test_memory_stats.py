"""The weekly view: remediations count as overdue only from their creation; the chart reads well empty and full."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from firebreak.context import ToolContext
from firebreak.memory import incident_log as log
from firebreak.memory.stats import WeekStats, chart_figure, render_chart, weekly_stats

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # a Thursday


def test_remediation_added_today_is_not_overdue_in_past_weeks(ctx: ToolContext) -> None:
    started = NOW - timedelta(weeks=4)
    with ctx.db.session() as s:
        inc = log.open_incident(s, title="Mailer OOM", services=["mailer"], severity="major", started_at=started,
                                  at=started, actor="t")
        log.add_remediation(s, inc, what="bounded cache", owner="ana", due=(NOW - timedelta(weeks=3)).date(),
                            at=NOW, actor="t")
    with ctx.db.session() as s:
        weeks = weekly_stats(s, weeks=5, now=NOW)
    assert [w.overdue_remediations for w in weeks] == [0, 0, 0, 0, 1]  # only the week it was written down


def _week(n: int, **kw: int) -> WeekStats:
    by = {"minor": kw.get("minor", 0), "major": kw.get("major", 0), "critical": kw.get("critical", 0)}
    return WeekStats(week_start=date(2026, 1, 5) + timedelta(weeks=n), incidents=sum(by.values()), by_severity=by,
                     hotfixes=kw.get("hf", 0), rollbacks=kw.get("rb", 0),
                     mean_minutes_to_mitigate=kw.get("ttm"), mean_minutes_to_resolve=None,
                     overdue_remediations=kw.get("overdue", 0))


def test_empty_chart_starts_at_zero_with_whole_ticks_and_says_so(tmp_path: Path) -> None:
    fig = chart_figure([_week(i) for i in range(8)])
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo == 0 and hi >= 1
    assert all(float(t).is_integer() for t in ax.get_yticks())
    assert "No incidents in these weeks" in [t.get_text() for t in ax.texts]
    render_chart([_week(i) for i in range(8)], str(tmp_path / "w.png"))
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_full_chart_keeps_notes_inside_the_plot() -> None:
    weeks = [_week(i, minor=1, major=2, critical=1, rb=1, hf=2, overdue=3, ttm=40 + i) for i in range(8)]
    weeks[3] = _week(3, major=9, rb=2, overdue=1, ttm=90)
    fig = chart_figure(weeks)
    ax = fig.axes[0]
    assert all(float(t).is_integer() for t in ax.get_yticks())
    fig.canvas.draw()
    plot_box = ax.get_window_extent()
    title_box = ax.title.get_window_extent()
    notes = [a for a in ax.texts if "overdue" in a.get_text()]
    assert len(notes) == 8
    for note in notes:
        box = note.get_window_extent()
        assert box.y1 <= plot_box.y1 and not box.overlaps(title_box)
