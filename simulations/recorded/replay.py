"""Replay a recorded incident's checked telemetry into the embedded stores at its recorded timestamps.

Only rows up to `triage_at` reach a store (the readers drop the rest): the investigator runs at that
instant and must not see the future. Metrics go through the metric store's public `ingest`, logs
through the log store's, spans through the trace store's `add_spans`, changes through the change
model as `/webhooks/changes` would record them. `onset` and `truth` are never written anywhere.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firebreak.context import ToolContext
from firebreak.simulations.recorded.model import RecordedError
from firebreak.simulations.recorded.readers import Telemetry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PARALLEL_SPANS = 20_000  # below this, forking a writer costs more than it saves
SpanRow = tuple[str, str, str | None, str, str, int, int, str, dict[str, Any]]


def _dt_us(us: int) -> datetime:
    # timedelta arithmetic keeps microseconds exact (fromtimestamp goes through a float).
    return _EPOCH + timedelta(microseconds=us)


def check_changes(tel: Telemetry) -> list[object]:
    """Every change line as the change model; a bad one is a RecordedError naming file, line and field."""
    from firebreak.tools.changes import ChangeIn

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
    from firebreak.tools.metric_store import MetricPoint, get_metric_store

    def points() -> Iterator[MetricPoint]:
        for ms, service, name, value, labels in tel.metrics:
            yield MetricPoint(ts=_EPOCH + timedelta(milliseconds=ms), service=service, name=name, value=value,
                              labels=labels)

    return get_metric_store(ctx).ingest(points())


def write_logs(ctx: ToolContext, tel: Telemetry) -> int:
    from firebreak.tools.log_store import LogLine, get_log_store

    def lines() -> Iterator[LogLine]:
        for us, service, level, message, attrs in tel.logs:
            yield LogLine(ts=_dt_us(us), service=service, level=level, message=message, attributes=attrs)

    return get_log_store(ctx).ingest(lines())


def _records(rows: list[SpanRow]) -> Iterator[Any]:
    from firebreak.tools.trace_store import SpanRecord, SpanStatus

    for trace_id, span_id, parent_id, service, operation, start, end, status, attrs in rows:
        yield SpanRecord(trace_id=trace_id, span_id=span_id, parent_id=parent_id, service=service,
                         operation=operation, start=_dt_us(start), end=_dt_us(end), status=SpanStatus(status),
                         attributes=attrs)


def write_spans(ctx: ToolContext, tel: Telemetry) -> int:
    if not tel.spans:
        return 0
    from firebreak.tools.trace_store import trace_store

    return trace_store(ctx).add_spans(_records(tel.spans))


def _span_child(conn: Connection, data_dir: Path, rows: list[SpanRow]) -> None:
    """In a forked process: write the spans into the data dir's trace store, send back (count, error)."""
    try:
        from firebreak.tools.trace_store import open_trace_store

        store = open_trace_store(data_dir)
        try:
            conn.send((store.add_spans(_records(rows)), None))
        finally:
            store.close()
    except BaseException as exc:  # reported to the parent, which raises it as a replay failure
        conn.send((0, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class SpanWriter:
    """Spans written by a forked process while this one writes logs and metrics.

    The log store and the trace store are separate SQLite files and both ingests are CPU-bound Python
    (redaction, parent/child linking), so on two cores a large replay takes the longer of the two
    instead of their sum. Below PARALLEL_SPANS, or where fork does not exist, spans are written here.
    """

    def __init__(self, ctx: ToolContext, tel: Telemetry) -> None:
        self.ctx, self.tel = ctx, tel
        self.proc: BaseProcess | None = None
        self.recv: Connection | None = None
        if len(tel.spans) >= PARALLEL_SPANS and "fork" in mp.get_all_start_methods():
            fork = mp.get_context("fork")
            self.recv, send = fork.Pipe(duplex=False)
            self.proc = fork.Process(target=_span_child, args=(send, ctx.settings.ensure_data_dir(), tel.spans),
                                     daemon=True)
            self.proc.start()
            send.close()

    def result(self) -> int:
        if self.proc is None or self.recv is None:
            return write_spans(self.ctx, self.tel)
        try:
            count, error = self.recv.recv()
        except EOFError:
            count, error = 0, "the span writer process died"
        finally:
            self.recv.close()
            self.proc.join()
        if error:
            raise RuntimeError(f"writing spans failed: {error}")
        return int(count)


def write_changes(ctx: ToolContext, changes: list[object]) -> int:
    from firebreak.tools.changes import ChangeIn
    from firebreak.tools.changes import record_change as store_change

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
    spans = SpanWriter(ctx, tel)
    counts = {
        "metric_points": write_metrics(ctx, tel),
        "log_lines": write_logs(ctx, tel) if tel.logs else 0,
        "changes": write_changes(ctx, changes),
    }
    counts["spans"] = spans.result()
    counts["dropped_after_triage"] = tel.dropped_after_triage
    return counts
