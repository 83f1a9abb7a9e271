"""Pure trace analysis: totals from spans, service-map edges, error groups, self-time breakdown.

The trace tools and the investigator call these on the totals the embedded store keeps (rollups) or
on spans a backend (Tempo, Jaeger) returned; no I/O here, so each step is testable on its own and
the store's incremental totals can be checked against `span_totals` computed from scratch.

Vocabulary: an *entry* span is a span whose parent is in another service (or that has no parent in
view): one request into the service. A span's *self time* is its duration minus the time of its
direct children; its *callee time* is the part spent in children of other services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from firebreak.tools.trace_store import SpanRecord, SpanStatus, to_us

Totals = dict[tuple[str, str], dict[str, int]]

SPAN_FIELDS = ("spans", "errors", "entries", "entry_errors", "entry_us", "self_us", "remote_us")
EDGE_FIELDS = ("calls", "errors", "dur_us")


def span_totals(spans: Iterable[SpanRecord], since: datetime, until: datetime) -> tuple[Totals, Totals]:
    """(per (service, operation) totals, per (caller, callee) totals) of spans starting in [since, until).

    Same definitions as the store's rollups (windows in whole seconds), computed from scratch: links
    are made among the spans given, so pass whole traces.
    """
    since_s, until_s = to_us(since) // 1_000_000, -(-to_us(until) // 1_000_000)
    by_key: dict[tuple[str, str], SpanRecord] = {}
    for s in spans:
        by_key.setdefault((s.trace_id, s.span_id), s)
    child_sum: dict[tuple[str, str], int] = {}
    remote_sum: dict[tuple[str, str], int] = {}
    parent_service: dict[tuple[str, str], str] = {}
    durations = {k: to_us(s.end) - to_us(s.start) for k, s in by_key.items()}
    for key, s in by_key.items():
        parent = by_key.get((s.trace_id, s.parent_id)) if s.parent_id else None
        if parent is None:
            continue
        pkey = (parent.trace_id, parent.span_id)
        child_sum[pkey] = child_sum.get(pkey, 0) + durations[key]
        if parent.service != s.service:
            remote_sum[pkey] = remote_sum.get(pkey, 0) + durations[key]
        parent_service[key] = parent.service
    totals: Totals = {}
    edges: Totals = {}
    for key, s in by_key.items():
        if not since_s <= to_us(s.start) // 1_000_000 < until_s:
            continue
        dur = durations[key]
        err = 1 if s.status == SpanStatus.ERROR else 0
        caller = parent_service.get(key)
        entry = caller is None or caller != s.service
        acc = totals.setdefault((s.service, s.operation), dict.fromkeys(SPAN_FIELDS, 0))
        acc["spans"] += 1
        acc["errors"] += err
        acc["entries"] += int(entry)
        acc["entry_errors"] += err if entry else 0
        acc["entry_us"] += dur if entry else 0
        acc["self_us"] += max(dur - child_sum.get(key, 0), 0)
        acc["remote_us"] += min(remote_sum.get(key, 0), dur)
        if caller is not None and caller != s.service:
            e = edges.setdefault((caller, s.service), dict.fromkeys(EDGE_FIELDS, 0))
            e["calls"] += 1
            e["errors"] += err
            e["dur_us"] += dur
    return totals, edges


class ServiceEdge(BaseModel):
    caller: str
    callee: str
    calls: int
    errors: int
    error_ratio: float = Field(description="errors / calls, from the callee's entry spans.")
    avg_ms: float = Field(description="Mean duration of the callee's spans for these calls, milliseconds.")


def edges_from_totals(edges: Mapping[tuple[str, str], Mapping[str, int]]) -> list[ServiceEdge]:
    """Service-map edges, busiest first."""
    out = [
        ServiceEdge(
            caller=caller,
            callee=callee,
            calls=e["calls"],
            errors=e["errors"],
            error_ratio=round(e["errors"] / e["calls"], 4) if e["calls"] else 0.0,
            avg_ms=round(e["dur_us"] / e["calls"] / 1000, 3) if e["calls"] else 0.0,
        )
        for (caller, callee), e in edges.items()
        if e["calls"] > 0
    ]
    out.sort(key=lambda e: (-e.calls, e.caller, e.callee))
    return out


def dependencies_from_edges(edges: Iterable[ServiceEdge]) -> dict[str, list[str]]:
    """caller -> sorted callees: the shape of `settings.dependencies`."""
    deps: dict[str, set[str]] = {}
    for e in edges:
        deps.setdefault(e.caller, set()).add(e.callee)
    return {k: sorted(v) for k, v in sorted(deps.items())}


def downstream(service: str, deps: Mapping[str, Iterable[str]]) -> list[str]:
    """`service` and everything it calls, directly or not, in breadth-first order."""
    seen = [service]
    i = 0
    while i < len(seen):
        for callee in sorted(deps.get(seen[i], ())):
            if callee not in seen:
                seen.append(callee)
        i += 1
    return seen


class ErrorGroup(BaseModel):
    service: str
    operation: str
    errors: int = Field(description="Error spans in the window.")
    spans: int
    error_ratio: float
    errors_before: int = Field(description="Error spans in the equally long window just before.")
    new: bool = Field(description="This operation had no error span before the window.")
    first_seen: datetime | None = Field(default=None, description="Its first error span in the window (to the second).")


def first_error_times(spans: Iterable[SpanRecord], since: datetime, until: datetime) -> dict[tuple[str, str], datetime]:
    """Per (service, operation): the start of its first error span in [since, until), to the second."""
    out: dict[tuple[str, str], datetime] = {}
    for s in spans:
        if s.status == SpanStatus.ERROR and since <= s.start < until:
            key = (s.service, s.operation)
            if key not in out or s.start < out[key]:
                out[key] = s.start
    return {k: v.replace(microsecond=0) for k, v in out.items()}


def error_groups(
    now: Totals,
    before: Totals,
    service: str | None = None,
    first_seen: Mapping[tuple[str, str], datetime] | None = None,
) -> list[ErrorGroup]:
    """Error spans grouped by (service, operation), new ones first, then by growth."""
    out: list[ErrorGroup] = []
    for (svc, op), t in now.items():
        if t["errors"] <= 0 or (service and svc != service):
            continue
        prev = before.get((svc, op), {}).get("errors", 0)
        out.append(
            ErrorGroup(
                service=svc,
                operation=op,
                errors=t["errors"],
                spans=t["spans"],
                error_ratio=round(t["errors"] / t["spans"], 4),
                errors_before=prev,
                new=prev == 0,
                first_seen=(first_seen or {}).get((svc, op)),
            )
        )
    out.sort(key=lambda g: (not g.new, -(g.errors + 1) / (g.errors_before + 1), -g.errors, g.service, g.operation))
    return out


class Shift(StrEnum):
    """How a service's latency moved across the pivot."""

    OWN_TIME = "own_time_grew"  # its self time per request grew: look inside this service
    CALLEES = "waiting_on_callees"  # it got slower only because what it calls got slower
    STEADY = "steady"
    NEW = "new"  # no requests before the pivot
    GONE = "gone"  # no requests after the pivot


class Phase(BaseModel):
    requests: int = Field(description="Entry spans: calls into the service (or roots).")
    errors: int
    avg_latency_ms: float = Field(description="Mean entry-span duration.")
    self_ms: float = Field(description="Self time (not in any child span) per request.")
    callee_ms: float = Field(description="Time in callees of other services per request.")


class OperationShift(BaseModel):
    operation: str
    self_ms_before: float
    self_ms_after: float
    self_delta_ms: float


class ServiceLatency(BaseModel):
    service: str
    before: Phase
    after: Phase
    self_delta_ms: float = Field(description="after.self_ms - before.self_ms")
    callee_delta_ms: float = Field(description="after.callee_ms - before.callee_ms")
    shift: Shift
    operations: list[OperationShift] = Field(description="Operations whose self time per call grew most.")


def _phase(ts: Iterable[Mapping[str, int]]) -> Phase:
    acc = dict.fromkeys(SPAN_FIELDS, 0)
    for t in ts:
        for k in SPAN_FIELDS:
            acc[k] += t.get(k, 0)
    per = acc["entries"] or acc["spans"] or 1
    return Phase(
        requests=acc["entries"],
        errors=acc["errors"],
        avg_latency_ms=round(acc["entry_us"] / (acc["entries"] or 1) / 1000, 3),
        self_ms=round(acc["self_us"] / per / 1000, 3),
        callee_ms=round(acc["remote_us"] / per / 1000, 3),
    )


def _per_call_self(t: Mapping[str, int] | None) -> float:
    if not t or not t.get("spans"):
        return 0.0
    return t["self_us"] / t["spans"] / 1000


def latency_shifts(
    before: Totals,
    after: Totals,
    *,
    services: Iterable[str] | None = None,
    min_delta_ms: float = 1.0,
    rel: float = 0.2,
    operations: int = 3,
) -> list[ServiceLatency]:
    """Per service, self time versus callee time before and after a pivot, biggest own-time growth first.

    A service is `own_time_grew` when its self time per request rose by at least `min_delta_ms` and by
    `rel` of its previous self time, and that rise is at least as large as its callees' rise: a caller
    that only waits on a slow callee shows callee growth instead, so the culprit stands out.
    """
    names = sorted({s for s, _ in before} | {s for s, _ in after}) if services is None else list(services)
    out: list[ServiceLatency] = []
    for svc in names:
        b_ops = {op: t for (s, op), t in before.items() if s == svc}
        a_ops = {op: t for (s, op), t in after.items() if s == svc}
        if not b_ops and not a_ops:
            continue
        b, a = _phase(b_ops.values()), _phase(a_ops.values())
        d_self, d_callee = a.self_ms - b.self_ms, a.callee_ms - b.callee_ms
        if b.requests == 0 and not b_ops:
            shift = Shift.NEW
        elif not a_ops:
            shift = Shift.GONE
        elif d_self >= min_delta_ms and d_self >= rel * b.self_ms and d_self >= d_callee:
            shift = Shift.OWN_TIME
        elif d_callee >= min_delta_ms and d_callee >= rel * b.callee_ms:
            shift = Shift.CALLEES
        else:
            shift = Shift.STEADY
        ops = [
            OperationShift(
                operation=op,
                self_ms_before=round(_per_call_self(b_ops.get(op)), 3),
                self_ms_after=round(_per_call_self(a_ops.get(op)), 3),
                self_delta_ms=round(_per_call_self(a_ops.get(op)) - _per_call_self(b_ops.get(op)), 3),
            )
            for op in sorted(set(b_ops) | set(a_ops))
        ]
        ops.sort(key=lambda o: (-o.self_delta_ms, o.operation))
        out.append(
            ServiceLatency(
                service=svc,
                before=b,
                after=a,
                self_delta_ms=round(d_self, 3),
                callee_delta_ms=round(d_callee, 3),
                shift=shift,
                operations=ops[:operations],
            )
        )
    order = {Shift.OWN_TIME: 0, Shift.CALLEES: 1, Shift.NEW: 2, Shift.STEADY: 3, Shift.GONE: 4}
    out.sort(key=lambda s: (order[s.shift], -s.self_delta_ms, s.service))
    return out
