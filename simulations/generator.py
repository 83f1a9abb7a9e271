"""Turn a scenario into a world: log lines, metric samples, changes, flag moves and alert deliveries.

Pure and deterministic: the same file and seed give the same world, byte for byte. Telemetry for
the whole run is generated up front (vectorised with numpy) and time-stamped; the runner decides
when each piece becomes visible. Nothing here reads `truth`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from firebreak.simulations.scenario import (
    AlertEvent,
    ConfigEvent,
    DeployEvent,
    FlagEvent,
    InfraEvent,
    LineTemplate,
    LogsEvent,
    MetricEvent,
    MetricSpec,
    Scenario,
)
from firebreak.simulations.values import fill, stream_rng

DEFAULT_AUTHORS = {"deploy": "ci-pipeline", "config": "config-sync", "flag": "flags-console", "infra": "infra-ops"}
UNDECLARED_EVERY = timedelta(seconds=15)
SPIKE_DEFAULT = timedelta(minutes=5)


@dataclass(slots=True)
class LogBlock:
    """A column-wise batch of log lines for one service (cheap to build, converted when written)."""

    service: str
    ts_us: np.ndarray  # int64 microseconds since the epoch
    levels: list[str]
    messages: list[str]


@dataclass(slots=True)
class Series:
    service: str
    name: str
    ts_ms: np.ndarray
    values: np.ndarray


@dataclass(slots=True)
class ChangeSpec:
    """A recorded change, in the `/webhooks/changes` JSON shape (interfaces.md)."""

    at: datetime
    kind: Literal["deploy", "config", "flag", "infra"]
    service: str | None = None
    version: str | None = None
    previous_version: str | None = None
    key: str | None = None
    from_value: Any = None
    to_value: Any = None
    flag: str | None = None
    variant: str | None = None
    state: str | None = None
    author: str | None = None
    note: str = ""

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "at": self.at.isoformat().replace("+00:00", "Z")}
        for name in ("service", "version", "previous_version", "key", "flag", "variant", "state", "author"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.kind == "config":
            out["from"] = self.from_value
            out["to"] = self.to_value
        if self.note:
            out["note"] = self.note
        return out


@dataclass(slots=True)
class AlertNotice:
    """One alert notification to deliver: firing at `at`, or resolved at its `resolve_at`."""

    at: datetime
    index: int  # position of the alert among the scenario's alerts (stable ids, fingerprints)
    alert: AlertEvent
    status: Literal["firing", "resolved"]
    started_at: datetime


@dataclass(slots=True)
class Step:
    """One moment on the timeline, in order: a change to record or an alert to deliver."""

    at: datetime
    change: ChangeSpec | None = None
    notice: AlertNotice | None = None


@dataclass
class World:
    logs: list[LogBlock] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    initial_versions: dict[str, str] = field(default_factory=dict)

    @property
    def log_count(self) -> int:
        return sum(len(b.messages) for b in self.logs)

    @property
    def point_count(self) -> int:
        return sum(len(s.values) for s in self.series)


def _epoch_us(ts: datetime) -> int:
    return round(ts.timestamp() * 1_000_000)


def _timeline_order(sc: Scenario) -> list[int]:
    """Event indices sorted by `at`; the order in the file breaks ties."""
    return sorted(range(len(sc.timeline)), key=lambda i: (sc.timeline[i].at, i))


def _log_block(
    sc: Scenario, stream: str, service: str, templates: list[LineTemplate], rate_per_s: float,
    begin: timedelta, end: timedelta,
) -> LogBlock | None:
    span = (end - begin).total_seconds()
    if span <= 0 or rate_per_s <= 0:
        return None
    rng = stream_rng(sc.seed, "logs", stream)
    n = int(rng.poisson(rate_per_s * span))
    if n == 0:
        return None
    t0 = _epoch_us(sc.start + begin)
    ts = np.sort(t0 + (rng.random(n) * span * 1_000_000).astype(np.int64))
    weights = np.array([t.weight for t in templates], dtype=float)
    which = rng.choice(len(templates), size=n, p=weights / weights.sum())
    messages: list[str] = [""] * n
    levels: list[str] = [""] * n
    for k, tpl in enumerate(templates):
        rows = np.flatnonzero(which == k)
        if rows.size == 0:
            continue
        texts = fill(stream_rng(sc.seed, "values", stream, k), tpl.text, int(rows.size))
        for row, text in zip(rows.tolist(), texts, strict=True):
            messages[row] = text
            levels[row] = tpl.level
    return LogBlock(service, ts, levels, messages)


def _apply_shape(level: np.ndarray, t: np.ndarray, ev: MetricEvent, at: float) -> None:
    """Change the baseline level in place from `at` (seconds from start) on, per the event's shape."""
    after = t >= at
    if not after.any():
        return
    prev = float(level[np.argmax(after)]) if after.any() else float(level[-1])
    before_idx = np.flatnonzero(~after)
    if before_idx.size:
        prev = float(level[before_idx[-1]])
    restore = level.copy()
    if ev.shape in ("step", "drop"):
        level[after] = ev.to
        settled = at
    elif ev.shape == "ramp":
        over = max(ev.over.total_seconds() if ev.over else 1.0, 1e-9)
        frac = np.clip((t - at) / over, 0.0, 1.0)
        level[after] = (prev + (ev.to - prev) * frac)[after]
        settled = at + over
    else:  # spike: back to what it was after `for`
        length = (ev.for_ or SPIKE_DEFAULT).total_seconds()
        window = after & (t < at + length)
        level[window] = ev.to
        return
    if ev.then == "recover":
        back = settled + (ev.for_.total_seconds() if ev.for_ else 0.0)
        level[t >= back] = restore[t >= back]


def _series(sc: Scenario) -> list[Series]:
    declared: dict[tuple[str, str], MetricSpec] = {
        (s.name, m.name): m for s in sc.services for m in s.metrics
    }
    events: dict[tuple[str, str], list[tuple[float, MetricEvent]]] = {}
    for i in _timeline_order(sc):
        ev = sc.timeline[i]
        if isinstance(ev.metric, MetricEvent):
            key = (ev.metric.service, ev.metric.name)
            events.setdefault(key, []).append((ev.at.total_seconds(), ev.metric))
    keys = list(declared) + [k for k in events if k not in declared]
    out: list[Series] = []
    duration = sc.duration.total_seconds()
    start_ms = round(sc.start.timestamp() * 1000)
    for key in keys:
        spec = declared.get(key)
        if spec is not None:
            every, base, noise = spec.every.total_seconds(), spec.value, spec.noise
        else:
            # Not declared: a series exists anyway. Its baseline is unknown, so it sits at 0 before a
            # rise, or at ten times the floor before a drop.
            first = events[key][0][1]
            every, noise = UNDECLARED_EVERY.total_seconds(), 0.05
            base = max(abs(first.to) * 10, 1.0) if first.shape == "drop" else 0.0
        count = int(math.floor(duration / every)) + 1
        t = np.arange(count, dtype=float) * every
        level = np.full(count, float(base))
        for at, mev in events.get(key, []):
            _apply_shape(level, t, mev, at)
        rng = stream_rng(sc.seed, "metric", key[0], key[1])
        values = level * (1.0 + noise * rng.standard_normal(count)) if noise else level.copy()
        if (level >= 0).all():
            values = np.maximum(values, 0.0)
        out.append(Series(key[0], key[1], start_ms + np.round(t * 1000).astype(np.int64), values))
    return out


def _steps(sc: Scenario) -> tuple[list[Step], dict[str, str]]:
    versions = {s.name: s.version for s in sc.services if s.version is not None}
    initial = dict(versions)
    steps: list[Step] = []
    resolutions: list[Step] = []
    alert_index = 0
    for i in _timeline_order(sc):
        ev = sc.timeline[i]
        at = sc.start + ev.at
        body = ev.body
        change: ChangeSpec | None = None
        if isinstance(body, DeployEvent):
            change = ChangeSpec(at, "deploy", service=body.service, version=body.version,
                                previous_version=versions.get(body.service), note=body.note,
                                author=body.author or DEFAULT_AUTHORS["deploy"])
            versions[body.service] = body.version
        elif isinstance(body, ConfigEvent):
            change = ChangeSpec(at, "config", service=body.service, key=body.key, from_value=body.from_,
                                to_value=body.to, note=body.note, author=body.author or DEFAULT_AUTHORS["config"])
        elif isinstance(body, FlagEvent):
            change = ChangeSpec(at, "flag", flag=body.flag, variant=body.variant, state=body.state,
                                note=body.note, author=body.author or DEFAULT_AUTHORS["flag"])
        elif isinstance(body, InfraEvent):
            change = ChangeSpec(at, "infra", service=body.service, note=body.note,
                                author=body.author or DEFAULT_AUTHORS["infra"])
        elif isinstance(body, AlertEvent):
            steps.append(Step(at, notice=AlertNotice(at, alert_index, body, "firing", at)))
            if body.resolve_at is not None:
                end = sc.start + body.resolve_at
                resolutions.append(Step(end, notice=AlertNotice(end, alert_index, body, "resolved", at)))
            alert_index += 1
        if change is not None:
            steps.append(Step(at, change=change))
    # Resolved notifications go after everything else that happens at the same moment.
    ordered = sorted(
        [(s.at, 0, n, s) for n, s in enumerate(steps)] + [(s.at, 1, n, s) for n, s in enumerate(resolutions)],
        key=lambda x: (x[0], x[1], x[2]),
    )
    return [s for *_, s in ordered], initial


def build_world(sc: Scenario) -> World:
    """Everything the scenario says happens, generated up front and time-stamped."""
    blocks: list[LogBlock] = []
    for svc in sc.services:
        if svc.logs is not None:
            block = _log_block(sc, f"base:{svc.name}", svc.name, svc.logs.lines, svc.logs.rate,
                               timedelta(0), sc.duration)
            if block is not None:
                blocks.append(block)
    for i, ev in enumerate(sc.timeline):
        if isinstance(ev.logs, LogsEvent):
            end = min(sc.duration, ev.at + ev.logs.for_) if ev.logs.for_ is not None else sc.duration
            block = _log_block(sc, f"event:{i}", ev.logs.service, ev.logs.lines, ev.logs.rate, ev.at, end)
            if block is not None:
                blocks.append(block)
    steps, initial = _steps(sc)
    return World(logs=blocks, series=_series(sc), steps=steps, initial_versions=initial)
