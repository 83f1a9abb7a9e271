"""Embedded trace store: spans in SQLite (WAL) in the data dir, with per-second, minute and hour rollups.

Why this layout: `latency_breakdown` must answer over 1,000,000 spans in well under a second on two
cores, and scanning a million rows in SQLite (let alone joining children to parents) does not fit.
So the parent/child work is done once, at ingest: every span keeps the summed duration of its direct
children (`child_sum`, and `remote_sum` for children in other services) and the service of its parent.
Each span's contribution (self time, time in callees, entry-span latency, errors, caller -> callee
edge) is added to rollup rows keyed by (bucket width, bucket, service, operation) (tools/trace_rollup.py).
A query reads whole hours from the hour rollup, the ragged ends from the minute and then the second
rollups: a number of rows set by the services and operations, not by the span count. Children and
parents may arrive in any order (OTLP batches, replays): when the missing half of a link arrives, the
stored side and the rollups are corrected by the difference.

Windows are therefore resolved to whole seconds (a span counts in the second its start falls in).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from firebreak.context import ToolContext
from firebreak.redact import redact_obj  # span attributes come from outside: secrets are not stored
from firebreak.tools.sqlite_store import SQLiteStore, epoch_units, from_epoch_units
from firebreak.tools.trace_rollup import (
    EDGE_FIELDS,
    SPAN_FIELDS,
    US,
    Node,
    SpanRow,
    apply_changes,
    rebuild_rollups,
    rollup_ranges,
    rollups_from_spans,
)

TRACE_DB_NAME = "traces.sqlite3"
LAYOUT_VERSION = 1  # PRAGMA user_version: bump when rollups change; an older store rebuilds them from spans
_LOOKUP_CHUNK = 900  # trace ids per IN (...) lookup
_INGEST_CHUNK = 20_000  # spans linked and written per step of one add_spans call


class SpanStatus(StrEnum):
    """OpenTelemetry span status codes, as the recorded-incident format and OTLP name them."""

    OK = "ok"
    ERROR = "error"
    UNSET = "unset"


_STATUS_CODE = {SpanStatus.UNSET: 0, SpanStatus.OK: 1, SpanStatus.ERROR: 2}
_CODE_STATUS = {v: k for k, v in _STATUS_CODE.items()}


@dataclass(slots=True)
class SpanRecord:
    """One span. A slotted dataclass, not a pydantic model: replays and OTLP intake build millions.

    `parent_id` is None for a root span; `start`/`end` are aware datetimes.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start: datetime
    end: datetime
    status: SpanStatus = SpanStatus.UNSET
    attributes: dict[str, Any] = field(default_factory=dict)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,                       -- NULL for a root span
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    start_us INTEGER NOT NULL,            -- microseconds since the epoch, UTC
    end_us INTEGER NOT NULL,
    status INTEGER NOT NULL,              -- 0 unset, 1 ok, 2 error
    attributes TEXT,                      -- JSON object, NULL when empty
    child_sum INTEGER NOT NULL DEFAULT 0, -- summed duration of the direct children stored so far
    remote_sum INTEGER NOT NULL DEFAULT 0,-- the part of child_sum spent in other services
    parent_service TEXT                   -- service of the parent span, NULL while unknown or a root
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_spans_trace_span ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS ix_spans_start ON spans (start_us);
CREATE TABLE IF NOT EXISTS span_rollup (
    width INTEGER NOT NULL,               -- bucket width, seconds (1 or 60)
    bucket INTEGER NOT NULL,              -- bucket start, seconds since the epoch
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    spans INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    entries INTEGER NOT NULL,             -- spans called from another service (or roots)
    entry_errors INTEGER NOT NULL,
    entry_us INTEGER NOT NULL,            -- summed duration of those entry spans
    self_us INTEGER NOT NULL,             -- summed self time (duration minus direct children)
    remote_us INTEGER NOT NULL,           -- summed time in direct children of other services
    PRIMARY KEY (width, bucket, service, operation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge_rollup (
    width INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    dur_us INTEGER NOT NULL,              -- summed duration of the callee's entry spans
    PRIMARY KEY (width, bucket, caller, callee)
) WITHOUT ROWID;
"""


def to_us(ts: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (naive times are refused)."""
    return epoch_units(ts, US)


def from_us(us: int) -> datetime:
    return from_epoch_units(us, US)


def span_row(span: SpanRecord) -> SpanRow:
    """A SpanRecord as a stored row; refuses what would corrupt the rollups (no ids, end before start)."""
    if not span.trace_id or not span.span_id:
        raise ValueError(f"span {span.span_id!r} of trace {span.trace_id!r}: empty trace_id or span_id")
    if not span.service:
        raise ValueError(f"span {span.span_id}: empty service name")
    start, end = to_us(span.start), to_us(span.end)
    if end < start:
        raise ValueError(f"span {span.span_id}: end {span.end.isoformat()} is before start {span.start.isoformat()}")
    attrs = json.dumps(redact_obj(span.attributes), default=str, separators=(",", ":")) if span.attributes else None
    return (
        span.trace_id,
        span.span_id,
        span.parent_id or None,
        span.service,
        span.operation,
        start,
        end,
        _STATUS_CODE[SpanStatus(span.status)],
        attrs,
    )


class TraceStore(SQLiteStore):
    """SQLite span store with rollups; safe to share between threads and processes (WAL, IMMEDIATE txns)."""

    schema = _SCHEMA

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._write_lock = threading.Lock()
        conn = self._conn()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != LAYOUT_VERSION:
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rebuild_rollups(conn)
                    conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    # ---- writing -------------------------------------------------------------------------------

    def add_spans(self, spans: Iterable[SpanRecord]) -> int:
        """Store spans (duplicates of a stored (trace_id, span_id) are skipped); returns how many were new.

        All or nothing: a bad span (no zone, end before start) raises ValueError and nothing is kept.
        """
        return self.add_rows(span_row(s) for s in spans)

    def add_rows(self, rows: Iterable[SpanRow]) -> int:
        """Fast path for intake that already holds integer times (see `SpanRow`); one transaction."""
        conn = self._conn()
        added = 0
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                chunk: list[SpanRow] = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= _INGEST_CHUNK:
                        added += self._add_chunk(conn, chunk)
                        chunk = []
                if chunk:
                    added += self._add_chunk(conn, chunk)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return added

    def _existing(self, conn: sqlite3.Connection, trace_ids: list[str]) -> Iterator[tuple[Any, ...]]:
        for i in range(0, len(trace_ids), _LOOKUP_CHUNK):
            part = trace_ids[i : i + _LOOKUP_CHUNK]
            yield from conn.execute(
                "SELECT id, trace_id, span_id, parent_id, service, operation, start_us, end_us, status, "
                f"child_sum, remote_sum, parent_service FROM spans WHERE trace_id IN ({','.join('?' * len(part))})",
                part,
            )

    def _add_chunk(self, conn: sqlite3.Connection, rows: list[SpanRow]) -> int:
        nodes: dict[tuple[str, str], Node] = {}
        for r in self._existing(conn, list({r[0] for r in rows})):
            nodes[(r[1], r[2])] = Node(r[0], (r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], None), r[9], r[10], r[11])
        fresh: list[Node] = []
        for row in rows:
            key = (row[0], row[1])
            if key in nodes:
                continue  # a retried export, or the same span twice in one batch
            node = Node(None, row, 0, 0, None)
            nodes[key] = node
            fresh.append(node)
        if not fresh:
            return 0
        changed: dict[int, Node] = {}
        # Link every parent/child pair with at least one new side (stored pairs were linked before).
        for child in nodes.values():
            parent_id = child.row[2]
            if parent_id is None:
                continue
            parent = nodes.get((child.row[0], parent_id))
            if parent is None or not (child.new or parent.new):
                continue
            dur = child.row[6] - child.row[5]
            parent.child_sum += dur
            if parent.row[3] != child.row[3]:
                parent.remote_sum += dur
            child.parent_service = parent.row[3]
            for n in (child, parent):
                if not n.new and n.row_id is not None:
                    changed[n.row_id] = n
        (max_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM spans").fetchone()
        conn.executemany(
            "INSERT INTO spans (trace_id, span_id, parent_id, service, operation, start_us, end_us, status, "
            "attributes, child_sum, remote_sum, parent_service) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*n.row, n.child_sum, n.remote_sum, n.parent_service) for n in fresh],
        )
        if changed:
            conn.executemany(
                "UPDATE spans SET child_sum = ?, remote_sum = ?, parent_service = ? WHERE id = ?",
                [(n.child_sum, n.remote_sum, n.parent_service, n.row_id) for n in changed.values()],
            )
        rollups_from_spans(conn, max_id)  # the new spans (ids above max_id), summed by SQLite
        if changed:
            apply_changes(conn, list(changed.values()))
        return len(fresh)

    # ---- reading -------------------------------------------------------------------------------

    def span_totals(self, since: datetime, until: datetime) -> dict[tuple[str, str], dict[str, int]]:
        """Per (service, operation): spans, errors, entries, entry_errors, entry_us, self_us, remote_us."""
        return self._totals("span_rollup", "service, operation", SPAN_FIELDS, since, until)

    def edge_totals(self, since: datetime, until: datetime) -> dict[tuple[str, str], dict[str, int]]:
        """Per (caller, callee) service pair: calls, errors and dur_us (summed callee entry-span time)."""
        return self._totals("edge_rollup", "caller, callee", EDGE_FIELDS, since, until)

    def _totals(
        self, table: str, keys: str, fields: Sequence[str], since: datetime, until: datetime
    ) -> dict[tuple[str, str], dict[str, int]]:
        since_s, until_s = to_us(since) // US, -(-to_us(until) // US)
        if since_s >= until_s:
            return {}
        parts = rollup_ranges(since_s, until_s)
        union = " UNION ALL ".join(
            f"SELECT {keys}, {', '.join(fields)} FROM {table} WHERE width = ? AND bucket >= ? AND bucket < ?"
            for _ in parts
        )
        sums = ", ".join(f"SUM({f})" for f in fields)
        params = [p for part in parts for p in part]
        out: dict[tuple[str, str], dict[str, int]] = {}
        for row in self._conn().execute(f"SELECT {keys}, {sums} FROM ({union}) GROUP BY {keys}", params):
            out[(row[0], row[1])] = dict(zip(fields, row[2:], strict=True))
        return out

    def first_errors(
        self, since: datetime, until: datetime, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        """Per (service, operation) in `keys`: the second of its first error span in the window.

        The minute rollup finds each key's first failing minute, the second rollup the second within.
        """
        wanted = set(keys)
        since_s, until_s = to_us(since) // US, -(-to_us(until) // US)
        conn = self._conn()
        minutes = conn.execute(
            "SELECT service, operation, MIN(bucket) FROM span_rollup WHERE width = 60 AND bucket >= ? "
            "AND bucket < ? AND errors > 0 GROUP BY 1, 2",
            (since_s - since_s % 60, until_s),
        ).fetchall()
        out: dict[tuple[str, str], datetime] = {}
        for service, operation, minute in minutes:
            if (service, operation) not in wanted:
                continue
            row = conn.execute(
                "SELECT bucket FROM span_rollup WHERE width = 1 AND bucket >= ? AND bucket < ? AND service = ? "
                "AND operation = ? AND errors > 0 ORDER BY bucket LIMIT 1",
                (max(since_s, minute), until_s, service, operation),
            ).fetchone()
            if row:
                out[(service, operation)] = from_us(row[0] * US)
        return out

    def services(self) -> list[str]:
        """Services with spans in the store (from the minute rollup, which is small)."""
        rows = self._conn().execute("SELECT DISTINCT service FROM span_rollup WHERE width = 60 ORDER BY service")
        return [r[0] for r in rows]

    def time_bounds(self) -> tuple[datetime, datetime] | None:
        row = self._conn().execute("SELECT MIN(start_us), MAX(start_us) FROM spans").fetchone()
        if not row or row[0] is None:
            return None
        return from_us(row[0]), from_us(row[1])

    def count(self) -> int:
        (n,) = self._conn().execute("SELECT COUNT(*) FROM spans").fetchone()
        return int(n)

    def find_trace_ids(
        self,
        *,
        since: datetime,
        until: datetime,
        service: str | None = None,
        operation: str | None = None,
        status: SpanStatus | None = None,
        limit: int = 5,
        scan_cap: int = 200_000,
    ) -> list[str]:
        """Newest traces with a span matching the filters in the window (at most `scan_cap` spans looked at)."""
        filters: list[str] = ["1"]
        params: list[Any] = []
        if service:
            filters.append("service = ?")
            params.append(service)
        if operation:
            filters.append("operation = ?")
            params.append(operation)
        if status is not None:
            filters.append("status = ?")
            params.append(_STATUS_CODE[SpanStatus(status)])
        rows = self._conn().execute(
            "SELECT trace_id FROM (SELECT trace_id, service, operation, status FROM spans "
            f"WHERE start_us >= ? AND start_us < ? ORDER BY start_us DESC LIMIT ?) WHERE {' AND '.join(filters)}",
            [to_us(since), to_us(until), scan_cap, *params],
        )
        out: list[str] = []
        for (trace_id,) in rows:
            if trace_id not in out:
                out.append(trace_id)
                if len(out) >= limit:
                    break
        return out

    def trace(self, trace_id: str, limit: int = 200) -> tuple[list[SpanRecord], int, int]:
        """The spans of one trace, oldest first (at most `limit`), how many it holds and how many failed."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT trace_id, span_id, parent_id, service, operation, start_us, end_us, status, attributes "
            "FROM spans WHERE trace_id = ? ORDER BY start_us, id LIMIT ?",
            (trace_id, limit),
        ).fetchall()
        total, errors = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 2), 0) FROM spans WHERE trace_id = ?", (trace_id,)
        ).fetchone()
        return [_record(r) for r in rows], int(total), int(errors)


def _record(row: tuple[Any, ...]) -> SpanRecord:
    trace_id, span_id, parent_id, service, operation, start, end, status, attrs = row
    return SpanRecord(
        trace_id,
        span_id,
        parent_id,
        service,
        operation,
        from_us(start),
        from_us(end),
        _CODE_STATUS.get(status, SpanStatus.UNSET),
        json.loads(attrs) if attrs else {},
    )


def open_trace_store(data_dir: Path) -> TraceStore:
    return TraceStore(Path(data_dir) / TRACE_DB_NAME)


def trace_store(ctx: ToolContext) -> TraceStore:
    """The context's trace store, opened once (drills and the server share one per context)."""
    return ctx.resource("trace_store", lambda: open_trace_store(ctx.settings.ensure_data_dir()))
