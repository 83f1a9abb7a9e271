"""Embedded time-series store (SQLite, WAL) in the data dir, plus dashboards.

Points live in a WITHOUT ROWID table keyed by (series_id, ts), so one series over a range is one
contiguous B-tree range scan (a day at 15 s = 5,760 rows in a few ms). SQLite, like the log store,
because the server and CLI processes open the same files at the same time.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from firebreak.context import ToolContext
from firebreak.tools.sqlite_store import SQLiteStore, epoch_units, from_epoch_units, insert_batched

METRIC_DB_NAME = "metrics.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',   -- canonical JSON (sorted keys)
    UNIQUE (service, name, labels)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,                 -- milliseconds since the epoch, UTC
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_types (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL                   -- counter | gauge | histogram
);
CREATE TABLE IF NOT EXISTS dashboards (
    uid TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    url TEXT,
    panels TEXT NOT NULL                 -- JSON list of panels
);
"""


COUNTER_SUFFIXES = ("_total",)
METRIC_KINDS = ("counter", "gauge", "histogram")


def kind_by_suffix(name: str) -> str:
    """Prometheus naming: `_total` is a counter, `_bucket` a histogram's buckets; anything else a gauge."""
    if name.endswith(COUNTER_SUFFIXES):
        return "counter"
    if name.endswith("_bucket"):
        return "histogram"
    return "gauge"


def to_ms(ts: datetime) -> int:
    return epoch_units(ts, 1000)


def from_ms(ms: int) -> datetime:
    return from_epoch_units(ms, 1000)


@dataclass(slots=True)
class MetricPoint:
    """One sample. A slotted dataclass: drills and benchmarks build millions of them."""

    ts: datetime
    service: str
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class Panel(BaseModel):
    title: str
    service: str | None = None
    metric: str | None = None
    url: str | None = Field(default=None, description="Link to the panel; built from the dashboard's when unset.")


class Dashboard(BaseModel):
    uid: str = Field(min_length=1, max_length=200)
    title: str
    panels: list[Panel] = Field(default_factory=list)
    url: str | None = Field(default=None, description="Link to the dashboard; `/dashboards/{uid}` when unset.")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    id: int
    service: str
    name: str
    labels: dict[str, str]


class MetricStore(SQLiteStore):
    """SQLite metric store; one connection per thread."""

    schema = _SCHEMA

    def __init__(self, path: Path) -> None:
        self._series_ids: dict[tuple[str, str, str], int] = {}
        super().__init__(path)

    def _series_id(self, conn: sqlite3.Connection, service: str, name: str, labels: str) -> int:
        key = (service, name, labels)
        sid = self._series_ids.get(key)
        if sid is None:
            conn.execute(
                "INSERT OR IGNORE INTO series (service, name, labels) VALUES (?, ?, ?)", (service, name, labels)
            )
            (sid,) = conn.execute("SELECT id FROM series WHERE service = ? AND name = ? AND labels = ?", key).fetchone()
            self._series_ids[key] = sid
        return sid

    def ingest(self, points: Iterable[MetricPoint | Mapping[str, Any]], batch_size: int = 100_000) -> int:
        """Store samples (a later sample at the same series and ts replaces the earlier one)."""
        conn = self._conn()
        sql = "INSERT OR REPLACE INTO points (series_id, ts, value) VALUES (?, ?, ?)"

        def rows() -> Iterator[tuple[int, int, float]]:
            for p in points:
                if isinstance(p, MetricPoint):
                    ts, service, name, value, labels = p.ts, p.service, p.name, p.value, p.labels
                else:
                    ts, service, name, value = p["ts"], p["service"], p["name"], p["value"]
                    labels = p.get("labels") or {}
                    if isinstance(ts, str):
                        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
                if not service or not name:
                    raise ValueError("service and name: both are required for a metric point")
                value = float(value)
                if not math.isfinite(value):
                    continue  # NaN/Inf samples (gaps) are not stored
                lab = json.dumps(labels, sort_keys=True, separators=(",", ":")) if labels else "{}"
                yield self._series_id(conn, service, name, lab), to_ms(ts), value

        try:
            with conn:  # one transaction for the whole ingest
                return insert_batched(conn, sql, rows(), batch_size, per_batch_txn=False)
        except BaseException:
            self._series_ids.clear()  # series rows inserted in the rolled-back transaction are gone
            raise

    def series(self, service: str | None = None, name: str | None = None) -> list[SeriesKey]:
        sql, params = "SELECT id, service, name, labels FROM series", []
        conds = []
        if service:
            conds.append("service = ?")
            params.append(service)
        if name:
            conds.append("name = ?")
            params.append(name)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        rows = self._conn().execute(sql + " ORDER BY service, name, labels", params).fetchall()
        return [SeriesKey(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def services(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT DISTINCT service FROM series ORDER BY service")]

    def names(self, service: str) -> list[str]:
        rows = self._conn().execute("SELECT DISTINCT name FROM series WHERE service = ? ORDER BY name", (service,))
        return [r[0] for r in rows]

    def points(self, series_ids: list[int], since: datetime, until: datetime) -> list[tuple[int, int, float]]:
        """(series_id, ts_ms, value) rows, ordered by series then time, for since <= ts <= until."""
        if not series_ids:
            return []
        marks = ",".join("?" * len(series_ids))
        return (
            self._conn()
            .execute(
                f"SELECT series_id, ts, value FROM points WHERE series_id IN ({marks}) AND ts >= ? AND ts <= ? "
                "ORDER BY series_id, ts",
                [*series_ids, to_ms(since), to_ms(until)],
            )
            .fetchall()
        )

    def bucketed(
        self, series_ids: list[int], since: datetime, until: datetime, step_ms: int, max_buckets: int
    ) -> list[tuple[int, float]]:
        """Mean of all selected series per `step_ms` bucket (bucket start, value), oldest first.

        Buckets are aligned on multiples of the step since the epoch (as Prometheus and Grafana align
        them), so a point keeps its own time at the native step. At most `max_buckets` of the newest
        buckets are returned.
        """
        if not series_ids:
            return []
        marks = ",".join("?" * len(series_ids))
        rows = (
            self._conn()
            .execute(
                f"SELECT ts / ? AS b, AVG(value) FROM points WHERE series_id IN ({marks}) "
                "AND ts >= ? AND ts <= ? GROUP BY b ORDER BY b DESC LIMIT ?",
                [step_ms, *series_ids, to_ms(since), to_ms(until), max_buckets],
            )
            .fetchall()
        )
        return [(b * step_ms, v) for b, v in reversed(rows)]

    def set_metric_kind(self, name: str, kind: str) -> None:
        """Declare a metric's type (as Prometheus metadata does); otherwise its suffix decides."""
        if kind not in METRIC_KINDS:
            raise ValueError(f"kind: unknown metric kind {kind!r} ({', '.join(METRIC_KINDS)})")
        conn = self._conn()
        with conn:
            conn.execute("INSERT OR REPLACE INTO metric_types (name, kind) VALUES (?, ?)", (name, kind))

    def metric_kind(self, name: str) -> str:
        """counter | gauge | histogram: the declared type, else the suffix's."""
        row = self._conn().execute("SELECT kind FROM metric_types WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else kind_by_suffix(name)

    def rates(self, series_ids: list[int], since: datetime, until: datetime) -> list[tuple[int, int, float]]:
        """Per-second rates of counters: (series_id, ts_ms, rate) at each sample in the range, from the
        previous sample (one before `since` is read so the first point has a rate). A drop is a
        counter reset: the new value is counted from zero, as Prometheus' rate() does."""
        out: list[tuple[int, int, float]] = []
        conn = self._conn()
        for sid in series_ids:
            prev = conn.execute(
                "SELECT ts, value FROM points WHERE series_id = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
                (sid, to_ms(since)),
            ).fetchone()
            for _, ts, value in self.points([sid], since, until):
                if prev is not None and ts > prev[0]:
                    grew = value - prev[1] if value >= prev[1] else value
                    out.append((sid, ts, grew * 1000.0 / (ts - prev[0])))
                prev = (ts, value)
        return out

    def native_step_ms(self, series_id: int) -> int | None:
        """The median spacing of a series' last samples (its scrape interval)."""
        rows = (
            self._conn()
            .execute("SELECT ts FROM points WHERE series_id = ? ORDER BY ts DESC LIMIT 21", (series_id,))
            .fetchall()
        )
        if len(rows) < 2:
            return None
        gaps = sorted(rows[i][0] - rows[i + 1][0] for i in range(len(rows) - 1))
        return max(1, gaps[len(gaps) // 2])

    # --- dashboards ---------------------------------------------------------------------------

    def upsert_dashboard(self, dashboard: Dashboard | Mapping[str, Any]) -> Dashboard:
        dash = dashboard if isinstance(dashboard, Dashboard) else Dashboard.model_validate(dashboard)
        conn = self._conn()
        with conn:
            conn.execute(
                "INSERT INTO dashboards (uid, title, url, panels) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (uid) DO UPDATE SET title = excluded.title, url = excluded.url, "
                "panels = excluded.panels",
                (
                    dash.uid,
                    dash.title,
                    dash.url,
                    json.dumps([p.model_dump() for p in dash.panels]),
                ),
            )
        return dash

    def dashboards(self) -> list[Dashboard]:
        rows = self._conn().execute("SELECT uid, title, url, panels FROM dashboards ORDER BY title, uid")
        return [
            Dashboard(uid=r[0], title=r[1], url=r[2], panels=[Panel.model_validate(p) for p in json.loads(r[3])])
            for r in rows
        ]


def open_metric_store(data_dir: Path) -> MetricStore:
    return MetricStore(Path(data_dir) / METRIC_DB_NAME)


def get_metric_store(ctx: ToolContext) -> MetricStore:
    """The context's metric store, opened once."""
    return ctx.resource("metric_store", lambda: open_metric_store(ctx.settings.ensure_data_dir()))
