"""Dedup, resolve and correlate alerts into incidents, inside the intake writer's transaction.

See `server.intake.service` for the transaction, the locks and the writer; this is what happens to
each alert: a new `(source, fingerprint)` is inserted and placed in an incident (the matching open
one, a new one, or past `STORM_INCIDENT_LIMIT` the storm incident), a re-send updates its row, a
resolution resolves it, and an incident whose alerts have all resolved is marked mitigated.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.attributes import set_committed_value

from firebreak.context import ToolContext
from firebreak.memory.incident_log import (
    add_link,
    alert_fired_again,
    all_alerts_resolved,
    open_incident,
    update_incident,
)
from firebreak.server.intake.correlate import SEVERITY_RANK, Correlator, incident_severity, last_activity
from firebreak.server.intake.models import IngestResult, NormalizedAlert
from firebreak.server.intake.rows import ALERTS, NewAlert, bulk_insert
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.state.investigations import Investigation

log = logging.getLogger("firebreak.intake")

ACTOR = "intake"
STORM_INCIDENT_LIMIT = 20
STORM_TAG = "alert-storm"
MAX_INCIDENT_SERVICES = 50
_CHUNK = 500
_INCIDENT_FIELDS = (
    Incident.id, Incident.title, Incident.services, Incident.severity, Incident.status, Incident.tags,
    Incident.started_at, Incident.detected_at, Incident.created_at, Incident.updated_at, Incident.source,
)
_TIMELINE = cast(Table, TimelineEntry.__table__)
# The statements every transaction runs, built once (building them cost more than running them).
_OPEN = select(Incident).where(Incident.status == "open").options(load_only(*_INCIDENT_FIELDS))
_OPENED_SINCE = select(func.count()).select_from(Incident).where(
    Incident.source == ACTOR, Incident.detected_at >= bindparam("since"))
_INVESTIGATED = select(Investigation.incident_id).where(
    Investigation.incident_id.in_(bindparam("ids", expanding=True))).distinct()
_INCIDENTS = cast(Table, Incident.__table__)
_TOUCH = (update(_INCIDENTS)
          .where(_INCIDENTS.c.id.in_(bindparam("ids", expanding=True)),
                 or_(_INCIDENTS.c.updated_at.is_(None), _INCIDENTS.c.updated_at < bindparam("now")))
          .values(updated_at=bindparam("now")))
_KNOWN_SQLITE = "SELECT fingerprint FROM alerts WHERE source = ? AND fingerprint IN ({})"
# The statement is compiled once and its IN list expanded per call (a fresh `in_(values)`
# made a hundred bind parameters per delivery to coerce and key the cache on).
_KNOWN = select(Alert).where(
    Alert.source == bindparam("source"), Alert.fingerprint.in_(bindparam("prints", expanding=True)))


class Ingest:
    """Deliveries stored in one transaction at one `now`: what they share is loaded once.

    The open incidents, the correlation index, the count of incidents opened in the window and the
    incidents that already have an investigation carry from one delivery to the next, exactly as
    the next transaction would have read them; `deliver` keeps each delivery's own result.
    """

    def __init__(self, ctx: ToolContext, session: Session, now: datetime) -> None:
        self.s = session
        self.now = now
        self.result = IngestResult()
        self.settings = ctx.settings
        self.window = timedelta(minutes=ctx.settings.correlation_window_minutes)
        # Only what correlation reads: a triage report can be large and is not needed here.
        self.open: list[Incident] = list(session.scalars(_OPEN))
        self.by_id = {inc.id: inc for inc in self.open}
        self.opened_in_window = session.scalar(_OPENED_SINCE, {"since": now - self.window}) or 0
        open_ids = list(self.by_id)
        self.investigated: set[str] = set()
        for i in range(0, len(open_ids), _CHUNK):
            self.investigated.update(session.scalars(_INVESTIGATED, {"ids": open_ids[i:i + _CHUNK]}))
        self.opened: set[str] = set()
        self.closed: set[str] = set()  # incidents known to be resolved (or gone)
        self.new_rows: list[NewAlert] = []  # bulk-inserted at the end
        self.correlator = Correlator(self.open, self.settings.dependencies, now, self.window)
        self.timeline: list[dict[str, Any]] = []  # alert timeline entries, bulk-inserted at the end
        self.resolving: dict[str, Incident] = {}  # incidents that saw a resolution: all resolved now?
        self.touched: set[str] = set()  # incidents whose activity moved to `now`, written by one UPDATE

    def deliver(self, alerts: list[NormalizedAlert]) -> IngestResult:
        """Store one delivery (after the ones before it in this transaction); its counts and ids."""
        self.result = IngestResult(received=len(alerts))
        self.opened, self.new_rows, self.timeline, self.resolving, self.touched = set(), [], [], {}, set()
        if alerts:
            self.run(alerts)
        return self.result

    def run(self, alerts: list[NormalizedAlert]) -> None:
        known: dict[tuple[str, str], Alert | NewAlert] = dict(self._existing(alerts))
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
        self._write_touched()
        bulk_insert(self.s, ALERTS, self.new_rows)
        bulk_insert(self.s, _TIMELINE, self.timeline)
        self._mitigate_when_all_resolved()

    def _write_touched(self) -> None:
        """Activity: `updated_at` of every incident an alert of this delivery reached (never backwards)."""
        if self.touched:
            self.s.execute(_TOUCH, {"ids": sorted(self.touched), "now": self.now})
            self.touched.clear()

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
        sqlite = self.s.get_bind().dialect.name == "sqlite"
        for source, prints in wanted.items():
            ordered = sorted(prints)
            for i in range(0, len(ordered), _CHUNK):
                chunk = ordered[i:i + _CHUNK]
                if sqlite:  # a storm's alerts are mostly new: ask the driver which exist, load only those
                    self.s.flush()
                    sql = _KNOWN_SQLITE.format(",".join("?" * len(chunk)))
                    chunk = [r[0] for r in self.s.connection().exec_driver_sql(sql, (source, *chunk))]
                    if not chunk:
                        continue
                rows = self.s.scalars(_KNOWN, {"source": source, "prints": chunk})
                found.update({(r.source, r.fingerprint): r for r in rows})
        return found

    # --- alerts ---

    def _create(self, alert: NormalizedAlert) -> NewAlert:
        row = NewAlert(
            source=alert.source, fingerprint=alert.fingerprint, status=alert.status, service=alert.service,
            severity=alert.severity, title=alert.title, summary=alert.summary, started_at=alert.started_at,
            ended_at=(alert.ended_at or self.now) if alert.status == "resolved" else None,
            labels=alert.labels, links=list(alert.links), raw=alert.raw,
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

    def _update(self, row: Alert | NewAlert, alert: NormalizedAlert) -> None:
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
        services = incident.services or []
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
            # Not an ORM change: flushing a dirty incident walks its relationships, which cost more
            # than the rest of a delivery. One UPDATE per delivery writes the bumps (`_write_touched`).
            set_committed_value(incident, "updated_at", self.now)
            self.touched.add(incident.id)
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
