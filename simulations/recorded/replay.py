"""Replay a recorded incident's checked telemetry into the embedded stores at its recorded timestamps.

Only rows up to `triage_at` reach a store (the readers drop the rest): the investigator runs at that
instant and must not see the future. Metrics go through the metric store's public `ingest`, logs
through the log store's, spans through the trace store's `add_spans`, changes through the change
model as `/webhooks/changes` would record them. `onset` and `truth` are never written anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from simulations.recorded.model import RecordedError
from simulations.recorded.readers import Telemetry
from tools.context import ToolContext

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt_us(us: int) -> datetime:
    # timedelta arithmetic keeps microseconds exact (fromtimestamp goes through a float).
    return _EPOCH + timedelta(microseconds=us)


def check_changes(tel: Telemetry) -> list[object]:
    """Every change line as the change model; a bad one is a RecordedError naming file, line and field."""
    from tools.changes import ChangeIn

    out: list[object] = []
    for file, line, us, obj in tel.changes:
        try:
            out.append(ChangeIn.model_validate({**obj, "at": _dt_us(us)}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "change"
            raise RecordedError(file, [(f"line {line}, field {where}", str(first["msg"]))]) from None
    return out


def write_metrics(ctx: ToolContext, tel: Telemetry) -> int:
    from tools.metric_store import MetricPoint, get_metric_store

    def points() -> Iterator[MetricPoint]:
        for ms, service, name, value, labels in tel.metrics:
            yield MetricPoint(_EPOCH + timedelta(milliseconds=ms), service, name, value, labels)

    return get_metric_store(ctx).ingest(points())


def write_logs(ctx: ToolContext, tel: Telemetry) -> int:
    from tools.log_store import LogLine, get_log_store

    def lines() -> Iterator[LogLine]:
        for us, service, level, message, attrs in tel.logs:
            yield LogLine(_dt_us(us), service, level, message, attrs)

    return get_log_store(ctx).ingest(lines())


def write_spans(ctx: ToolContext, tel: Telemetry) -> int:
    if not tel.spans:
        return 0
    from tools.trace_store import SpanRecord, SpanStatus, trace_store

    def spans() -> Iterator[SpanRecord]:
        for trace_id, span_id, parent_id, service, operation, start, end, status, attrs in tel.spans:
            yield SpanRecord(trace_id, span_id, parent_id, service, operation, _dt_us(start), _dt_us(end),
                             SpanStatus(status), attrs)

    return trace_store(ctx).add_spans(spans())


def write_changes(ctx: ToolContext, changes: list[object]) -> int:
    from tools.changes import ChangeIn
    from tools.changes import record_change as store_change

    with ctx.db.session() as s:
        for change in changes:
            assert isinstance(change, ChangeIn)
            store_change(s, change, source="recorded", now=change.at)
    return len(changes)


def replay(ctx: ToolContext, tel: Telemetry, changes: list[object] | None = None) -> dict[str, int]:
    """Write everything; `changes` as `check_changes` gave them (checked here when not given, before any
    write, so a bad change line writes nothing). Counts per kind."""
    if changes is None:
        changes = check_changes(tel)
    return {
        "metric_points": write_metrics(ctx, tel),
        "log_lines": write_logs(ctx, tel) if tel.logs else 0,
        "spans": write_spans(ctx, tel),
        "changes": write_changes(ctx, changes),
        "dropped_after_triage": tel.dropped_after_triage,
    }
