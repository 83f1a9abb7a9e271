"""The incident log: every incident, every change to it kept as a timeline entry.

Functions take an open SQLAlchemy session so callers (intake, approvals, CLI) compose them inside
one transaction: nothing is half-written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.kinds import SEVERITIES
from firebreak.state.incidents import Countermeasure, IdCounter, Incident, Remediation, TimelineEntry

STATUSES = ("open", "mitigated", "resolved")
CATEGORIES = (
    "deploy", "config", "flag", "dependency", "resource", "traffic",
    "certificate", "data", "infra", "unknown",
)
# Fields a person may change with `update`; each change becomes a timeline entry.
EDITABLE = (
    "title", "services", "severity", "status", "started_at", "detected_at", "mitigated_at", "resolved_at",
    "symptoms", "user_impact", "root_cause", "root_cause_category", "hotfix", "rollback", "links", "tags",
)


class IncidentLogError(ValueError):
    """Bad input for the incident log, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _check(field: str, value: Any) -> Any:
    if field == "severity" and value not in SEVERITIES:
        raise IncidentLogError(field, f"unknown severity {value!r} (minor, major or critical)")
    if field == "status" and value not in STATUSES:
        raise IncidentLogError(field, f"unknown status {value!r} (open, mitigated or resolved)")
    if field == "root_cause_category" and value not in CATEGORIES:
        raise IncidentLogError(field, f"unknown category {value!r} ({', '.join(CATEGORIES)})")
    if field.endswith("_at") and value is not None:
        if not isinstance(value, datetime):
            raise IncidentLogError(field, "expected a timestamp")
        if value.tzinfo is None:
            raise IncidentLogError(field, "timestamp has no timezone (e.g. 2026-03-02T08:00:00Z)")
    if field in ("services", "tags", "links") and not isinstance(value, list):
        raise IncidentLogError(field, "expected a list")
    return value


# (earlier, later): a later moment may not come before an earlier one.
TIME_ORDER = (("started_at", "mitigated_at"), ("started_at", "resolved_at"), ("detected_at", "resolved_at"),
              ("mitigated_at", "resolved_at"))


def check_time_order(incident: Incident) -> None:
    """Refuse impossible timelines typed by a person (mitigated before users were hit...): they make MTTM
    negative. Not applied to alerts, whose senders' clocks may run a little ahead of ours."""
    for early, late in TIME_ORDER:
        a, b = getattr(incident, early), getattr(incident, late)
        if a is not None and b is not None and b < a:
            raise IncidentLogError(late, f"{b.isoformat()} is before {early} {a.isoformat()}")
    if incident.started_at and incident.detected_at and incident.detected_at < incident.started_at:
        raise IncidentLogError("detected_at", f"{incident.detected_at.isoformat()} is before started_at "
                               f"{incident.started_at.isoformat()} (users are hit first, then we detect)")


def next_incident_id(session: Session, year: int) -> str:
    """INC-YYYY-NNN, allocated in the caller's transaction (row lock on PostgreSQL)."""
    scope = f"incident-{year}"
    counter = session.execute(
        select(IdCounter).where(IdCounter.scope == scope).with_for_update()
    ).scalar_one_or_none()
    if counter is None:
        counter = IdCounter(scope=scope, last=0)
        session.add(counter)
    counter.last += 1
    session.flush()
    return f"INC-{year}-{counter.last:03d}"


def _reserve_explicit_id(session: Session, incident_id: str) -> None:
    """Keep the counter ahead of ids given explicitly (imports, drill history)."""
    try:
        _, year, num = incident_id.split("-")
        year_i, num_i = int(year), int(num)
    except ValueError:
        return
    scope = f"incident-{year_i}"
    counter = session.get(IdCounter, scope)
    if counter is None:
        session.add(IdCounter(scope=scope, last=num_i))
    elif counter.last < num_i:
        counter.last = num_i
    session.flush()


def record(
    session: Session,
    incident: Incident,
    *,
    at: datetime,
    actor: str,
    kind: str,
    text: str = "",
    field: str | None = None,
    old: Any = None,
    new: Any = None,
) -> TimelineEntry:
    entry = TimelineEntry(
        incident_id=incident.id, at=at, actor=actor, kind=kind, text=text, field=field,
        old_value=_jsonable(old), new_value=_jsonable(new),
    )
    session.add(entry)
    return entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def open_incident(
    session: Session,
    *,
    title: str,
    services: list[str],
    severity: str,
    at: datetime,
    actor: str,
    started_at: datetime | None = None,
    detected_at: datetime | None = None,
    source: str = "manual",
    symptoms: str = "",
    user_impact: str = "",
    tags: list[str] | None = None,
    incident_id: str | None = None,
    **extra: Any,
) -> Incident:
    """Create an incident (status open) and its first timeline entry."""
    _check("severity", severity)
    for f, v in (("started_at", started_at), ("detected_at", detected_at)):
        _check(f, v)
    if not title.strip():
        raise IncidentLogError("title", "must not be empty")
    if incident_id is None:
        incident_id = next_incident_id(session, (detected_at or started_at or at).year)
    else:
        if session.get(Incident, incident_id) is not None:
            raise IncidentLogError("id", f"{incident_id} already exists")
        _reserve_explicit_id(session, incident_id)
    for f, v in extra.items():
        if f not in EDITABLE:
            raise IncidentLogError(f, "unknown incident field")
        _check(f, v)
    incident = Incident(
        id=incident_id, title=title.strip(), services=list(services), severity=severity, status="open",
        started_at=started_at, detected_at=detected_at or at, symptoms=symptoms, user_impact=user_impact,
        tags=list(tags or []), links=[], source=source, created_at=at, updated_at=at,
        root_cause="", root_cause_category="unknown", hotfix=False, rollback=False,
    )
    for f, v in extra.items():
        setattr(incident, f, v)
    session.add(incident)
    session.flush()
    record(session, incident, at=at, actor=actor, kind="created", text=f"Incident opened: {incident.title}")
    return incident


def update_incident(
    session: Session, incident: Incident, changes: dict[str, Any], *, at: datetime, actor: str
) -> list[TimelineEntry]:
    """Apply field changes; each one that differs is kept as a timeline entry (old and new)."""
    entries = []
    for field, value in changes.items():
        if field not in EDITABLE:
            raise IncidentLogError(field, "unknown or read-only incident field")
        _check(field, value)
        old = getattr(incident, field)
        if old == value:
            continue
        setattr(incident, field, value)
        if field == "severity":
            _report_follows(incident, value, actor)
        kind = "status" if field == "status" else "updated"
        entries.append(record(session, incident, at=at, actor=actor, kind=kind, field=field, old=old, new=value,
                              text=f"{field} changed"))
    if entries:
        incident.updated_at = at
    return entries


def _report_follows(incident: Incident, severity: str, actor: str) -> None:
    """The incident's stored report shows the incident's one severity, and who set it when not Firebreak."""
    report = incident.report
    if not isinstance(report, dict) or report.get("severity") in (None, severity):
        return
    judged, why = report.get("severity"), report.get("severity_reason") or ""
    reason = f"{severity} as set by {actor}; the investigator judged {judged}" + (f": {why}" if why else "")
    incident.report = {**report, "severity": severity,
                       "severity_reason": why if _automatic(actor) else reason}


def set_status(session: Session, incident: Incident, status: Literal["open", "mitigated", "resolved"], *,
               at: datetime, actor: str) -> None:
    changes: dict[str, Any] = {"status": status}
    if status in ("mitigated", "resolved") and incident.mitigated_at is None:
        changes["mitigated_at"] = at
    if status == "resolved" and incident.resolved_at is None:
        changes["resolved_at"] = at
    update_incident(session, incident, changes, at=at, actor=actor)


def add_countermeasure(
    session: Session, incident: Incident, *, what: str, by: str, at: datetime,
    worked: bool | None = None, approval_id: str | None = None,
) -> Countermeasure:
    cm = Countermeasure(incident_id=incident.id, at=at, what=what, by=by, worked=worked, approval_id=approval_id)
    session.add(cm)
    record(session, incident, at=at, actor=by, kind="countermeasure", text=what, new={"worked": worked})
    incident.updated_at = at
    return cm


def add_remediation(
    session: Session, incident: Incident, *, what: str, owner: str, due: date | None, at: datetime, actor: str,
) -> Remediation:
    rem = Remediation(incident_id=incident.id, what=what, owner=owner, due_date=due, status="open", verification="")
    session.add(rem)
    session.flush()
    record(session, incident, at=at, actor=actor, kind="remediation",
           text=f"Remediation #{rem.id} scheduled: {what} (owner {owner}, due {due})")
    incident.updated_at = at
    return rem


def complete_remediation(
    session: Session, rem: Remediation, *, verification: str, at: datetime, actor: str
) -> None:
    if rem.status == "done":
        raise IncidentLogError("remediation", f"#{rem.id} is already done")
    rem.status = "done"
    rem.verification = verification
    rem.done_at = at
    incident = rem.incident
    record(session, incident, at=at, actor=actor, kind="remediation",
           text=f"Remediation #{rem.id} done: {verification}", field="status", old="open", new="done")
    incident.updated_at = at


def add_link(session: Session, incident: Incident, *, kind: str, url: str, label: str = "",
             at: datetime, actor: str) -> None:
    links = list(incident.links or [])
    if any(lk.get("url") == url for lk in links):
        return
    links.append({"kind": kind, "url": url, "label": label})
    incident.links = links
    record(session, incident, at=at, actor=actor, kind="link", text=f"{kind}: {label or url}", new=url)


def get_incident(session: Session, incident_id: str) -> Incident:
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise IncidentLogError("id", f"no incident {incident_id}")
    return inc


# --- state that follows alerts and reports --------------------------------------------------------

# Actors that are Firebreak itself; any other actor is a person (or a person's import).
AUTOMATIC_ACTORS = ("intake", "firebreak", "drill")
ALERTS_RESOLVED = "alerts_resolved"


def _automatic(actor: str) -> bool:
    return actor.startswith(AUTOMATIC_ACTORS)


def set_by_person(session: Session, incident: Incident, field: str) -> str | None:
    """Who last set `field` by hand (None when only Firebreak did): people's choices are not overridden."""
    rows = session.execute(
        select(TimelineEntry.actor).where(TimelineEntry.incident_id == incident.id, TimelineEntry.field == field)
        .order_by(TimelineEntry.id.desc())
    ).scalars().all()
    for actor in rows:
        if not _automatic(actor):
            return actor
    if field == "severity" and incident.source == "manual":
        return "the person who opened it"
    return None


def all_alerts_resolved(session: Session, incident: Incident, *, at: datetime, actor: str) -> bool:
    """Every alert of an open incident has resolved: it is mitigated (mitigated_at kept) and the timeline
    says so. It is not closed: a person confirms and closes it. Returns True when the state changed."""
    if incident.status != "open":
        return False
    changes: dict[str, Any] = {"status": "mitigated"}
    if incident.mitigated_at is None:
        changes["mitigated_at"] = at
    update_incident(session, incident, changes, at=at, actor=actor)
    record(session, incident, at=at, actor=actor, kind=ALERTS_RESOLVED,
           text="Every alert of this incident has resolved: marked mitigated. A person confirms and closes it "
                f"(firebreak incidents close {incident.id}).")
    return True


def alert_fired_again(session: Session, incident: Incident, *, at: datetime, actor: str) -> bool:
    """An alert of a mitigated incident fires again: the incident is open again (the timeline keeps when
    it was mitigated). Returns True when the state changed."""
    if incident.status != "mitigated":
        return False
    update_incident(session, incident, {"status": "open", "mitigated_at": None}, at=at, actor=actor)
    return True


def follow_report(
    session: Session, incident: Incident, *, severity: str, reason: str, fault_service: str | None,
    fault_title: str | None, at: datetime, actor: str,
) -> str:
    """Make the triage report and the incident agree; returns the one severity both now carry.

    Severity: the report's judgement becomes the incident's, with a timeline entry, unless a person set
    the incident's severity (then the report follows the person). Name: an incident opened from an alert
    is renamed after the service most likely at fault, once a report names one; the timeline keeps the
    first alert's title. A person's title is never replaced.
    """
    _check("severity", severity)
    person = set_by_person(session, incident, "severity")
    if person is None and severity != incident.severity:
        old = incident.severity
        for entry in update_incident(session, incident, {"severity": severity}, at=at, actor=actor):
            entry.text = f"severity {old} -> {severity} from the triage report: {reason or 'no reason given'}"
    storm = "alert-storm" in (incident.tags or [])  # many problems in one: no single service names it
    renamable = incident.source != "manual" and not storm
    if fault_service and renamable and set_by_person(session, incident, "title") is None:
        first = incident.title
        wanted = f"{fault_service}: {fault_title or first}"[:200]
        if not first.startswith(f"{fault_service}: ") and wanted != first:
            for entry in update_incident(session, incident, {"title": wanted}, at=at, actor=actor):
                entry.text = f"named after {fault_service}, the service most likely at fault; first alert: {first}"
        services = list(incident.services or [])
        if fault_service not in services[:1]:
            ordered = [fault_service, *[s for s in services if s != fault_service]]
            update_incident(session, incident, {"services": ordered}, at=at, actor=actor)
    return incident.severity
