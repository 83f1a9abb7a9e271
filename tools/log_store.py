"""Embedded log store: structured lines in SQLite (WAL) in the data dir.

Engine chosen by measurement (200k lines, 2 cores, see scripts/bench_tools.py and the report):
plain SQLite table + (ts) and (service, ts) indexes ingests ~260k lines/s, SQLite with an FTS5 index
~130k lines/s, FTS5 trigram ~90k lines/s; DuckDB ingests columnar data faster but holds an exclusive
file lock, so `firebreak serve` and a `firebreak logs ...` CLI process could not open the store at
the same time. SQLite WAL lets many processes read while one writes. Text search is a substring scan
over the rows the time/service indexes select, which stays well under 100 ms for an incident window.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from firebreak.context import ToolContext
from firebreak.redact_batch import redact_many, redact_obj_many
from firebreak.tools.sqlite_store import SQLiteStore, epoch_units, from_epoch_units, insert_batched

LOG_DB_NAME = "logs.sqlite3"

_LEVELS = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERR": "ERROR",
    "ERROR": "ERROR",
    "CRIT": "FATAL",
    "CRITICAL": "FATAL",
    "FATAL": "FATAL",
    "ALERT": "FATAL",
    "EMERG": "FATAL",
    "PANIC": "FATAL",
}
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_lines (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,          -- microseconds since the epoch, UTC
    service TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    attributes TEXT               -- JSON object, NULL when empty
);
CREATE INDEX IF NOT EXISTS ix_log_lines_ts ON log_lines (ts);
CREATE INDEX IF NOT EXISTS ix_log_lines_service_ts ON log_lines (service, ts);
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_level(level: str) -> str:
    """Map the many spellings (warning, err, critical...) onto one of LEVELS; unknown ones kept upper."""
    up = level.strip().upper()
    return _LEVELS.get(up, up or "INFO")


def to_us(ts: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (naive times are refused)."""
    return epoch_units(ts, 1_000_000)


def from_us(us: int) -> datetime:
    return from_epoch_units(us, 1_000_000)


@dataclass(slots=True)
class LogLine:
    """One structured log line. A slotted dataclass, not a pydantic model: drills build 50k of them."""

    ts: datetime
    service: str
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)


_Row = tuple[int, str, str, str, str | None]
# One encoder, built once: json.dumps with options builds a new JSONEncoder on every call.
_DUMPS = json.JSONEncoder(default=str, separators=(",", ":")).encode
# Lines redacted together: one hint scan per chunk (see firebreak.redact.redact_many).
REDACT_CHUNK = 2048


def _fields(line: LogLine | Mapping[str, Any]) -> tuple[int, str, str, str, dict[str, Any]]:
    """(ts_us, service, level, message, attributes) of one line, not yet redacted; ValueError on a bad one."""
    if isinstance(line, LogLine):
        ts, service, level, message, attrs = line.ts, line.service, line.level, line.message, line.attributes
    else:
        ts = line["ts"]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        service, level, message = line["service"], line.get("level", "INFO"), line["message"]
        attrs = line.get("attributes") or {}
    if not service:
        raise ValueError("service: empty service name")
    return to_us(ts), service, _LEVELS.get(level) or normalize_level(level), message, attrs


def log_rows(lines: Iterable[LogLine | Mapping[str, Any]]) -> Iterator[_Row]:
    """Table rows for `lines`, redacted a chunk at a time: log lines come from outside, secrets are not kept.

    Messages of a chunk go through one `redact_many`, attribute dicts through one `redact_obj_many`
    (the same results as redacting each, at a fraction of the per-line cost).
    """
    it = iter(lines)
    while chunk := [_fields(line) for line in islice(it, REDACT_CHUNK)]:
        messages = redact_many([f[3] for f in chunk])
        with_attrs = [i for i, f in enumerate(chunk) if f[4]]
        encoded: list[str | None] = [None] * len(chunk)
        for i, attrs in zip(with_attrs, redact_obj_many([chunk[i][4] for i in with_attrs]), strict=True):
            encoded[i] = _DUMPS(attrs)
        for (ts, service, level, _, _), message, attrs_json in zip(chunk, messages, encoded, strict=True):
            yield ts, service, level, message, attrs_json


class LogStore(SQLiteStore):
    """SQLite log store; one connection per thread (the server's worker and request threads share it)."""

    schema = _SCHEMA

    def _setup_connection(self, conn: sqlite3.Connection) -> None:
        conn.create_function("regexp", 2, _regexp, deterministic=True)

    def ingest(self, lines: Iterable[LogLine | Mapping[str, Any]], batch_size: int = 50_000) -> int:
        """Append lines (LogLine or dicts of the same fields); returns how many were stored."""
        return self.insert(log_rows(lines), batch_size)

    def insert(self, rows: Iterable[_Row], batch_size: int = 50_000) -> int:
        """Append rows already made by `log_rows` (redacted): lets a caller redact outside its write lock."""
        sql = "INSERT INTO log_lines (ts, service, level, message, attributes) VALUES (?, ?, ?, ?, ?)"
        return insert_batched(self._conn(), sql, rows, batch_size)

    def ingest_rows(self, rows: Iterable[tuple[int, str, str, str]], batch_size: int = 50_000) -> int:
        """Fast path for generators that already hold integer times: (ts_us, service, level, message).

        Skips building a datetime per line (a drill writes ~50,000 lines inside a 5 s budget).
        """
        sql = "INSERT INTO log_lines (ts, service, level, message) VALUES (?, ?, ?, ?)"
        levels = _LEVELS
        it = iter(rows)

        def normalized() -> Iterator[tuple[int, str, str, str]]:
            while chunk := list(islice(it, REDACT_CHUNK)):
                messages = redact_many([row[3] for row in chunk])
                for (ts, service, level, _), message in zip(chunk, messages, strict=True):
                    yield int(ts), service, levels.get(level) or normalize_level(level), message

        return insert_batched(self._conn(), sql, normalized(), batch_size)

    def services(self) -> list[str]:
        # Skip-scan over the (service, ts) index: one probe per distinct service.
        conn = self._conn()
        out: list[str] = []
        row = conn.execute("SELECT MIN(service) FROM log_lines").fetchone()
        while row and row[0] is not None:
            out.append(row[0])
            row = conn.execute("SELECT MIN(service) FROM log_lines WHERE service > ?", (row[0],)).fetchone()
        return out

    def time_bounds(self, service: str | None = None) -> tuple[datetime, datetime] | None:
        if service:
            row = (
                self._conn().execute("SELECT MIN(ts), MAX(ts) FROM log_lines WHERE service = ?", (service,)).fetchone()
            )
        else:
            row = self._conn().execute("SELECT MIN(ts), MAX(ts) FROM log_lines").fetchone()
        if not row or row[0] is None:
            return None
        return from_us(row[0]), from_us(row[1])

    def _where(
        self,
        since: datetime,
        until: datetime,
        service: str | None,
        level: str | None,
        text: str | None,
        regex: bool,
    ) -> tuple[str, list[Any], str, list[Any]]:
        """(indexed clause, params, row-filter clause, params): service/time use the indexes, level and
        text are checked row by row."""
        base = ["ts >= ?", "ts < ?"]
        base_params: list[Any] = [to_us(since), to_us(until)]
        if service:
            base.insert(0, "service = ?")
            base_params.insert(0, service)
        filters: list[str] = []
        filter_params: list[Any] = []
        if level:
            filters.append("level = ?")
            filter_params.append(normalize_level(level))
        if text:
            if regex:
                filters.append("message REGEXP ?")
            else:
                # LIKE is ASCII case-insensitive; escape wildcards so text is literal.
                filters.append("message LIKE ? ESCAPE '\\'")
                text = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            filter_params.append(text)
        return " AND ".join(base), base_params, " AND ".join(filters) or "1", filter_params

    def search(
        self,
        *,
        since: datetime,
        until: datetime,
        service: str | None = None,
        level: str | None = None,
        text: str | None = None,
        regex: bool = False,
        limit: int = 50,
        scan_cap: int = 200_000,
    ) -> tuple[list[LogLine], int, bool]:
        """Newest-first matching lines (at most `limit`), the match count, and whether it is exact.

        Counting matches over millions of lines would cost seconds, so when the range holds more than
        `scan_cap` lines the count covers only the newest `scan_cap` of them (a lower bound).
        """
        base, base_params, filt, filt_params = self._where(since, until, service, level, text, regex)
        conn = self._conn()
        rows = conn.execute(
            f"SELECT ts, service, level, message, attributes FROM log_lines WHERE {base} AND {filt} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            [*base_params, *filt_params, limit],
        ).fetchall()
        lines = [_line(r) for r in rows]
        if len(rows) < limit:
            return lines, len(rows), True
        (n_range,) = conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM log_lines WHERE {base} LIMIT ?)", [*base_params, scan_cap + 1]
        ).fetchone()
        if not filt_params:
            return lines, min(n_range, scan_cap), n_range <= scan_cap
        if n_range <= scan_cap:
            (count,) = conn.execute(
                f"SELECT COUNT(*) FROM log_lines WHERE {base} AND {filt}", [*base_params, *filt_params]
            ).fetchone()
            return lines, count, True
        (count,) = conn.execute(
            f"SELECT COUNT(*) FROM (SELECT level, message FROM log_lines WHERE {base} "
            f"ORDER BY ts DESC LIMIT ?) WHERE {filt}",
            [*base_params, scan_cap, *filt_params],
        ).fetchone()
        return lines, max(count, len(lines)), False

    def iter_window(
        self, *, since: datetime, until: datetime, service: str | None = None, level: str | None = None
    ) -> Iterator[tuple[int, str, str, str]]:
        """(ts_us, service, level, message) rows in a window, oldest first, for pattern mining."""
        base, params, filt, filt_params = self._where(since, until, service, level, None, False)
        cur = self._conn().execute(
            f"SELECT ts, service, level, message FROM log_lines WHERE {base} AND {filt} ORDER BY ts",
            [*params, *filt_params],
        )
        while True:
            chunk = cur.fetchmany(10_000)
            if not chunk:
                return
            yield from chunk


def _line(row: tuple[int, str, str, str, str | None]) -> LogLine:
    ts, service, level, message, attrs = row
    return LogLine(from_us(ts), service, level, message, json.loads(attrs) if attrs else {})


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        rx = re.compile(pattern)
        if len(_REGEX_CACHE) > 256:
            _REGEX_CACHE.clear()
        _REGEX_CACHE[pattern] = rx
    return rx.search(value) is not None


def open_log_store(data_dir: Path) -> LogStore:
    return LogStore(Path(data_dir) / LOG_DB_NAME)


def get_log_store(ctx: ToolContext) -> LogStore:
    """The context's log store, opened once (drills and the server share one per context)."""
    return ctx.resource("log_store", lambda: open_log_store(ctx.settings.ensure_data_dir()))
