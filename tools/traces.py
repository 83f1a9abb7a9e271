"""Trace tools: `service_map`, `trace_errors`, `latency_breakdown`, `sample_traces`.

They read the embedded trace store (fed by OTLP intake and recorded-incident replays), or Tempo or
Jaeger when `tempo_url` / `jaeger_url` is set. Backends answer with whole traces, so their figures
come from a bounded sample of traces (`sampled: true` in the answer) analysed by the same pure
functions (tools/trace_analysis.py) that define the store's rollups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

from firebreak.clock import ensure_aware
from firebreak.context import ToolContext
from firebreak.tools.registry import ToolError, tool
from firebreak.tools.time_range import ZonedRange, resolve_range
from firebreak.tools.trace_analysis import (
    ErrorGroup,
    ServiceEdge,
    ServiceLatency,
    Totals,
    dependencies_from_edges,
    downstream,
    edges_from_totals,
    error_groups,
    first_error_times,
    latency_shifts,
    span_totals,
)
from firebreak.tools.trace_store import SpanRecord, SpanStatus, trace_store

DEFAULT_WINDOW = timedelta(hours=1)
BACKEND_TRACES = 200  # traces fetched from Tempo/Jaeger per window
MAX_ATTRIBUTE_CHARS = 300


class TraceBackend(Protocol):
    """What a Tempo or Jaeger client offers the tools: whole traces, newest first, bounded."""

    name: str

    def fetch_traces(
        self,
        *,
        since: datetime,
        until: datetime,
        service: str | None = None,
        operation: str | None = None,
        status: SpanStatus | None = None,
        limit: int = 20,
    ) -> list[list[SpanRecord]]: ...


def backend(ctx: ToolContext) -> TraceBackend | None:
    """The configured trace backend (Tempo first, then Jaeger), or None for the embedded store."""
    settings = ctx.settings
    if settings.tempo_url:
        from firebreak.tools.tempo import TempoClient

        url = settings.tempo_url
        return ctx.resource(f"tempo:{url}", lambda: TempoClient(url))
    if settings.jaeger_url:
        from firebreak.tools.jaeger import JaegerClient

        jurl = settings.jaeger_url
        return ctx.resource(f"jaeger:{jurl}", lambda: JaegerClient(jurl))
    return None


def _totals(ctx: ToolContext, since: datetime, until: datetime, service: str | None = None) -> tuple[Totals, Totals]:
    """(span totals, edge totals) for [since, until) from the store, or from a backend's sample."""
    client = backend(ctx)
    if client is None:
        store = trace_store(ctx)
        return store.span_totals(since, until), store.edge_totals(since, until)
    traces = client.fetch_traces(since=since, until=until, service=service, limit=BACKEND_TRACES)
    return span_totals((s for t in traces for s in t), since, until)


def _source(ctx: ToolContext) -> str:
    client = backend(ctx)
    return "embedded" if client is None else client.name


def observed_dependencies(ctx: ToolContext, window: timedelta = timedelta(hours=24)) -> dict[str, list[str]]:
    """caller -> callees seen in traces over the last `window` (empty when there are no traces).

    `service_dependencies` falls back on this when settings give no dependency graph.
    """
    until = ctx.clock.now()
    _, edges = _totals(ctx, until - window, until)
    return dependencies_from_edges(edges_from_totals(edges))


def _known_services(span: Totals) -> list[str]:
    return sorted({s for s, _ in span})


def _check_service(service: str | None, known: list[str], scope: str = "in this range") -> None:
    if service and service not in known:
        shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
        hint = f"services with spans {scope}: {shown}" if known else f"no spans {scope}"
        raise ToolError(f"unknown service {service!r} in traces; {hint}", status=404, field="service")


# --- service_map ----------------------------------------------------------------------------------


class ServiceMapInput(ZonedRange):
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")


class ServiceMapOutput(BaseModel):
    edges: list[ServiceEdge]
    services: list[str]
    since: datetime
    until: datetime
    sampled: bool = Field(description="True when computed from a sample of a backend's traces.")
    source: str


@tool("traces")
def service_map(ctx: ToolContext, args: ServiceMapInput) -> ServiceMapOutput:
    """Who calls whom, from traces: caller -> callee edges with call counts, error ratio and latency.

    Use it to learn the topology around a failing service (which callers see its errors, which callee
    it waits on) when no dependency graph is configured; an edge whose error_ratio or avg_ms jumped
    points at the callee.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_WINDOW)
    spans, edges = _totals(ctx, since, until)
    return ServiceMapOutput(
        edges=edges_from_totals(edges),
        services=_known_services(spans),
        since=since,
        until=until,
        sampled=backend(ctx) is not None,
        source=_source(ctx),
    )


# --- trace_errors ---------------------------------------------------------------------------------


class TraceErrorsInput(ZonedRange):
    service: str | None = Field(default=None, description="Only this service's error spans. Omit for all.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    limit: int = Field(default=20, ge=1, le=200, description="Most groups returned.")


class TraceErrorsOutput(BaseModel):
    groups: list[ErrorGroup]
    total_groups: int
    since: datetime
    until: datetime
    compared_since: datetime = Field(description="Start of the equally long window the counts are compared with.")
    sampled: bool
    source: str


@tool("traces")
def trace_errors(ctx: ToolContext, args: TraceErrorsInput) -> TraceErrorsOutput:
    """Error spans grouped by service and operation, each compared with the equally long window before.

    Use it to find which call started failing: groups marked `new` had no error span before the window
    (e.g. since = the alert start). Narrow to one service with `service`.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_WINDOW)
    earlier = since - (until - since)
    client = backend(ctx)
    if client is None:
        store = trace_store(ctx)
        now = store.span_totals(since, until)
        first: dict[tuple[str, str], datetime] = {}
    else:
        spans = [
            s
            for t in client.fetch_traces(since=since, until=until, service=args.service, limit=BACKEND_TRACES)
            for s in t
        ]
        now, _ = span_totals(spans, since, until)
        first = first_error_times(spans, since, until)
    before, _ = _totals(ctx, earlier, since, args.service)
    if args.service:
        _check_service(args.service, _known_services({**before, **now}))
    if client is None:
        failing = [k for k, t in now.items() if t["errors"] > 0 and (not args.service or k[0] == args.service)]
        first = store.first_errors(since, until, failing)
    groups = error_groups(now, before, args.service, first)
    return TraceErrorsOutput(
        groups=groups[: args.limit],
        total_groups=len(groups),
        since=since,
        until=until,
        compared_since=earlier,
        sampled=backend(ctx) is not None,
        source=_source(ctx),
    )


# --- latency_breakdown ----------------------------------------------------------------------------


class LatencyBreakdownInput(ZonedRange):
    service: str | None = Field(
        default=None, description="Report this service and everything it calls (transitively). Omit for all."
    )
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    pivot: datetime | None = Field(
        default=None, description="Compare before/after this time (e.g. the alert start). Default: mid-range."
    )
    limit: int = Field(default=20, ge=1, le=200, description="Most services returned.")

    @field_validator("pivot")
    @classmethod
    def _pivot_zone(cls, v: datetime | None) -> datetime | None:
        return None if v is None else ensure_aware(v, "pivot")


class LatencyBreakdownOutput(BaseModel):
    services: list[ServiceLatency] = Field(description="Services whose own time grew come first.")
    total_services: int
    since: datetime
    pivot: datetime
    until: datetime
    sampled: bool
    source: str


@tool("traces")
def latency_breakdown(ctx: ToolContext, args: LatencyBreakdownInput) -> LatencyBreakdownOutput:
    """Per service: self time versus time spent waiting on callees, before versus after a pivot.

    Use it when latency rose: the service whose *own* time grew (shift = own_time_grew) is the likely
    cause; callers that only wait on it show waiting_on_callees. Pivot = the alert or metric onset;
    times are resolved to whole seconds.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_WINDOW)
    pivot = (args.pivot or since + (until - since) / 2).astimezone(UTC)
    if not since < pivot < until:
        raise ToolError(
            f"pivot ({pivot.isoformat()}) must lie between since ({since.isoformat()}) and until ({until.isoformat()})",
            status=422,
            field="pivot",
        )
    before, edges_b = _totals(ctx, since, pivot, args.service)
    after, edges_a = _totals(ctx, pivot, until, args.service)
    services: list[str] | None = None
    if args.service:
        _check_service(args.service, _known_services({**before, **after}))
        deps = dependencies_from_edges(edges_from_totals({**edges_b, **edges_a}))
        services = downstream(args.service, deps)
    rows = latency_shifts(before, after, services=services)
    return LatencyBreakdownOutput(
        services=rows[: args.limit],
        total_services=len(rows),
        since=since,
        pivot=pivot,
        until=until,
        sampled=backend(ctx) is not None,
        source=_source(ctx),
    )


# --- sample_traces --------------------------------------------------------------------------------


class SampleTracesInput(ZonedRange):
    service: str | None = Field(default=None, description="Traces with a span of this service.")
    operation: str | None = Field(default=None, description="Traces with a span of this operation.")
    status: SpanStatus | None = Field(default=None, description="Traces with a span of this status: ok, error, unset.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    limit: int = Field(default=3, ge=1, le=20, description="Most traces returned, newest first.")
    max_spans: int = Field(default=50, ge=1, le=500, description="Most spans shown per trace.")


class SpanOut(BaseModel):
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start: datetime
    duration_ms: float
    status: SpanStatus
    attributes: dict[str, Any] = Field(default_factory=dict)


class TraceOut(BaseModel):
    trace_id: str
    root: str = Field(description="service: operation of the earliest span shown.")
    start: datetime
    duration_ms: float
    span_count: int
    errors: int
    truncated: bool = Field(description="More spans than max_spans; the earliest are shown.")
    spans: list[SpanOut]


class SampleTracesOutput(BaseModel):
    traces: list[TraceOut]
    since: datetime
    until: datetime
    source: str


def _span_out(s: SpanRecord) -> SpanOut:
    attrs = s.attributes
    if attrs and len(repr(attrs)) > MAX_ATTRIBUTE_CHARS:
        attrs = {k: str(v)[:80] for k, v in list(attrs.items())[:8]}
    return SpanOut(
        span_id=s.span_id,
        parent_id=s.parent_id,
        service=s.service,
        operation=s.operation,
        start=s.start,
        duration_ms=round((s.end - s.start).total_seconds() * 1000, 3),
        status=s.status,
        attributes=attrs,
    )


def trace_out(
    trace_id: str, spans: list[SpanRecord], total: int, max_spans: int, errors: int | None = None
) -> TraceOut:
    """A trace as the tools show it: its earliest `max_spans` spans and a short summary.

    `total` and `errors` describe the whole trace when only part of it was read (errors default to the
    error spans among `spans`).
    """
    spans = sorted(spans, key=lambda s: s.start)
    shown = spans[:max_spans]
    start = shown[0].start
    end = max(s.end for s in shown)
    return TraceOut(
        trace_id=trace_id,
        root=f"{shown[0].service}: {shown[0].operation}",
        start=start,
        duration_ms=round((end - start).total_seconds() * 1000, 3),
        span_count=total,
        errors=sum(1 for s in spans if s.status == SpanStatus.ERROR) if errors is None else errors,
        truncated=total > len(shown),
        spans=[_span_out(s) for s in shown],
    )


@tool("traces")
def sample_traces(ctx: ToolContext, args: SampleTracesInput) -> SampleTracesOutput:
    """A few whole traces (newest first, bounded), filtered by service, operation and status.

    Use it to see one concrete failing or slow request end to end after service_map, trace_errors or
    latency_breakdown pointed somewhere, e.g. service='cart', status='error', limit=2.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_WINDOW)
    client = backend(ctx)
    out: list[TraceOut] = []
    if client is not None:
        traces = client.fetch_traces(
            since=since,
            until=until,
            service=args.service,
            operation=args.operation,
            status=args.status,
            limit=args.limit,
        )
        for spans in traces[: args.limit]:
            if spans:
                out.append(trace_out(spans[0].trace_id, spans, len(spans), args.max_spans))
        return SampleTracesOutput(traces=out, since=since, until=until, source=client.name)
    store = trace_store(ctx)
    if args.service:
        _check_service(args.service, store.services(), "stored")
    ids = store.find_trace_ids(
        since=since,
        until=until,
        service=args.service,
        operation=args.operation,
        status=args.status,
        limit=args.limit,
    )
    for trace_id in ids:
        spans, total, errors = store.trace(trace_id, limit=args.max_spans)
        if spans:
            out.append(trace_out(trace_id, spans, total, args.max_spans, errors))
    return SampleTracesOutput(traces=out, since=since, until=until, source="embedded")
