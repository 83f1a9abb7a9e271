"""Web pages drawn as inline SVG: the weekly indicators and the embedded dashboards.

Split from server.web (which includes this router) so each module keeps one job; the charts are plain
geometry computed here and drawn by the templates, with no JavaScript.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from firebreak.server.deps import Ctx
from firebreak.server.web import _fmt_minutes, render, signed_in

router = APIRouter(include_in_schema=False)


# --- indicators -----------------------------------------------------------------------------------

SEVERITY_COLORS = {"minor": "#9bb8d3", "major": "#e0a03c", "critical": "#c8412c"}


class ChartBar(BaseModel):
    x: float
    y: float
    w: float
    h: float
    color: str
    label: str


def _bar_chart(weeks: list[dict[str, Any]], series: list[tuple[str, str, str]], *, stacked: bool,
               unit: str) -> dict[str, Any]:
    """Geometry of an inline SVG bar chart; `series` is (key, label, color), values None are skipped."""
    width, height, left, bottom, top = 640, 220, 44, 28, 12
    n = max(len(weeks), 1)
    slot = (width - left - 8) / n

    def total(w: dict[str, Any]) -> float:
        vals = [w.get(k) or 0 for k, _, _ in series]
        return float(sum(vals) if stacked else max(vals or [0]))

    peak = max([total(w) for w in weeks] + [1.0])
    if stacked:  # counts: whole numbers on the axis
        peak = float(math.ceil(peak))
    scale = (height - bottom - top) / peak
    bars: list[ChartBar] = []
    for i, w in enumerate(weeks):
        x0 = left + i * slot + slot * 0.15
        bw = slot * 0.7
        base = float(height - bottom)
        for j, (key, label, color) in enumerate(series):
            v = w.get(key)
            if v is None or v == 0:
                continue
            h = float(v) * scale
            if stacked:
                bars.append(ChartBar(x=x0, y=base - h, w=bw, h=h, color=color, label=f"{w['label']}: {v} {label}"))
                base -= h
            else:
                sub = bw / len(series)
                bars.append(ChartBar(x=x0 + j * sub, y=base - h, w=sub, h=h, color=color,
                                     label=f"{w['label']}: {label} {_fmt_minutes(float(v))}"))
    ticks = sorted({round(peak * f) if stacked else round(peak * f, 1) for f in (0.0, 0.5, 1.0)})
    return {
        "width": width, "height": height, "left": left, "bottom": bottom, "bars": bars, "unit": unit,
        "yticks": [{"y": height - bottom - t * scale, "label": f"{t:g}"} for t in ticks],
        "xlabels": [{"x": left + i * slot + slot / 2, "label": w["label"]} for i, w in enumerate(weeks)],
        "legend": [{"label": label, "color": color} for _, label, color in series],
        "empty": not bars,
    }


@router.get("/indicators", response_class=HTMLResponse)
def indicators(ctx: Ctx, request: Request, weeks: int = 12, user: str = Depends(signed_in)) -> HTMLResponse:
    weeks = max(1, min(weeks, 104))
    from firebreak.memory.stats import weekly_stats

    with ctx.db.session() as s:
        stats = weekly_stats(s, weeks=weeks, now=ctx.clock.now(),
                             postmortem_delay_hours=ctx.settings.postmortem_delay_hours)
    rows = [
        {"label": w.week_start.strftime("%d %b"), "week_start": w.week_start, "incidents": w.incidents,
         **w.by_severity, "mttm": w.mean_minutes_to_mitigate, "mttr": w.mean_minutes_to_resolve,
         "hotfixes": w.hotfixes, "rollbacks": w.rollbacks, "overdue": w.overdue_remediations,
         "postmortems_due": w.postmortems_due}
        for w in stats
    ]
    sev_chart = _bar_chart(rows, [(k, k, c) for k, c in SEVERITY_COLORS.items()], stacked=True, unit="incidents")
    # Minutes are shown in hours when they are large; the axis stays in minutes for one scale.
    time_chart = _bar_chart(rows, [("mttm", "MTTM", "#4f7cac"), ("mttr", "MTTR", "#8a5a9e")], stacked=False,
                            unit="minutes")
    return render(request, ctx, "indicators.html", rows=rows, weeks=weeks, sev_chart=sev_chart,
                  time_chart=time_chart, now=ctx.clock.now())


# --- dashboards -----------------------------------------------------------------------------------


def _sparkline(points: list[list[Any]], width: int = 560, height: int = 120) -> dict[str, Any]:
    """SVG polyline geometry for one panel's series (points are [iso time, value])."""
    values = [float(p[1]) for p in points if p[1] is not None]
    if len(values) < 2:
        return {"points": "", "min": None, "max": None, "width": width, "height": height}
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / (len(values) - 1)
    coords = " ".join(f"{i * step:.1f},{height - 4 - (v - lo) / span * (height - 8):.1f}" for i, v in enumerate(values))
    return {"points": coords, "min": lo, "max": hi, "width": width, "height": height,
            "first": points[0][0], "last": points[-1][0]}


@router.get("/dashboards/{uid}", response_class=HTMLResponse)
def dashboard_page(ctx: Ctx, request: Request, uid: str, hours: float = 2.0,
    user: str = Depends(signed_in)) -> HTMLResponse:
    """An embedded dashboard: each panel's series over the last hours, read through the same tools."""
    from firebreak.tools.registry import ToolError, call_tool

    boards = call_tool(ctx, "list_dashboards", {}).get("dashboards", [])
    board = next((b for b in boards if b.get("uid") == uid), None)
    if board is None:
        return render(request, ctx, "error.html", status_code=404, message=f"No dashboard {uid!r}.")
    until = ctx.clock.now()
    since = until - timedelta(hours=max(0.25, min(hours, 72.0)))
    panels = []
    for n, panel in enumerate(board.get("panels", []), start=1):
        chart: dict[str, Any] = {"points": ""}
        error = None
        if panel.get("service") and panel.get("metric"):
            try:
                series = call_tool(ctx, "query_metric", {"service": panel["service"], "name": panel["metric"],
                                                          "since": since.isoformat(), "until": until.isoformat()})
                chart = _sparkline(series.get("points", []))
            except ToolError as exc:
                error = exc.message
        panels.append({"n": n, **panel, "chart": chart, "error": error})
    return render(request, ctx, "dashboard.html", board=board, panels=panels, since=since, until=until)
