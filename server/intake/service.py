"""Storing alerts: dedup, resolve, correlate into incidents, queue one investigation per incident.

`ingest_alerts(ctx, alerts)` is the single entry point (webhooks, drills and tests all use it). One
call is one transaction: either every alert of a delivery is stored with its incident and
investigation, or nothing is.

Concurrency: calls are serialised, in process by a lock per database and across processes by a
database lock taken first in the transaction (SQLite: a no-op UPDATE takes the write lock at once,
so reads and writes see one consistent state; PostgreSQL: a transaction advisory lock). Correlation
needs this: two deliveries about one service must not both open an incident.

Storms: every alert is stored (one row per `(source, fingerprint)`, re-sends update it). New
incidents are bounded: once `STORM_INCIDENT_LIMIT` incidents were opened by intake within one
correlation window, alerts that match no open incident join a single "alert storm" incident
instead of opening more. Each incident gets exactly one investigation, queued when intake opens it
(or when an incident opened by hand first receives an alert); later alerts never queue another.

Back-pressure (`IntakeQueue`, used by the webhooks): deliveries are stored in arrival order by one
writer thread. `firebreak_intake_queue_depth` counts alerts parsed and waiting to be stored. A
delivery that would take the depth past `settings.intake_queue_limit` (FIREBREAK_INTAKE_QUEUE_LIMIT,
default 50,000 alerts: about 8 s of work at the ~6,500 alerts per CPU-second measured by
scripts/bench_intake.py) is answered 429 with `Retry-After` (seconds, from the measured rate); a
single delivery larger than the limit can never fit and is answered 413. The backlog is per
process (one `IntakeQueue` per ToolContext). A database that stays locked gives 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import pydantic_core
from sqlalchemy import JSON, Dialect, Table, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, load_only

from firebreak.context import ToolContext
from firebreak.memory.incident_log import (
    add_link,
    alert_fired_again,
    all_alerts_resolved,
    open_incident,
    update_incident,
)
from firebreak.server.intake.correlate import SEVERITY_RANK, Correlator, incident_severity, last_activity
from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.models import IngestResult, NormalizedAlert
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.state.investigations import Investigation

log = logging.getLogger("firebreak.intake")

ACTOR = "intake"
STORM_INCIDENT_LIMIT = 20
STORM_TAG = "alert-storm"
MAX_INCIDENT_SERVICES = 50
_PG_LOCK_KEY = 0x46_49_52_45  # "FIRE": the intake's advisory lock
_CHUNK = 500
_INCIDENT_FIELDS = (
    Incident.id, Incident.title, Incident.services, Incident.severity, Incident.status, Incident.tags,
    Incident.started_at, Incident.detected_at, Incident.created_at, Incident.updated_at, Incident.source,
)
_ALERTS = cast(Table, Alert.__table__)
_TIMELINE = cast(Table, TimelineEntry.__table__)
_ALERT_COLUMNS = tuple(c.key for c in _ALERTS.columns if c.key != "id")

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _process_lock(url: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(url, threading.Lock())


def _lock_database(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(text("UPDATE id_counters SET last = last WHERE 1 = 0"))
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def ingest_alerts(ctx: ToolContext, alerts: list[NormalizedAlert]) -> IngestResult:
    """Store one delivery's alerts and correlate them into incidents, in one transaction."""
    result = IngestResult(received=len(alerts))
    if not alerts:
        return result
    with _process_lock(ctx.db.url), ctx.db.session() as session:
        _lock_database(session)
        _Ingest(ctx, session, ctx.clock.now(), result).run(alerts)
    from firebreak.server.observability import INCIDENTS_OPENED, INVESTIGATIONS_QUEUED

    INCIDENTS_OPENED.inc(len(result.incidents_opened))
    INVESTIGATIONS_QUEUED.inc(len(result.investigations_queued))
    return result


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


@functools.cache
def _sqlite_insert(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, list[Any]]:
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    processors: list[Any] = []
    for name in columns:
        col_type = table.c[name].type
        processors.append(_json_text if isinstance(col_type, JSON) else col_type.bind_processor(dialect))
    return sql, processors


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany; on SQLite straight to the driver with the columns' own bind processors.

    SQLAlchemy's per-row parameter handling was half of a storm delivery's CPU; the values stored
    are the same (JSON as compact text, datetimes through `UtcDateTime`).
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    columns = tuple(rows[0])
    sql, processors = _sqlite_insert(table, columns, conn.dialect)
    pairs = list(zip(columns, processors, strict=True))
    params = [tuple(proc(row[name]) if proc is not None else row[name] for name, proc in pairs) for row in rows]
    conn.exec_driver_sql(sql, params)  # type: ignore[arg-type]


@dataclass(slots=True)
class _NewAlert:
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
    links: list[Any]
    raw: dict[str, Any]
    received_at: datetime
    last_received_at: datetime
    receive_count: int
    incident_id: str | None

    def as_row(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _ALERT_COLUMNS}


class _Ingest:
    """The work of one `ingest_alerts` call, inside its transaction."""

    def __init__(self, ctx: ToolContext, session: Session, now: datetime, result: IngestResult) -> None:
        self.s = session
        self.now = now
        self.result = result
        self.settings = ctx.settings
        self.window = timedelta(minutes=ctx.settings.correlation_window_minutes)
        # Only what correlation reads: a triage report can be large and is not needed here.
        self.open: list[Incident] = list(session.scalars(
            select(Incident).where(Incident.status == "open").options(load_only(*_INCIDENT_FIELDS))))
        self.by_id = {inc.id: inc for inc in self.open}
        self.opened_in_window = session.scalar(
            select(func.count()).select_from(Incident).where(
                Incident.source == ACTOR, Incident.detected_at >= now - self.window)
        ) or 0
        open_ids = list(self.by_id)
        self.investigated: set[str] = set()
        for i in range(0, len(open_ids), _CHUNK):
            self.investigated.update(session.scalars(select(Investigation.incident_id).where(
                Investigation.incident_id.in_(open_ids[i:i + _CHUNK])).distinct()))
        self.opened: set[str] = set()
        self.closed: set[str] = set()  # incidents known to be resolved (or gone)
        self.new_rows: list[_NewAlert] = []  # bulk-inserted at the end
        self.correlator = Correlator(self.open, self.settings.dependencies, now, self.window)
        self.timeline: list[dict[str, Any]] = []  # alert timeline entries, bulk-inserted at the end
        self.resolving: dict[str, Incident] = {}  # incidents that saw a resolution: all resolved now?

    def run(self, alerts: list[NormalizedAlert]) -> None:
        known: dict[tuple[str, str], Alert | _NewAlert] = dict(self._existing(alerts))
        with self.s.no_autoflush:
            for alert in alerts:
                key = (alert.source, alert.fingerprint)
                row = known.get(key)
                if row is None:
                    known[key] = self._create(alert)
                else:
                    self._update(row, alert)
        # Bulk inserts: a storm delivery is hundreds of rows, the ORM unit of work would dominate.
        self.s.flush()
        if self.new_rows:
            _bulk_insert(self.s, _ALERTS, [row.as_row() for row in self.new_rows])
        if self.timeline:
            _bulk_insert(self.s, _TIMELINE, self.timeline)
        self._mitigate_when_all_resolved()

    def _mitigate_when_all_resolved(self) -> None:
        """Incident state follows its alerts: none firing any more means mitigated (a person closes it)."""
        for incident in self.resolving.values():
            firing = self.s.scalar(select(func.count()).select_from(Alert).where(
                Alert.incident_id == incident.id, Alert.status == "firing"))
            if not firing and all_alerts_resolved(self.s, incident, at=self.now, actor=ACTOR):
                self.result.incidents_mitigated.append(incident.id)

    def _existing(self, alerts: list[NormalizedAlert]) -> dict[tuple[str, str], Alert]:
        wanted: dict[str, set[str]] = {}
        for alert in alerts:
            wanted.setdefault(alert.source, set()).add(alert.fingerprint)
        found: dict[tuple[str, str], Alert] = {}
        for source, prints in wanted.items():
            ordered = sorted(prints)
            for i in range(0, len(ordered), _CHUNK):
                rows = self.s.scalars(select(Alert).where(
                    Alert.source == source, Alert.fingerprint.in_(ordered[i:i + _CHUNK])))
                found.update({(r.source, r.fingerprint): r for r in rows})
        return found

    # --- alerts ---

    def _create(self, alert: NormalizedAlert) -> _NewAlert:
        row = _NewAlert(
            source=alert.source, fingerprint=alert.fingerprint, status=alert.status, service=alert.service,
            severity=alert.severity, title=alert.title, summary=alert.summary, started_at=alert.started_at,
            ended_at=(alert.ended_at or self.now) if alert.status == "resolved" else None,
            labels=alert.labels, links=[lk.model_dump() for lk in alert.links], raw=alert.raw,
            received_at=self.now, last_received_at=self.now, receive_count=1, incident_id=None,
        )
        if alert.status == "firing":
            incident = self._place(alert)
            row.incident_id = incident.id
            self._joined(incident, alert, "Alert received")
        else:
            # A resolution for an alert never seen firing: kept, attached for context, opens nothing.
            match = self._match(alert.service)
            if match is not None:
                row.incident_id = match.id
                self._note(match, alert, "Resolved alert received")
        self.new_rows.append(row)
        self.result.created += 1
        return row

    def _update(self, row: Alert | _NewAlert, alert: NormalizedAlert) -> None:
        was = row.status
        row.last_received_at = self.now
        row.receive_count = (row.receive_count or 0) + 1
        row.service, row.severity, row.title, row.summary = alert.service, alert.severity, alert.title, alert.summary
        row.labels, row.links, row.raw = alert.labels, [lk.model_dump() for lk in alert.links], alert.raw
        incident = self._incident_of(row.incident_id)
        if alert.status == "resolved":
            if was == "resolved":
                self.result.updated += 1
                return
            row.status, row.ended_at = "resolved", alert.ended_at or self.now
            self.result.resolved += 1
            if incident is not None:
                self._note(incident, alert, "Alert resolved")
                self.resolving[incident.id] = incident
            return
        self.result.updated += 1
        refired = was == "resolved"
        if refired:
            row.status, row.ended_at, row.started_at = "firing", None, alert.started_at
        if incident is None:
            incident = self._place(alert)
            row.incident_id = incident.id
            self._joined(incident, alert, "Alert firing again" if refired else "Alert received")
        else:
            self._raise_severity(incident, alert)
            if refired:
                alert_fired_again(self.s, incident, at=self.now, actor=ACTOR)
                self._note(incident, alert, "Alert firing again")
            else:
                self._touch(incident)

    # --- incidents ---

    def _incident_of(self, incident_id: str | None) -> Incident | None:
        """The incident an alert already belongs to, while it is open or mitigated.

        A mitigated incident keeps its alerts (repeat notifications, a relapse) rather than a new
        incident opening for the same problem; a resolved one does not.
        """
        if incident_id is None:
            return None
        incident = self.by_id.get(incident_id)
        if incident is None and incident_id not in self.closed:
            found = self.s.get(Incident, incident_id)
            if found is not None and found.status == "mitigated":
                self.by_id[incident_id] = incident = found
            else:
                self.closed.add(incident_id)
        return incident

    def _place(self, alert: NormalizedAlert) -> Incident:
        """The open incident a firing alert joins; opens one (or the storm incident) when none fits."""
        match = self._match(alert.service)
        if match is not None:
            return match
        if self.opened_in_window < STORM_INCIDENT_LIMIT:
            return self._open(alert, storm=False)
        since = self.now - self.window
        storms = [inc for inc in self.open
                  if STORM_TAG in (inc.tags or []) and (last_activity(inc) or since) >= since]
        if storms:
            return max(storms, key=lambda inc: last_activity(inc) or since)
        return self._open(alert, storm=True)

    def _match(self, service: str) -> Incident | None:
        return self.correlator.match(service)

    def _open(self, alert: NormalizedAlert, *, storm: bool) -> Incident:
        if storm:
            title = (f"Alert storm: more than {STORM_INCIDENT_LIMIT} incidents opened within "
                     f"{self.settings.correlation_window_minutes} min")
            log.warning("alert storm: %d incidents opened within the correlation window; further unmatched "
                        "alerts join %r", self.opened_in_window, title)
        else:
            title = alert.title if alert.service in ("unknown", "") or alert.service in alert.title \
                else f"{alert.service}: {alert.title}"
        incident = open_incident(
            self.s, title=title[:500], services=[alert.service], severity=incident_severity(alert.severity),
            at=self.now, actor=ACTOR, started_at=alert.started_at, detected_at=self.now, source=ACTOR,
            symptoms=alert.summary or alert.title, tags=[STORM_TAG] if storm else [],
        )
        for link in alert.links[:5]:
            add_link(self.s, incident, kind=link.kind, url=link.url, label=link.label, at=self.now, actor=ACTOR)
        self.open.append(incident)
        self.correlator.invalidate()
        self.by_id[incident.id] = incident
        self.opened.add(incident.id)
        self.opened_in_window += 1
        self.result.incidents_opened.append(incident.id)
        return incident

    def _joined(self, incident: Incident, alert: NormalizedAlert, what: str) -> None:
        services = list(incident.services or [])
        if alert.service not in services and len(services) < MAX_INCIDENT_SERVICES:
            update_incident(self.s, incident, {"services": [*services, alert.service]}, at=self.now, actor=ACTOR)
            self.correlator.invalidate()
        if alert.started_at < (incident.started_at or alert.started_at) and STORM_TAG not in (incident.tags or []):
            update_incident(self.s, incident, {"started_at": alert.started_at}, at=self.now, actor=ACTOR)
        self._raise_severity(incident, alert)
        self._note(incident, alert, what)
        self._ensure_investigation(incident)

    def _raise_severity(self, incident: Incident, alert: NormalizedAlert) -> None:
        wanted = incident_severity(alert.severity)
        if SEVERITY_RANK[wanted] > SEVERITY_RANK.get(incident.severity, 0):
            update_incident(self.s, incident, {"severity": wanted}, at=self.now, actor=ACTOR)

    def _note(self, incident: Incident, alert: NormalizedAlert, what: str) -> None:
        self.timeline.append({
            "incident_id": incident.id, "at": self.now, "actor": ACTOR, "kind": "alert", "field": None,
            "old_value": None, "new_value": {"source": alert.source, "fingerprint": alert.fingerprint,
                                             "status": alert.status},
            "text": f"{what} ({alert.source}, {alert.severity}, {alert.service}): {alert.title}",
        })
        self._touch(incident)

    def _touch(self, incident: Incident) -> None:
        if incident.updated_at is None or incident.updated_at < self.now:
            incident.updated_at = self.now
        if incident.id not in self.opened and incident.id not in self.result.incidents_updated:
            self.result.incidents_updated.append(incident.id)

    def _ensure_investigation(self, incident: Incident) -> None:
        """Exactly one investigation per incident: queued when it opens (or first gets an alert)."""
        if incident.id not in self.investigated:
            inv = Investigation(
                id=uuid.uuid4().hex, incident_id=incident.id, status="queued", model=self.settings.model,
                queued_at=self.now, not_before=self.now + timedelta(seconds=self.settings.group_wait_seconds),
                messages=[], tool_calls=[], usage={},
            )
            self.s.add(inv)
            self.result.investigations_queued.append(inv.id)
            self.investigated.add(incident.id)


class IntakeQueue:
    """One writer thread per context storing deliveries in arrival order, with a bounded backlog."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.limit = max(1, ctx.settings.intake_queue_limit)
        self.pending = 0
        self._guard = threading.Lock()
        self._rate = 2000.0  # alerts/s, smoothed; only used to size Retry-After
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firebreak-intake")

    def retry_after(self) -> int:
        return max(1, min(300, math.ceil(self.pending / max(self._rate, 1.0))))

    def admit(self, count: int) -> None:
        """Reserve room for `count` alerts or refuse the delivery (413 never fits, 429 try later)."""
        if count > self.limit:
            raise IntakeRefused(
                413, f"alerts: {count} alerts in one delivery, more than the intake limit of {self.limit} "
                "(FIREBREAK_INTAKE_QUEUE_LIMIT); send smaller batches", "too_large")
        from firebreak.server.observability import QUEUE_DEPTH

        with self._guard:
            if self.pending + count > self.limit:
                wait = self.retry_after()
                raise IntakeRefused(
                    429, f"intake backlog of {self.pending} alerts is at its limit of {self.limit}; "
                    f"retry in {wait} s", "backlog", headers={"Retry-After": str(wait)})
            self.pending += count
        QUEUE_DEPTH.inc(count)

    def _release(self, count: int) -> None:
        from firebreak.server.observability import QUEUE_DEPTH

        with self._guard:
            self.pending -= count
        QUEUE_DEPTH.dec(count)

    def _run(self, alerts: list[NormalizedAlert]) -> IngestResult:
        started = time.perf_counter()
        try:
            return ingest_alerts(self.ctx, alerts)
        finally:
            elapsed = max(time.perf_counter() - started, 1e-6)
            self._rate = 0.8 * self._rate + 0.2 * (len(alerts) / elapsed)
            self._release(len(alerts))

    async def submit(self, alerts: list[NormalizedAlert]) -> IngestResult:
        """Admit, then store on the writer thread; the caller awaits the stored result."""
        self.admit(len(alerts))
        try:
            future = self._executor.submit(self._run, alerts)
        except RuntimeError:
            self._release(len(alerts))
            raise IntakeRefused(503, "intake is shutting down; retry", "shutting_down",
                                headers={"Retry-After": "5"}) from None
        try:
            return await asyncio.wrap_future(future)
        except OperationalError as exc:  # the database stayed locked or went away: the sender retries
            log.error("intake could not store a delivery: %s", exc)
            raise IntakeRefused(503, "the state database is busy or unavailable; retry", "database",
                                headers={"Retry-After": str(self.retry_after() + 4)}) from None

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def intake_queue(ctx: ToolContext) -> IntakeQueue:
    return ctx.resource("firebreak.server.intake.queue", lambda: IntakeQueue(ctx))
