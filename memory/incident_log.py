"""The incident log: every incident, every change to it kept as a timeline entry.

Functions take an open SQLAlchemy session so callers (intake, approvals, CLI) compose them inside
one transaction: nothing is half-written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory.models import Countermeasure, IdCounter, Incident, Remediation, TimelineEntry

SEVERITIES = ("minor", "major", "critical")
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
        kind = "status" if field == "status" else "updated"
        entries.append(record(session, incident, at=at, actor=actor, kind=kind, field=field, old=old, new=value,
                              text=f"{field} changed"))
    if entries:
        incident.updated_at = at
    return entries


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
