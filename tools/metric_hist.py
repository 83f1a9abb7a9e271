"""Histograms in the embedded store read the way Prometheus reads them: the 99th percentile of the
bucket rates (`histogram_quantile(0.99, rate(x_bucket[...]))`), so OTLP or recorded histograms written
as `x_bucket{le}` series give the same answer on a drill and on a real Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from firebreak.tools.metric_store import MetricStore, SeriesKey

QUANTILE = 0.99


def _le(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return math.inf if value in ("+Inf", "Inf", "inf") else float(value)
    except ValueError:
        return None


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs, sorted by bound: linear
    interpolation inside the bucket the rank falls in; the highest finite bound when it is the +Inf one."""
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == math.inf:
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def families(keys: Iterable[SeriesKey]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], list[SeriesKey]]:
    """Bucket series grouped per histogram: (service, family name, labels without `le`)."""
    out: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[SeriesKey]] = {}
    for k in keys:
        if not k.name.endswith("_bucket") or _le(k.labels.get("le")) is None:
            continue
        rest = tuple(sorted((a, b) for a, b in k.labels.items() if a != "le"))
        out.setdefault((k.service, k.name[: -len("_bucket")], rest), []).append(k)
    return out


def p99_points(
    store: MetricStore, buckets: list[SeriesKey], since: datetime, until: datetime
) -> list[tuple[int, float]]:
    """(ts_ms, p99) at each sample time of one histogram, from the rates of its cumulative buckets."""
    bound = {k.id: _le(k.labels.get("le")) for k in buckets}
    per_ts: dict[int, dict[float, float]] = {}
    for sid, ts, rate in store.rates(list(bound), since, until):
        le = bound[sid]
        if le is not None:
            per_ts.setdefault(ts, {})[le] = max(rate, 0.0)
    out: list[tuple[int, float]] = []
    for ts in sorted(per_ts):
        pairs = sorted(per_ts[ts].items())
        value = quantile(QUANTILE, pairs)
        if value is not None:
            out.append((ts, value))
    return out
