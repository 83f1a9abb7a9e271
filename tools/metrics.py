"""Metrics tools: `query_metric`, `metric_anomalies`, `list_dashboards`, over the embedded store or
Prometheus/Grafana when their URLs are set. Change detection lives in `tools.change_detect`.

Counters are read as per-second rates and histograms as p99 on both backends, so a drill on the
embedded store and a real Prometheus agree; Prometheus specifics are in `tools.metrics_prometheus`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from firebreak.context import ToolContext
from firebreak.tools.change_detect import DETECT_SIGMAS as DETECT_SIGMAS  # re-exported: benches import them from here
from firebreak.tools.change_detect import Change, detect_change
from firebreak.tools.change_detect import noise_sigma as noise_sigma
from firebreak.tools.metric_store import Dashboard, from_ms, get_metric_store
from firebreak.tools.registry import ToolError, tool
from firebreak.tools.time_range import ZonedRange, resolve_range

DEFAULT_QUERY_WINDOW = timedelta(hours=1)
DEFAULT_ANOMALY_WINDOW = timedelta(hours=2)
MAX_POINTS = 500
MAX_ANOMALY_SERIES = 2_000
_NICE_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


KIND_DESCRIPTION = (
    "What the values are: gauge = the value as recorded; rate = per-second rate of a counter (counters only "
    "grow, so their raw level means nothing); p99 = 99th percentile of a histogram."
)


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
    kind: str = Field(default="gauge", description=KIND_DESCRIPTION)
    series: int = Field(description="How many label sets were combined into each point (rates add up, gauges "
                        "average).")
    truncated: bool = Field(description="True when older buckets were dropped to stay under 500 points.")
    source: str


class MetricAnomaliesInput(ZonedRange):
    service: str | None = Field(default=None, description="Only this service's series. Omit for all services.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 2 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    limit: int = Field(
        default=20, ge=1, le=200, description="Most anomalies returned: the largest changes, earliest onset first."
    )


class Anomaly(BaseModel):
    service: str
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    kind: str = Field(default="gauge", description=KIND_DESCRIPTION)
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
    skipped: list[str] = Field(default_factory=list, description="What the scan could not read, and why.")
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


# --- helpers --------------------------------------------------------------------------------------


def _auto_step(span_s: float, native_s: float) -> int:
    want = max(native_s, span_s / MAX_POINTS)
    return next((s for s in _NICE_STEPS if s >= want), int(math.ceil(want)))


def _listing(items: list[str]) -> str:
    return ", ".join(items[:30]) + (" ..." if len(items) > 30 else "")


def _prom(ctx: ToolContext) -> Any:
    from firebreak.tools.prometheus import PrometheusClient

    url = ctx.settings.prometheus_url
    assert url
    return ctx.resource(f"prometheus:{url}", lambda: PrometheusClient(url))


def _grafana(ctx: ToolContext) -> Any:
    from firebreak.tools.grafana import GrafanaClient

    url = ctx.settings.grafana_url
    assert url
    token = ctx.settings.grafana_token.get_secret_value() if ctx.settings.grafana_token else None
    return ctx.resource(f"grafana:{url}", lambda: GrafanaClient(url, token=token))


# --- tools ----------------------------------------------------------------------------------------


@tool("metrics")
def query_metric(ctx: ToolContext, args: QueryMetricInput) -> QueryMetricOutput:
    """Read one metric of one service over a time range as [ts, value] points (at most 500).

    Use it to look at a series you suspect (memory, error rate, latency) once metric_anomalies or an
    alert has named it, or to confirm when it started moving. Counters come back as per-second rates
    and histograms as their 99th percentile (see `kind`); replicas add up (rates) or average (gauges).
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_QUERY_WINDOW)
    span_s = (until - since).total_seconds()
    if ctx.settings.prometheus_url:
        return _query_prometheus(ctx, args, since, until, span_s)
    store = get_metric_store(ctx)
    keys = store.series(args.service, args.name)
    bucket_name = args.name if args.name.endswith("_bucket") else args.name + "_bucket"
    hist_keys = store.series(args.service, bucket_name) if store.metric_kind(bucket_name) == "histogram" else []
    if hist_keys and (not keys or args.name == bucket_name):
        return _embedded_p99(ctx, args, hist_keys, since, until, span_s)
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
    kind = "rate" if store.metric_kind(args.name) == "counter" else "gauge"
    if kind == "rate":
        rows = _bucketed_rates(store.rates(ids, since, until), step_ms)[-(MAX_POINTS + 1) :]
    else:
        rows = store.bucketed(ids, since, until, step_ms, MAX_POINTS + 1)
    truncated = len(rows) > MAX_POINTS
    rows = rows[-MAX_POINTS:]
    return QueryMetricOutput(
        service=args.service,
        name=args.name,
        points=[(from_ms(ts), round(v, 6)) for ts, v in rows],
        step_seconds=step_s,
        kind=kind,
        series=len(ids),
        truncated=truncated,
        source="embedded",
    )


def _embedded_p99(
    ctx: ToolContext, args: QueryMetricInput, keys: list[Any], since: datetime, until: datetime, span_s: float
) -> QueryMetricOutput:
    """A histogram's 99th percentile over time (each label set's p99, averaged per bucket)."""
    from firebreak.tools import metric_hist

    store = get_metric_store(ctx)
    groups = metric_hist.families(keys)
    native_ms = store.native_step_ms(keys[0].id) or 15_000
    step_s = args.step_seconds or _auto_step(span_s, native_ms / 1000)
    step_ms = int(step_s * 1000)
    per: dict[int, list[float]] = {}
    for members in groups.values():
        for ts, value in metric_hist.p99_points(store, members, since, until):
            per.setdefault(ts // step_ms, []).append(value)
    rows = [(b * step_ms, sum(v) / len(v)) for b, v in sorted(per.items())]
    return QueryMetricOutput(
        service=args.service, name=args.name, points=[(from_ms(ts), _round(v)) for ts, v in rows[-MAX_POINTS:]],
        step_seconds=step_s, kind="p99", series=len(groups), truncated=len(rows) > MAX_POINTS, source="embedded",
    )


def _bucketed_rates(rows: list[tuple[int, int, float]], step_ms: int) -> list[tuple[int, float]]:
    """Counter rates per bucket: each series' mean rate in the bucket, added across series."""
    per: dict[tuple[int, int], list[float]] = {}
    for sid, ts, rate in rows:
        per.setdefault((ts // step_ms, sid), []).append(rate)
    buckets: dict[int, float] = {}
    for (b, _), rates in per.items():
        buckets[b] = buckets.get(b, 0.0) + sum(rates) / len(rates)
    return [(b * step_ms, buckets[b]) for b in sorted(buckets)]


def _query_prometheus(
    ctx: ToolContext, args: QueryMetricInput, since: datetime, until: datetime, span_s: float
) -> QueryMetricOutput:
    from firebreak.tools import metrics_prometheus as mp

    client = _prom(ctx)
    labels = ctx.settings.service_labels
    step_s = float(args.step_seconds or _auto_step(span_s, client.scrape_seconds()))
    got = mp.read_metric(client, args.service, args.name, since, until, step_s, labels=labels)
    if got is None:
        services = mp.known_services(client, labels)
        if args.service not in services:
            raise ToolError(
                f"unknown service {args.service!r} in Prometheus (labels {', '.join(labels)}); "
                f"known services: {_listing(services)}",
                status=404,
                field="service",
            )
        raise ToolError(
            f"no samples of metric {args.name!r} for service {args.service!r} in Prometheus between "
            f"{since.isoformat()} and {until.isoformat()}: check the name or widen the range",
            status=404,
            field="name",
        )
    rolled, count = got
    points = list(zip(rolled.ts, rolled.values, strict=True))
    return QueryMetricOutput(
        service=args.service,
        name=args.name,
        points=[(mp.to_datetime(t), _round(v)) for t, v in points[-MAX_POINTS:]],
        step_seconds=step_s,
        kind=rolled.kind,
        series=count,
        truncated=len(points) > MAX_POINTS,
        source="prometheus",
    )


@tool("metrics")
def metric_anomalies(ctx: ToolContext, args: MetricAnomaliesInput) -> MetricAnomaliesOutput:
    """Find which series changed (step, ramp, spike or drop), when each started, and by how much.

    Use it early in an investigation: the earliest mover is listed first, and what moved first is
    usually nearer the cause than what moved later (memory ramps before errors, errors before the
    alert). Each anomaly gives onset, before/after levels, change_ratio, direction and a score in noise
    standard deviations; counters are judged on their rate and histograms on their p99 (`kind`), so
    normal counter growth is not a change. With no service every service is scanned within a budget;
    `skipped` says what was not read. Default range: the two hours before now.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_ANOMALY_WINDOW)
    found: list[tuple[float, Anomaly]] = []
    skipped: list[str] = []
    if ctx.settings.prometheus_url:
        checked, capped = _prometheus_anomalies(ctx, args.service, since, until, found, skipped)
        source = "prometheus"
    else:
        checked, capped = _embedded_anomalies(ctx, args.service, since, until, found, skipped)
        source = "embedded"
    # The largest changes make the cut (held level against baseline, then noise score); they are then
    # listed earliest first.
    kept = [a for _, a in sorted(found, key=lambda sa: (-sa[0], -sa[1].score))[: args.limit]]
    kept.sort(key=lambda a: (a.onset, -a.score))
    return MetricAnomaliesOutput(
        anomalies=kept,
        series_checked=checked,
        truncated=capped or len(found) > args.limit,
        skipped=skipped,
        since=since,
        until=until,
        source=source,
    )


def _embedded_anomalies(
    ctx: ToolContext, service: str | None, since: datetime, until: datetime, found: list[tuple[float, Anomaly]],
    skipped: list[str],
) -> tuple[int, bool]:
    import numpy as np

    store = get_metric_store(ctx)
    keys = store.series(service)
    if service and not keys:
        services = store.services()
        hint = f"known services: {_listing(services)}" if services else "no metrics have been stored yet"
        raise ToolError(f"unknown service {service!r} in metrics; {hint}", status=404, field="service")
    capped = len(keys) > MAX_ANOMALY_SERIES
    if capped:
        skipped.append(f"{len(keys) - MAX_ANOMALY_SERIES} series not read: the series cap of {MAX_ANOMALY_SERIES}")
    keys = keys[:MAX_ANOMALY_SERIES]
    kinds = {name: store.metric_kind(name) for name in {k.name for k in keys}}
    _embedded_histograms(store, [k for k in keys if kinds[k.name] == "histogram"], since, until, found, skipped)
    by_id = {k.id: k for k in keys}
    for chunk_start in range(0, len(keys), 200):
        part_keys = keys[chunk_start : chunk_start + 200]
        gauges = [k.id for k in part_keys if kinds[k.name] == "gauge"]
        counters = [k.id for k in part_keys if kinds[k.name] == "counter"]
        rows = store.points(gauges, since, until) + store.rates(counters, since, until)
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
            kind = "rate" if kinds[key.name] == "counter" else "gauge"
            found.append((change.size, _anomaly(key.service, key.name, key.labels, onset, change, rec, kind)))
    return len(keys), capped


def _embedded_histograms(
    store: Any, keys: list[Any], since: datetime, until: datetime, found: list[tuple[float, Anomaly]],
    skipped: list[str],
) -> None:
    """Histograms judged on their p99, as Prometheus reads them."""
    from firebreak.tools import metric_hist

    groups = metric_hist.families(keys)
    stray = len(keys) - sum(len(m) for m in groups.values())
    if stray:
        skipped.append(f"{stray} histogram series without an `le` bucket bound: not read")
    for (service, family, rest), members in groups.items():
        points = metric_hist.p99_points(store, members, since, until)
        change = detect_change([v for _, v in points]) if len(points) >= 12 else None
        if change is None:
            continue
        rec = None if change.recovered_index is None else from_ms(points[change.recovered_index][0])
        onset = from_ms(points[change.onset_index][0])
        found.append((change.size, _anomaly(service, family, dict(rest), onset, change, rec, "p99")))


def _prometheus_anomalies(
    ctx: ToolContext, service: str | None, since: datetime, until: datetime, found: list[tuple[float, Anomaly]],
    skipped: list[str],
) -> tuple[int, bool]:
    from firebreak.tools import metrics_prometheus as mp

    result = mp.scan(_prom(ctx), service, since, until, labels=ctx.settings.service_labels)
    skipped.extend(result.skipped)
    for series in result.series:
        change = detect_change(series.values)
        if change is None:
            continue
        onset = mp.to_datetime(series.ts[change.onset_index])
        rec = None if change.recovered_index is None else mp.to_datetime(series.ts[change.recovered_index])
        found.append((change.size, _anomaly(series.service, series.name, series.labels, onset, change, rec,
                                            series.kind)))
    return result.checked, result.capped


def _anomaly(
    service: str,
    name: str,
    labels: dict[str, str],
    onset: datetime,
    c: Change,
    recovered_at: datetime | None = None,
    kind: str = "gauge",
) -> Anomaly:
    return Anomaly(
        service=service,
        name=name,
        labels=labels,
        kind=kind,
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
