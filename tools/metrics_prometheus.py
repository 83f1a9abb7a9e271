"""The metrics tools over a real Prometheus: reading one metric, and the anomaly scan within a budget.

Each metric is read the way its type means it: gauges raw, counters as a per-second `rate()` over a
range fitted to the step (raw counters only grow, and averaging them across label sets drops
whenever a new series appears), histograms as their 99th percentile plus the rate of `_count`.
Replicas (instance, pod) roll up to their service: rates add up, gauges average.

The scan with no service reads every metric name of every service (series carrying one of
`settings.service_labels`, or a pod), one range query per name, within a series cap and a time cap;
what it could not read is listed in `skipped` so a reader knows the answer is partial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from firebreak.tools.prometheus import (
    REPLICA_LABELS,
    MetricKind,
    PrometheusClient,
    PromSeries,
    check_name,
    kind_of,
    promql_string,
    rate_window,
    service_labels,
    service_of,
)
from firebreak.tools.registry import ToolError

SCAN_SECONDS = 20.0  # time cap of one scan
SCAN_SERIES = 2_000  # series cap of one scan (raw series, before the roll-up)
SCAN_POINTS = 720  # points per series in the scan
_BY_REPLICA = ", ".join(REPLICA_LABELS)


@dataclass
class Rolled:
    """One service-level series after the roll-up of its replicas."""

    service: str
    name: str
    kind: str  # gauge | rate | p99
    labels: dict[str, str]
    ts: list[float]
    values: list[float]


@dataclass
class ScanResult:
    series: list[Rolled] = field(default_factory=list)
    checked: int = 0
    skipped: list[str] = field(default_factory=list)
    capped: bool = False


def read_kind(kind: MetricKind) -> str:
    """What a point of the metric means once read: the level, a per-second rate, or a 99th percentile."""
    if kind is MetricKind.COUNTER:
        return "rate"
    if kind is MetricKind.HISTOGRAM:
        return "p99"
    return "gauge"


def expression(kind: MetricKind, family: str, name: str, matcher: str, window: str, *, by_replica: bool) -> str:
    """The PromQL for one metric: rate for counters, p99 for histograms, the raw gauge otherwise."""
    inner = f"{{{matcher}}}" if matcher else ""
    if kind is MetricKind.HISTOGRAM:
        keep = f"without ({_BY_REPLICA})" if by_replica else "by (le)"
        return f"histogram_quantile(0.99, sum {keep} (rate({family}_bucket{inner}[{window}])))"
    if kind is MetricKind.COUNTER:
        names = f"{name}|{name}_total" if not name.endswith("_total") else name
        sel = f"{{__name__=~{promql_string(names)}{',' + matcher if matcher else ''}}}"
        return f"rate({sel}[{window}])"
    return f"{name}{inner}"


def roll_up(result: list[PromSeries], name: str, kind: str, order: tuple[str, ...]) -> tuple[list[Rolled], int]:
    """Replicas to their service: rates summed, gauges and percentiles averaged, per timestamp.
    Returns the rolled series and how many raw series had no service."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[PromSeries]] = {}
    orphans = 0
    for s in result:
        labels = dict(s.metric)
        svc = service_of(labels, order)
        if svc is None:
            orphans += 1
            continue
        for drop in ("__name__", *REPLICA_LABELS, *order):
            labels.pop(drop, None)
        groups.setdefault((svc, tuple(sorted(labels.items()))), []).append(s)
    out: list[Rolled] = []
    for (svc, labels_t), members in groups.items():
        acc: dict[float, list[float]] = {}
        for m in members:
            for t, v in m.values:
                if math.isfinite(v):
                    acc.setdefault(t, []).append(v)
        ts = sorted(acc)
        combine: Callable[[list[float]], float] = sum if kind == "rate" else (lambda xs: sum(xs) / len(xs))
        out.append(Rolled(svc, name, kind, dict(labels_t), ts, [combine(acc[t]) for t in ts]))
    return out, orphans


def _service_matcher(client: PrometheusClient, service: str, order: tuple[str, ...],
                     since: datetime, until: datetime) -> tuple[str, list[dict[str, str]], tuple[str, ...]]:
    """The first configured label under which `service` has series, those series, and the label order
    that names them `service` when rolled up."""
    for label in order:
        found = client.series_names(f"{{{label}={promql_string(service)}}}", start=since, end=until)
        if found:
            return f"{label}={promql_string(service)}", found, (label,)
    pods = client.series_names(f"{{pod=~{promql_string(service + '-.+')}}}", start=since, end=until)
    if pods:
        return f"pod=~{promql_string(service + '-.+')}", pods, ()
    raise ToolError(
        f"unknown service {service!r} in Prometheus: no series carry it under any of the labels "
        f"{', '.join(order)} (FIREBREAK_SERVICE_LABELS) or as a pod name",
        status=404,
        field="service",
    )


def plan(names: list[str], metadata: dict[str, str]) -> list[tuple[MetricKind, str, str]]:
    """(kind, family, name) to read for each metric name; a histogram's parts become its p99 and the
    rate of its `_count`; `_created` timestamps and histogram/summary `_sum`s are left out."""
    out: dict[str, tuple[MetricKind, str, str]] = {}
    for n in sorted(set(names)):
        if n.endswith("_created") and metadata.get(n[: -len("_created")]) in ("counter", "histogram", "summary"):
            continue
        if n.endswith("_sum") and metadata.get(n[: -len("_sum")]) in ("histogram", "summary"):
            continue
        kind, family = kind_of(n, metadata)
        key = f"{family}:p99" if kind is MetricKind.HISTOGRAM else n
        out.setdefault(key, (kind, family, family if kind is MetricKind.HISTOGRAM else n))
    return list(out.values())


def scan(client: PrometheusClient, service: str | None, since: datetime, until: datetime, *,
         labels: list[str] | None, max_series: int = SCAN_SERIES, max_seconds: float = SCAN_SECONDS) -> ScanResult:
    """Every metric of one service (or of every service), read by type and rolled up, within a budget."""
    order = service_labels(labels)
    started = time.monotonic()
    metadata = client.metadata()
    scrape = client.scrape_seconds()
    step = max(scrape, (until - since).total_seconds() / SCAN_POINTS)
    window = rate_window(step, scrape)
    if service:
        matcher, series, order = _service_matcher(client, service, order, since, until)
        names = [s.get("__name__", "") for s in series if s.get("__name__")]
    else:
        matcher, names = "", client.label_values("__name__", start=since, end=until)
    out = ScanResult()
    todo = plan([n for n in names if _valid(n)], metadata)
    orphans = 0
    for i, (kind, family, name) in enumerate(todo):
        if time.monotonic() - started > max_seconds:
            out.skipped.append(f"{len(todo) - i} metrics not read: the scan's time cap of {max_seconds:g} s "
                               f"was reached ({', '.join(n for _, _, n in todo[i:i + 5])}...)")
            out.capped = True
            break
        if out.checked >= max_series:
            out.skipped.append(f"{len(todo) - i} metrics not read: the series cap of {max_series} was reached "
                               f"({', '.join(n for _, _, n in todo[i:i + 5])}...)")
            out.capped = True
            break
        query = expression(kind, family, name, matcher, window, by_replica=True)
        try:
            result = client.query_range(query, start=since, end=until, step_seconds=step)
        except ToolError as exc:
            out.skipped.append(f"{name}: {exc.message[:200]}")
            continue
        out.checked += len(result)
        rolled, lost = roll_up(result, name, read_kind(kind), order)
        orphans += lost
        out.series.extend(rolled)
    if orphans:
        out.skipped.append(f"{orphans} series carry none of the labels {', '.join(order)} "
                           "(FIREBREAK_SERVICE_LABELS) nor a pod name, so no service: not read")
    return out


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except ToolError:
        return False
    return True


def read_metric(client: PrometheusClient, service: str, name: str, since: datetime, until: datetime,
                step_s: float, *, labels: list[str] | None) -> tuple[Rolled, int] | None:
    """One metric of one service read by its type (None when no label in the order has samples)."""
    check_name(name)
    order = service_labels(labels)
    kind, family = kind_of(name, client.metadata())
    window = rate_window(step_s, client.scrape_seconds())
    for label in order:
        matcher = f"{label}={promql_string(service)}"
        result = client.query_range(expression(kind, family, name, matcher, window, by_replica=False),
                                    start=since, end=until, step_seconds=step_s)
        result = [s for s in result if any(math.isfinite(v) for _, v in s.values)]
        if not result:
            continue
        for s in result:
            s.metric = {label: service}  # one service: every label set averages (or adds) into it
        rolled, _ = roll_up(result, name, read_kind(kind), (label,))
        if rolled:
            return rolled[0], len(result)
    return None


def known_services(client: PrometheusClient, labels: list[str] | None) -> list[str]:
    return sorted({v for label in service_labels(labels) for v in client.label_values(label)})


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)

