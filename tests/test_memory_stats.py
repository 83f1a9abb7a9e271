"""The weekly view: remediations count as overdue only from their creation; the chart reads well empty and full."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.context import ToolContext
from firebreak.memory import incident_log as log
from firebreak.memory.stats import ChartFormatError, WeekStats, render_chart, weekly_chart, weekly_stats

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


def _y_ticks(svg: str) -> list[str]:
    """The incident axis's tick labels (the left axis; pygal writes the secondary one at the right edge)."""
    axis = re.search(r'class="axis y[^"]*">(.*?)</g></g>', svg, re.S)
    assert axis is not None
    return re.findall(r'<text x="-5"[^>]*>([^<]*)<', axis.group(1))


def test_empty_chart_says_so_instead_of_drawing_an_axis(tmp_path: Path) -> None:
    svg = weekly_chart([_week(i) for i in range(8)])
    assert re.search(r'class="no_data">No incidents in these weeks<', svg)
    assert "<script" not in svg or "kozea.github.io" not in svg  # nothing fetched from the network
    render_chart([_week(i) for i in range(8)], str(tmp_path / "w.svg"))
    assert "<svg" in (tmp_path / "w.svg").read_text()
    with pytest.raises(ChartFormatError):
        render_chart([_week(i) for i in range(8)], str(tmp_path / "w.png"))


def test_full_chart_has_whole_ticks_from_zero_and_notes_with_each_week() -> None:
    weeks = [_week(i, minor=1, major=2, critical=1, rb=1, hf=2, overdue=3, ttm=40 + i) for i in range(8)]
    weeks[3] = _week(3, major=9, rb=2, overdue=1, ttm=90)
    svg = weekly_chart(weeks)
    ticks = _y_ticks(svg)
    assert ticks[0] == "0" and all(t.isdigit() for t in ticks) and int(ticks[-1]) >= 9
    assert "No incidents in these weeks<" not in svg
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+"[^>]*>(\d\d [A-Z][a-z][a-z][^<]*)<', svg)
    assert len(labels) == 8 and sum(x.endswith("(1 rb, 2 hf, 3 overdue)") for x in labels) == 7
    assert any(x.endswith("(2 rb, 1 overdue)") for x in labels)
    inline = weekly_chart(weeks, inline=True)
    assert not inline.lstrip().startswith("<?xml")
