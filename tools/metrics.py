"""Metrics tools: `query_metric`, `metric_anomalies`, `list_dashboards`, over the embedded store or
Prometheus/Grafana when their URLs are set.

Change detection (`detect_change`) is a robust statistic, chosen by measurement against ruptures
(scripts/bench_tools.py prints the comparison): noise from the MAD of second differences (blind to
steps and ramps), a baseline median, detection by 3 consecutive points beyond 5 sigma, then the onset
by a least-squares fit of "flat, then step or continuous ramp" around the detection. On drill-like
step/drop/spike/ramp shapes with 2-10 % noise its median onset error is 0 samples (1 on ramps), at
about 1 ms a series. ruptures' PELT (l2 cost, same noise estimate in the penalty) matched it on
steps, drops and spikes but was 2-5.5 samples late on ramps (the investigator ranks causes by what
moved first) and took ~0.5 s a series, too slow for 1,000 series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from tools.context import ToolContext
from tools.metric_store import Dashboard, from_ms, get_metric_store
from tools.registry import ToolError, tool
from tools.time_range import ZonedRange, resolve_range

if TYPE_CHECKING:
    import numpy as np

DEFAULT_QUERY_WINDOW = timedelta(hours=1)
DEFAULT_ANOMALY_WINDOW = timedelta(hours=2)
MAX_POINTS = 500
MAX_ANOMALY_SERIES = 2_000
DETECT_SIGMAS = 5.0
MIN_RELATIVE_CHANGE = 0.05
_NICE_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class QueryMetricInput(ZonedRange):
    service: str = Field(description="Service name, e.g. 'checkout'.")
    name: str = Field(description="Metric name, e.g. 'http_requests_per_second'.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    step_seconds: int | None = Field(
        None, ge=1, le=86_400, description="Bucket width; default: chosen to return at most 500 points."
    )


class QueryMetricOutput(BaseModel):
    service: str
    name: str
    points: list[tuple[datetime, float]] = Field(description="[ts, value] pairs, oldest first (bucket means).")
    step_seconds: float
    series: int = Field(description="How many label sets were averaged into each point.")
    truncated: bool = Field(description="True when older buckets were dropped to stay under 500 points.")
    source: str


class MetricAnomaliesInput(ZonedRange):
    service: str | None = Field(default=None, description="Only this service's series. Omit for all services.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 2 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    limit: int = Field(default=20, ge=1, le=200, description="Most anomalies returned (earliest onset first).")


class Anomaly(BaseModel):
    service: str
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    onset: datetime = Field(description="When the series left its baseline.")
    before: float = Field(description="Baseline level (median before the onset).")
    after: float = Field(description="Level reached after the onset (the peak for spikes).")
    change_ratio: float | None = Field(description="after / before (None when before is 0).")
    direction: Literal["up", "down"]
    score: float = Field(description="Size of the change in noise standard deviations.")
    recovered_at: datetime | None = Field(
        default=None, description="When the series came back to its baseline; None while it has not."
    )


class MetricAnomaliesOutput(BaseModel):
    anomalies: list[Anomaly]
    series_checked: int
    truncated: bool
    since: datetime
    until: datetime
    source: str


class ListDashboardsInput(BaseModel):
    service: str | None = Field(default=None, description="Only dashboards with a panel (or title) for this service.")


class PanelOut(BaseModel):
    title: str
    service: str | None
    metric: str | None
    url: str


class DashboardOut(BaseModel):
    uid: str
    title: str
    url: str
    panels: list[PanelOut]


class ListDashboardsOutput(BaseModel):
    dashboards: list[DashboardOut]
    truncated: bool
    source: str


# --- change detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    onset_index: int
    before: float
    after: float
    direction: Literal["up", "down"]
    score: float
    recovered_index: int | None = None


def noise_sigma(x: np.ndarray) -> float:
    """Noise standard deviation from the MAD of second differences: steps and ramps barely move it."""
    import numpy as np

    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return 1.4826 * mad / math.sqrt(6)


def detect_change(values: Any, *, sigmas: float = DETECT_SIGMAS, run: int = 3) -> Change | None:
    """The first significant change of a series (step, drop, spike or ramp), or None.

    Baseline = median of the first fifth (8 to 16 points); detection = `run` consecutive points
    beyond `sigmas` noise deviations; onset = best least-squares split "flat, then step or ramp"
    among the points up to the detection (prefix sums: O(n)).
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)] if not np.isfinite(x).all() else x
    n = len(x)
    if n < 12:
        return None
    m = max(8, min(n // 5, 16))  # 4 minutes at 15 s: drills move metrics from 6 minutes in
    base = float(np.median(x[:m]))
    # The early part's noise matters most (a drop to a quiet level must not shrink it); second
    # differences ignore steps and ramps, so a third of the series is a steadier sample than the
    # baseline alone (measured: 0 vs 11 misses in 300 noisy drops, no false alarms on pure noise).
    sigma = max(noise_sigma(x[: max(m, n // 3)]), noise_sigma(x), 1e-3 * abs(base), 1e-12)
    z = (x - base) / sigma
    hit = None
    for sign in (1, -1):
        over = sign * z > sigmas
        runs = over[m : n - run + 1].copy()
        for k in range(1, run):
            runs &= over[m + k : n - run + 1 + k]
        idx = np.flatnonzero(runs)
        if idx.size and (hit is None or idx[0] + m < hit[0]):
            hit = (int(idx[0]) + m, sign)
    if hit is None:
        return None
    i, sign = hit
    tau = _fit_onset(x, lo=max(m // 2, i - 240), i=i, hi=min(n, i + 20))
    before = float(np.median(x[max(0, tau - m) : tau]))
    post = sign * x[tau:]
    if len(post) >= 5:
        smooth = np.convolve(post, np.ones(5) / 5, mode="valid")
        peak = int(np.argmax(smooth)) + 2
    else:
        peak = int(np.argmax(post))
    after = float(np.median(x[tau + max(0, peak - 2) : tau + peak + 3]))
    score = abs(after - before) / sigma
    if score < sigmas or (before != 0 and abs(after - before) / abs(before) < MIN_RELATIVE_CHANGE):
        return None
    # Back to baseline: the first 3 consecutive points within 3 sigma after the peak (spikes that recover).
    near = np.abs(x[tau + peak :] - before) < 3 * sigma
    back = near[:-2] & near[1:-1] & near[2:] if near.size >= 3 else np.zeros(0, dtype=bool)
    recovered = int(np.argmax(back)) + tau + peak if back.any() else None
    direction: Literal["up", "down"] = "up" if after > before else "down"
    return Change(tau, before, after, direction, round(min(score, 1e6), 2), recovered)


def _fit_onset(x: np.ndarray, *, lo: int, i: int, hi: int) -> int:
    """argmin over tau in (lo, i] of SSE(flat on [lo, tau)) + min(SSE(step), SSE(continuous ramp)) on
    [tau, hi)."""
    import numpy as np

    seg = x[lo:hi]
    idx = np.arange(len(seg), dtype=float)
    c1 = np.concatenate([[0.0], np.cumsum(seg)])
    c2 = np.concatenate([[0.0], np.cumsum(seg * seg)])
    cj = np.concatenate([[0.0], np.cumsum(seg * idx)])
    taus = np.arange(2, i - lo + 1)
    if taus.size == 0:
        return i
    end = len(seg)
    n_pre = taus.astype(float)
    s_pre, q_pre = c1[taus], c2[taus]
    mean_pre = s_pre / n_pre
    sse_pre = q_pre - s_pre * mean_pre
    n_post = end - n_pre
    s_post, q_post = c1[end] - c1[taus], c2[end] - c2[taus]
    sse_step = q_post - s_post * s_post / n_post
    # Continuous ramp from the baseline: y = x - mean_pre, t = j - tau + 1 on the post segment.
    sj_post = cj[end] - cj[taus]
    sum_xt = sj_post - (taus - 1) * s_post
    sum_t = n_post * (n_post + 1) / 2
    sum_tt = n_post * (n_post + 1) * (2 * n_post + 1) / 6
    sum_yt = sum_xt - mean_pre * sum_t
    sum_yy = q_post - 2 * mean_pre * s_post + n_post * mean_pre * mean_pre
    sse_ramp = sum_yy - sum_yt * sum_yt / sum_tt
    total = sse_pre + np.minimum(sse_step, sse_ramp)
    return lo + int(taus[int(np.argmin(total))])


# --- helpers --------------------------------------------------------------------------------------


def _auto_step(span_s: float, native_s: float) -> int:
    want = max(native_s, span_s / MAX_POINTS)
    return next((s for s in _NICE_STEPS if s >= want), int(math.ceil(want)))


def _listing(items: list[str]) -> str:
    return ", ".join(items[:30]) + (" ..." if len(items) > 30 else "")


def _prom(ctx: ToolContext) -> Any:
    from tools.prometheus import PrometheusClient

    url = ctx.settings.prometheus_url
    assert url
    return ctx.resource(f"prometheus:{url}", lambda: PrometheusClient(url))


def _grafana(ctx: ToolContext) -> Any:
    from tools.grafana import GrafanaClient

    url = ctx.settings.grafana_url
    assert url
    token = ctx.settings.grafana_token.get_secret_value() if ctx.settings.grafana_token else None
    return ctx.resource(f"grafana:{url}", lambda: GrafanaClient(url, token=token))


# --- tools ----------------------------------------------------------------------------------------


@tool("metrics")
def query_metric(ctx: ToolContext, args: QueryMetricInput) -> QueryMetricOutput:
    """Read one metric of one service over a time range as [ts, value] points (at most 500).

    Use it to look at a series you suspect (memory, error rate, latency) once metric_anomalies or an
    alert has named it, or to confirm when it started moving. Several label sets are averaged.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_QUERY_WINDOW)
    span_s = (until - since).total_seconds()
    if ctx.settings.prometheus_url:
        return _query_prometheus(ctx, args, since, until, span_s)
    store = get_metric_store(ctx)
    keys = store.series(args.service, args.name)
    if not keys:
        services = store.services()
        if args.service not in services:
            hint = f"known services: {_listing(services)}" if services else "no metrics have been stored yet"
            raise ToolError(f"unknown service {args.service!r} in metrics; {hint}", status=404, field="service")
        raise ToolError(
            f"unknown metric {args.name!r} for service {args.service!r}; "
            f"its metrics: {_listing(store.names(args.service))}",
            status=404,
            field="name",
        )
    ids = [k.id for k in keys]
    native_ms = store.native_step_ms(ids[0]) or 15_000
    step_s = args.step_seconds or _auto_step(span_s, native_ms / 1000)
    step_ms = int(step_s * 1000)
    rows = store.bucketed(ids, since, until, step_ms, MAX_POINTS + 1)
    truncated = len(rows) > MAX_POINTS
    rows = rows[-MAX_POINTS:]
    return QueryMetricOutput(
        service=args.service,
        name=args.name,
        points=[(from_ms(ts), round(v, 6)) for ts, v in rows],
        step_seconds=step_s,
        series=len(ids),
        truncated=truncated,
        source="embedded",
    )


def _query_prometheus(
    ctx: ToolContext, args: QueryMetricInput, since: datetime, until: datetime, span_s: float
) -> QueryMetricOutput:
    from tools.prometheus import SERVICE_LABELS, selector

    client = _prom(ctx)
    step_s = float(args.step_seconds or _auto_step(span_s, 15))
    result = []
    for label in SERVICE_LABELS:
        query = f"avg({selector(args.name, args.service, label)})"
        result = client.query_range(query, start=since, end=until, step_seconds=step_s)
        if result and result[0].values:
            break
    if not result or not result[0].values:
        services = sorted({v for label in SERVICE_LABELS for v in client.label_values(label)})
        if args.service not in services:
            raise ToolError(
                f"unknown service {args.service!r} in Prometheus; known services: {_listing(services)}",
                status=404,
                field="service",
            )
        raise ToolError(
            f"no samples of metric {args.name!r} for service {args.service!r} in Prometheus between "
            f"{since.isoformat()} and {until.isoformat()}: check the name or widen the range",
            status=404,
            field="name",
        )
    values = result[0].values
    truncated = len(values) > MAX_POINTS
    return QueryMetricOutput(
        service=args.service,
        name=args.name,
        points=[(datetime.fromtimestamp(t, tz=UTC), v) for t, v in values[-MAX_POINTS:]],
        step_seconds=step_s,
        series=1,
        truncated=truncated,
        source="prometheus",
    )


@tool("metrics")
def metric_anomalies(ctx: ToolContext, args: MetricAnomaliesInput) -> MetricAnomaliesOutput:
    """Find which series changed (step, ramp, spike or drop), when each started, and by how much.

    Use it early in an investigation: the earliest mover is listed first, and what moved first is
    usually nearer the cause than what moved later (memory ramps before errors, errors before the
    alert). Each anomaly gives onset, before/after levels, change_ratio, direction and a score in noise
    standard deviations. Default range: the two hours before now.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_ANOMALY_WINDOW)
    found: list[Anomaly] = []
    if ctx.settings.prometheus_url:
        checked, capped = _prometheus_anomalies(ctx, args.service, since, until, found)
        source = "prometheus"
    else:
        checked, capped = _embedded_anomalies(ctx, args.service, since, until, found)
        source = "embedded"
    found.sort(key=lambda a: (a.onset, -a.score))
    return MetricAnomaliesOutput(
        anomalies=found[: args.limit],
        series_checked=checked,
        truncated=capped or len(found) > args.limit,
        since=since,
        until=until,
        source=source,
    )


def _embedded_anomalies(
    ctx: ToolContext, service: str | None, since: datetime, until: datetime, found: list[Anomaly]
) -> tuple[int, bool]:
    import numpy as np

    store = get_metric_store(ctx)
    keys = store.series(service)
    if service and not keys:
        services = store.services()
        hint = f"known services: {_listing(services)}" if services else "no metrics have been stored yet"
        raise ToolError(f"unknown service {service!r} in metrics; {hint}", status=404, field="service")
    capped = len(keys) > MAX_ANOMALY_SERIES
    keys = keys[:MAX_ANOMALY_SERIES]
    by_id = {k.id: k for k in keys}
    for chunk_start in range(0, len(keys), 200):
        chunk = [k.id for k in keys[chunk_start : chunk_start + 200]]
        rows = store.points(chunk, since, until)
        if not rows:
            continue
        arr = np.array(rows, dtype=float)
        sids = arr[:, 0].astype(np.int64)
        bounds = np.flatnonzero(np.diff(sids)) + 1
        for part in np.split(np.arange(len(rows)), bounds):
            sid = int(sids[part[0]])
            ts, vals = arr[part, 1], arr[part, 2]
            change = detect_change(vals)
            if change is None:
                continue
            key = by_id[sid]
            rec = None if change.recovered_index is None else from_ms(int(ts[change.recovered_index]))
            onset = from_ms(int(ts[change.onset_index]))
            found.append(_anomaly(key.service, key.name, key.labels, onset, change, rec))
    return len(keys), capped


def _prometheus_anomalies(
    ctx: ToolContext, service: str | None, since: datetime, until: datetime, found: list[Anomaly]
) -> tuple[int, bool]:
    from tools.prometheus import selector

    client = _prom(ctx)
    span_s = (until - since).total_seconds()
    step = max(15.0, span_s / 720)
    result = client.query_range(selector(None, service), start=since, end=until, step_seconds=step)
    if service and not result:
        result = client.query_range(selector(None, service, "job"), start=since, end=until, step_seconds=step)
        if not result:
            raise ToolError(f"unknown service {service!r} in Prometheus: no series carry it", status=404)
    capped = len(result) > MAX_ANOMALY_SERIES
    for series in result[:MAX_ANOMALY_SERIES]:
        labels = dict(series.metric)
        name = labels.pop("__name__", "") or "(expression)"
        svc = labels.pop("service", None) or labels.get("job", "") or ""
        change = detect_change([v for _, v in series.values])
        if change is None:
            continue
        finite = [t for t, v in series.values if math.isfinite(v)]
        onset = datetime.fromtimestamp(finite[change.onset_index], tz=UTC)
        rec = None
        if change.recovered_index is not None:
            rec = datetime.fromtimestamp(finite[change.recovered_index], tz=UTC)
        found.append(_anomaly(svc, name, labels, onset, change, rec))
    return min(len(result), MAX_ANOMALY_SERIES), capped


def _anomaly(
    service: str,
    name: str,
    labels: dict[str, str],
    onset: datetime,
    c: Change,
    recovered_at: datetime | None = None,
) -> Anomaly:
    return Anomaly(
        service=service,
        name=name,
        labels=labels,
        onset=onset,
        before=_round(c.before),
        after=_round(c.after),
        change_ratio=_round(c.after / c.before) if c.before else None,
        direction=c.direction,
        score=c.score,
        recovered_at=recovered_at,
    )


def _round(v: float) -> float:
    return float(f"{v:.6g}")


@tool("metrics")
def list_dashboards(ctx: ToolContext, args: ListDashboardsInput) -> ListDashboardsOutput:
    """List dashboards and their panels (service, metric, link), optionally for one service.

    Use it to point a person at the right graph in the report, or to learn which metrics matter
    for a service before calling query_metric.
    """
    limit = 50
    if ctx.settings.grafana_url:
        client = _grafana(ctx)
        hits = client.search(args.service, limit=limit + 1)
        if args.service and not hits:
            hits = client.search(None, limit=limit + 1)
        dashboards = [client.dashboard(h["uid"]) for h in hits[:limit] if h.get("uid")]
        truncated = len(hits) > limit
        source = "grafana"
    else:
        dashboards = get_metric_store(ctx).dashboards()
        truncated = False
        source = "embedded"
    out: list[DashboardOut] = []
    for d in dashboards:
        if args.service and not _mentions(d, args.service):
            continue
        out.append(_dash_out(d))
    truncated = truncated or len(out) > limit
    return ListDashboardsOutput(dashboards=out[:limit], truncated=truncated, source=source)


def _mentions(d: Dashboard, service: str) -> bool:
    s = service.lower()
    return s in d.title.lower() or s in d.uid.lower() or any((p.service or "").lower() == s for p in d.panels)


def _dash_out(d: Dashboard) -> DashboardOut:
    url = d.url or f"/dashboards/{d.uid}"
    panels = [
        PanelOut(title=p.title, service=p.service, metric=p.metric, url=p.url or f"{url}#panel-{i + 1}")
        for i, p in enumerate(d.panels[:50])
    ]
    return DashboardOut(uid=d.uid, title=d.title, url=url, panels=panels)
