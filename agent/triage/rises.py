"""How far each service's own metrics moved, in their own noise: the N-sigma view of an incident.

When only metrics exist (no logs, no traces, no changes), what tells the culprit among services is
how much each one's own series moved against its own history: the service whose cpu or memory stands
many standard deviations above its normal level is the likelier cause; a caller whose latency rose
while a service it calls moved more only waits on it. Everything here is computed from the
`query_metric` answers in the findings (never from the fault's onset, which the investigator does not
know): the split between "history" and "recent" is a little before the first alert.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from firebreak.agent.triage.observe import Findings, parse_time

MetricClass = Literal["resource", "errors", "latency", "rate", "other"]
RECENT_MINUTES = 2.0  # the recent part starts this long before the first alert
MOVED = 3.0  # a series counts as moved from this many robust standard deviations
_RESOURCE = ("cpu", "mem", "memory", "rss", "heap", "resident", "disk", "filesystem", "fds", "threads", "connections")
_ERRORS = ("error", "errors", "5xx", "fail", "failed", "failures", "exceptions")
_LATENCY = ("lat", "latency", "duration", "p50", "p90", "p95", "p99", "rtt", "response", "seconds", "ms")
_RATE = ("rate", "rps", "qps", "throughput", "requests", "per", "second")


def metric_class(name: str) -> MetricClass:
    """What a series measures, from its name's tokens: a resource of its own, errors, latency, rate."""
    tokens = set(re.split(r"[^a-z0-9]+", name.lower()))
    if tokens & set(_RESOURCE) or any(k in name.lower() for k in ("memory", "resident", "filesystem")):
        return "resource"
    if tokens & set(_ERRORS) or "error" in name.lower():
        return "errors"
    if tokens & set(_LATENCY) or "latency" in name.lower():
        return "latency"
    if tokens & set(_RATE):
        return "rate"
    return "other"


@dataclass(frozen=True)
class Rise:
    """One series: how far its recent level stands from its history, and when it first crossed."""

    service: str
    name: str
    cls: MetricClass
    z: float  # signed: recent level minus history median, in robust standard deviations
    onset: datetime | None  # first of 3 consecutive recent points beyond MOVED sigmas (None if never)


def rise_of(points: list[tuple[datetime, float]], pivot: datetime) -> tuple[float, datetime | None]:
    """Signed robust z of the recent level (median of the recent part's later half) against the
    history before `pivot` (median, 1.4826 x MAD, floored so a flat series does not explode), and
    when the series first stayed beyond MOVED sigmas. (0, None) when there is too little of either."""
    before = [v for t, v in points if t < pivot]
    recent = [(t, v) for t, v in points if t >= pivot]
    if len(before) < 5 or len(recent) < 2:
        return 0.0, None
    med = statistics.median(before)
    mad = statistics.median(abs(v - med) for v in before)
    sd = max(1.4826 * mad, 0.5 * statistics.pstdev(before), 1e-3 * abs(med), 1e-9)
    tail = [v for _, v in recent[len(recent) // 2 :]]
    z = (statistics.median(tail) - med) / sd
    onset = None
    sign = 1.0 if z >= 0 else -1.0
    run = 0
    for i, (_t, v) in enumerate(recent):
        run = run + 1 if sign * (v - med) / sd >= MOVED else 0
        if run == 3:
            onset = recent[i - 2][0]
            break
    return z, onset


def pivot_of(f: Findings) -> datetime:
    alert_times = [t for a in f.alerts if (t := parse_time(a.get("started_at"))) is not None]
    return (min(alert_times) if alert_times else f.incident_start()) - timedelta(minutes=RECENT_MINUTES)


@dataclass
class Rises:
    """Every queried series' rise, and per service the largest rise of each class."""

    series: list[Rise] = field(default_factory=list)

    def best(self, service: str | None, cls: MetricClass | None = None, *, up: bool = True) -> float:
        """The largest rise (drop when `up` is False, as a positive number) of a service's series."""
        vals = [(r.z if up else -r.z) for r in self.series if r.service == service and (cls is None or r.cls == cls)]
        return max([0.0, *vals])

    def top(self, cls: MetricClass | None = None, *, exclude: str | None = None) -> float:
        """The largest rise of that class on any service (but `exclude`)."""
        vals = [r.z for r in self.series if (cls is None or r.cls == cls) and r.service != exclude]
        return max([0.0, *vals])

    def of(self, service: str | None, resource: str) -> float:
        """The largest rise of one resource (`cpu`, `memory`...) of one service."""
        from firebreak.agent.triage.suspects.resource import resource_of

        vals = [r.z for r in self.series if r.service == service and resource_of(r.name) == resource]
        return max([0.0, *vals])

    def first_onset(self, service: str | None) -> datetime | None:
        times = [r.onset for r in self.series if r.service == service and r.onset is not None and r.z >= MOVED]
        return min(times) if times else None

    def earliest(self) -> datetime | None:
        times = [r.onset for r in self.series if r.onset is not None and r.z >= MOVED]
        return min(times) if times else None


def rises(f: Findings) -> Rises:
    pivot = pivot_of(f)
    out = Rises()
    for (svc, name), points in sorted(f.series.items()):
        z, onset = rise_of(points, pivot)
        out.series.append(Rise(svc, name, metric_class(name), z, onset))
    return out
