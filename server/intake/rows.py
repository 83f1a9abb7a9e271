"""Bulk inserts for the intake writer: alert rows and timeline entries, many per statement.

Why not ORM objects: a storm delivery is hundreds of rows, and the ORM unit of work (or even
SQLAlchemy Core's per-row parameter handling) was most of the writer's CPU. On SQLite the rows go
straight to the driver's executemany, converted column by column with each column's own bind
processor (JSON as compact text, datetimes through `UtcDateTime`), so the stored values are the
ones SQLAlchemy would have written; PostgreSQL the same way through psycopg's executemany (JSON
cast from compact text). Other databases get Core `insert(table)` with executemany.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, cast

import pydantic_core
from pydantic import BaseModel
from sqlalchemy import JSON, Dialect, Table, insert
from sqlalchemy.orm import Session

from firebreak.state.alerts import Alert
from firebreak.state.base import UtcDateTime

ALERTS = cast(Table, Alert.__table__)
ALERT_COLUMNS = tuple(c.key for c in ALERTS.columns if c.key != "id")


@dataclass(slots=True)
class NewAlert:
    """An alert row to insert: a plain object (not ORM-instrumented), so storms stay cheap."""

    source: str
    fingerprint: str
    status: str
    service: str
    severity: str
    title: str
    summary: str
    started_at: datetime
    ended_at: datetime | None
    labels: dict[str, Any]
    links: list[Any]  # AlertLink models or dicts: both are written as the same JSON
    raw: dict[str, Any]
    received_at: datetime
    last_received_at: datetime
    receive_count: int
    incident_id: str | None

    def as_row(self) -> dict[str, Any]:
        row = {key: getattr(self, key) for key in ALERT_COLUMNS}
        row["links"] = [lk.model_dump() if isinstance(lk, BaseModel) else lk for lk in self.links]
        return row


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


@functools.cache
def _driver_insert(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[str, list[tuple[Callable[[Any], Any] | None, bool]]]:
    """The SQL and, per column, (bind processor, whether equal values repeat: datetimes do).

    SQLite (`?`): JSON as compact text, datetimes as the text sqlite3's adapter writes. PostgreSQL
    (psycopg, `%s`): JSON as compact text cast to the column's json type, aware datetimes as they are.
    """
    sqlite = dialect.name == "sqlite"
    marks = []
    processors: list[tuple[Callable[[Any], Any] | None, bool]] = []
    for name in columns:
        col_type = table.c[name].type
        if isinstance(col_type, JSON):
            marks.append("?" if sqlite else "%s::json")
            processors.append((_json_text, False))
        elif isinstance(col_type, UtcDateTime):
            proc = col_type.bind_processor(dialect)
            marks.append("?" if sqlite else "%s")
            processors.append((_sqlite_datetime(proc) if sqlite else proc, True))
        else:
            marks.append("?" if sqlite else "%s")
            processors.append((col_type.bind_processor(dialect), False))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(marks)})"
    return sql, processors


def _sqlite_datetime(proc: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """The column's processor, then the text sqlite3's default datetime adapter would have written."""
    def convert(value: Any) -> Any:
        value = proc(value) if proc is not None else value
        return value.isoformat(" ") if isinstance(value, datetime) else value
    return convert


def _converted(values: list[Any], proc: Callable[[Any], Any] | None, repeats: bool) -> list[Any]:
    if proc is None:
        return values
    if not repeats:
        return list(map(proc, values))
    done: dict[Any, Any] = {}  # a delivery's rows share received_at, often started_at: convert each once
    out = []
    for value in values:
        if value not in done:
            done[value] = proc(value)
        out.append(done[value])
    return out


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]] | Sequence[NewAlert]) -> None:
    """Insert `rows` (dicts with the same keys, or `NewAlert`s) with one executemany."""
    if not rows:
        return
    conn = session.connection()
    alerts = isinstance(rows[0], NewAlert)
    if conn.dialect.name not in ("sqlite", "postgresql"):
        dicts = [r.as_row() if isinstance(r, NewAlert) else r for r in rows]
        session.execute(insert(table), dicts)
        return
    columns = ALERT_COLUMNS if alerts else tuple(cast(dict[str, Any], rows[0]))
    sql, processors = _driver_insert(table, columns, conn.dialect)
    get: Callable[[str], Callable[[Any], Any]] = attrgetter if alerts else itemgetter
    by_column = [_converted(list(map(get(name), rows)), proc, repeats)
                 for name, (proc, repeats) in zip(columns, processors, strict=True)]
    conn.exec_driver_sql(sql, list(zip(*by_column, strict=True)))  # type: ignore[arg-type]
