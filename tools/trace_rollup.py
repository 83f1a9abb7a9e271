"""Rollups of the trace store: what each span adds to the per-second/minute/hour totals.

Kept apart from the store's reading and linking code. A span's contribution (one row of `span_rollup`,
maybe one of `edge_rollup`) depends only on columns stored with it, so new spans are summed by SQLite
(`rollups_from_spans`), a store written under an older layout is rebuilt from its spans, and the few
stored spans whose links change later are corrected in Python by the difference (`Node`, `apply_changes`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

US = 1_000_000
WIDTHS = (1, 60, 3600)  # rollup bucket widths, seconds

# A span as stored: (trace_id, span_id, parent_id, service, operation, start_us, end_us, status_code, attrs_json)
SpanRow = tuple[str, str, str | None, str, str, int, int, int, str | None]
Contribution = tuple[tuple[int, ...], tuple[str, str, int, int, int] | None]

SPAN_FIELDS = ("spans", "errors", "entries", "entry_errors", "entry_us", "self_us", "remote_us")
EDGE_FIELDS = ("calls", "errors", "dur_us")


def _conflict_sql(keys: Sequence[str], fields: Sequence[str]) -> str:
    sets = ", ".join(f"{f} = {f} + excluded.{f}" for f in fields)
    return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


def _upsert_sql(table: str, keys: Sequence[str], fields: Sequence[str]) -> str:
    cols = [*keys, *fields]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) " + _conflict_sql(
        keys, fields
    )


_SPAN_KEYS = ("width", "bucket", "service", "operation")
_EDGE_KEYS = ("width", "bucket", "caller", "callee")
_SPAN_UPSERT = _upsert_sql("span_rollup", _SPAN_KEYS, SPAN_FIELDS)
_EDGE_UPSERT = _upsert_sql("edge_rollup", _EDGE_KEYS, EDGE_FIELDS)
_SPAN_CONFLICT = _conflict_sql(_SPAN_KEYS, SPAN_FIELDS)
_EDGE_CONFLICT = _conflict_sql(_EDGE_KEYS, EDGE_FIELDS)


class Node:
    """A span being linked during one ingest step (stored before, or new in this step)."""

    __slots__ = ("row_id", "row", "child_sum", "remote_sum", "parent_service", "old", "new")

    def __init__(
        self, row_id: int | None, row: SpanRow, child_sum: int, remote_sum: int, parent_service: str | None
    ) -> None:
        self.row_id = row_id
        self.row = row
        self.child_sum = child_sum
        self.remote_sum = remote_sum
        self.parent_service = parent_service
        self.new = row_id is None
        # What this span contributed to the rollups before this step (nothing when new).
        self.old: Contribution | None = None if self.new else self.contribution()

    def contribution(self) -> Contribution:
        """(span_rollup values, edge (caller, callee, calls, errors, dur) or None) for this span."""
        _, _, _, service, _, start, end, status, _ = self.row
        dur = end - start
        err = 1 if status == 2 else 0
        entry = self.parent_service is None or self.parent_service != service
        self_us = max(dur - self.child_sum, 0)
        remote_us = min(self.remote_sum, dur)
        values = (1, err, int(entry), err if entry else 0, dur if entry else 0, self_us, remote_us)
        edge = None
        if self.parent_service is not None and self.parent_service != service:
            edge = (self.parent_service, service, 1, err, dur)
        return values, edge


def rebuild_rollups(conn: sqlite3.Connection) -> None:
    """Recompute every rollup row from the spans table (each span's links are stored with it)."""
    conn.execute("DELETE FROM span_rollup")
    conn.execute("DELETE FROM edge_rollup")
    rollups_from_spans(conn, 0)


_TEMP_SCHEMA = f"""
CREATE TEMP TABLE IF NOT EXISTS new_span_seconds (
    second INTEGER, service TEXT, operation TEXT, {", ".join(f"{f} INTEGER" for f in SPAN_FIELDS)}
);
CREATE TEMP TABLE IF NOT EXISTS new_edge_seconds (
    second INTEGER, caller TEXT, callee TEXT, {", ".join(f"{f} INTEGER" for f in EDGE_FIELDS)}
);
"""


def rollups_from_spans(conn: sqlite3.Connection, after_id: int) -> None:
    """Add the contributions of the spans with id > after_id to the rollups, aggregated by SQLite.

    The new spans are read once into per-second sums (temporary tables), which are then folded into
    each bucket width. The same definitions as `Node.contribution`, which handles the (fewer) stored
    spans whose links change later.
    """
    entry = "(parent_service IS NULL OR parent_service != service)"
    dur = "(end_us - start_us)"
    for stmt in _TEMP_SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute("DELETE FROM temp.new_span_seconds")
    conn.execute("DELETE FROM temp.new_edge_seconds")
    conn.execute(
        f"INSERT INTO temp.new_span_seconds SELECT start_us / {US}, service, operation, COUNT(*), SUM(status = 2), "
        f"SUM({entry}), SUM({entry} AND status = 2), SUM(CASE WHEN {entry} THEN {dur} ELSE 0 END), "
        f"SUM(MAX({dur} - child_sum, 0)), SUM(MIN(remote_sum, {dur})) FROM spans WHERE id > ? GROUP BY 1, 2, 3",
        (after_id,),
    )
    conn.execute(
        f"INSERT INTO temp.new_edge_seconds SELECT start_us / {US}, parent_service, service, COUNT(*), "
        f"SUM(status = 2), SUM({dur}) FROM spans "
        "WHERE id > ? AND parent_service IS NOT NULL AND parent_service != service GROUP BY 1, 2, 3",
        (after_id,),
    )
    span_sums = ", ".join(f"SUM({f})" for f in SPAN_FIELDS)
    edge_sums = ", ".join(f"SUM({f})" for f in EDGE_FIELDS)
    for width in WIDTHS:
        bucket = f"(second - second % {width})"
        conn.execute(
            f"INSERT INTO span_rollup (width, bucket, service, operation, {', '.join(SPAN_FIELDS)}) "
            f"SELECT {width}, {bucket}, service, operation, {span_sums} FROM temp.new_span_seconds "
            f"GROUP BY 2, 3, 4 {_SPAN_CONFLICT}"
        )
        conn.execute(
            f"INSERT INTO edge_rollup (width, bucket, caller, callee, {', '.join(EDGE_FIELDS)}) "
            f"SELECT {width}, {bucket}, caller, callee, {edge_sums} FROM temp.new_edge_seconds "
            f"GROUP BY 2, 3, 4 {_EDGE_CONFLICT}"
        )


def apply_changes(conn: sqlite3.Connection, nodes: list[Node]) -> None:
    """Add each node's change of contribution to the rollups: summed per second first, then per width."""
    per_second: dict[tuple[int, str, str], list[int]] = {}
    edges_per_second: dict[tuple[int, str, str], list[int]] = {}

    def bump(acc: dict[tuple[int, str, str], list[int]], key: tuple[int, str, str], values: Sequence[int]) -> None:
        prev = acc.get(key)
        acc[key] = list(values) if prev is None else [a + b for a, b in zip(prev, values, strict=True)]

    for node in nodes:
        values, edge = node.contribution()
        second = node.row[5] // US
        if node.old is not None:
            old_values, old_edge = node.old
            values = tuple(a - b for a, b in zip(values, old_values, strict=True))
            if old_edge is not None:
                bump(edges_per_second, (second, old_edge[0], old_edge[1]), [-v for v in old_edge[2:]])
        bump(per_second, (second, node.row[3], node.row[4]), values)
        if edge is not None:
            bump(edges_per_second, (second, edge[0], edge[1]), edge[2:])
    for table_sql, acc in ((_SPAN_UPSERT, per_second), (_EDGE_UPSERT, edges_per_second)):
        rows: dict[tuple[int, int, str, str], list[int]] = {}
        for (second, a, b), summed in acc.items():
            if not any(summed):
                continue
            for width in WIDTHS:
                key = (width, second - second % width, a, b)
                prev = rows.get(key)
                rows[key] = summed if prev is None else [x + y for x, y in zip(prev, summed, strict=True)]
        conn.executemany(table_sql, [(*k, *v) for k, v in rows.items()])


def rollup_ranges(since_s: int, until_s: int, widths: Sequence[int] = WIDTHS[::-1]) -> list[tuple[int, int, int]]:
    """[since_s, until_s) as (width, first bucket, end) ranges: whole hours, then ragged minutes, then seconds."""
    if since_s >= until_s:
        return []
    width, finer = widths[0], widths[1:]
    if not finer:
        return [(width, since_s, until_s)]
    a, b = -(-since_s // width) * width, until_s // width * width
    if a >= b:
        return rollup_ranges(since_s, until_s, finer)
    return [(width, a, b), *rollup_ranges(since_s, a, finer), *rollup_ranges(b, until_s, finer)]
