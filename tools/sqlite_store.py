"""Shared plumbing of the embedded SQLite stores (logs, metrics): WAL setup, per-thread connections.

Both stores are opened by the server and by CLI processes at the same time, so they use the same
pragmas and the same one-connection-per-thread scheme; this base class holds that once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def epoch_units(ts: datetime, per_second: int) -> int:
    """Aware datetime -> integer units (per_second of them a second) since the epoch; naive times are refused."""
    if ts.tzinfo is None:
        raise ValueError(f"ts: timestamp {ts.isoformat()} has no timezone (use e.g. 2026-03-02T08:00:00Z)")
    return round(ts.timestamp() * per_second)


def from_epoch_units(value: int, per_second: int) -> datetime:
    """Inverse of `epoch_units`: an aware UTC datetime."""
    return datetime.fromtimestamp(value / per_second, tz=UTC)


def insert_batched(
    conn: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]], batch_size: int, *, per_batch_txn: bool = True
) -> int:
    """executemany `sql` over `rows` in chunks of `batch_size`; returns how many rows were written.

    With `per_batch_txn` each chunk commits on its own (readers see progress on long ingests);
    otherwise the caller holds the transaction.
    """
    total = 0
    batch: list[Sequence[Any]] = []

    def flush() -> None:
        nonlocal total, batch
        if per_batch_txn:
            with conn:
                conn.executemany(sql, batch)
        else:
            conn.executemany(sql, batch)
        total += len(batch)
        batch = []

    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return total


class SQLiteStore:
    """A SQLite file in WAL mode with one connection per thread (worker and request threads share a store)."""

    schema: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        with self._conn() as conn:
            conn.executescript(self.schema)

    def _setup_connection(self, conn: sqlite3.Connection) -> None:
        """Hook for per-connection extras (SQL functions); called once per new connection."""

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-65536")
            self._setup_connection(conn)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.ProgrammingError):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
