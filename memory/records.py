"""Incident records as plain data: the one shape used by `show --json`, export and import."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from firebreak.state.incidents import Incident


class CountermeasureRecord(BaseModel):
    at: datetime
    what: str
    by: str
    worked: bool | None = None
    approval_id: str | None = None


class RemediationRecord(BaseModel):
    what: str
    owner: str
    due_date: date | None = None
    status: str = "open"
    verification: str = ""
    done_at: datetime | None = None


class TimelineRecord(BaseModel):
    at: datetime
    actor: str
    kind: str
    field: str | None = None
    old_value: Any = None
    new_value: Any = None
    text: str = ""


class IncidentRecord(BaseModel):
    id: str
    title: str
    services: list[str] = Field(default_factory=list)
    severity: str
    status: str = "open"
    started_at: datetime | None = None
    detected_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    symptoms: str = ""
    user_impact: str = ""
    root_cause: str = ""
    root_cause_category: str = "unknown"
    hotfix: bool = False
    rollback: bool = False
    links: list[dict[str, Any]] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    source: str = "manual"
    countermeasures: list[CountermeasureRecord] = Field(default_factory=list)
    remediations: list[RemediationRecord] = Field(default_factory=list)
    timeline: list[TimelineRecord] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def to_record(inc: Incident) -> IncidentRecord:
    """The incident as people and exports see it: secrets in any text are redacted (a way out, issue 15)."""
    from firebreak.redact import redact_obj

    rec = _record(inc)
    return IncidentRecord.model_validate(redact_obj(rec.model_dump()))


def _record(inc: Incident) -> IncidentRecord:
    return IncidentRecord(
        id=inc.id, title=inc.title, services=list(inc.services or []), severity=inc.severity, status=inc.status,
        started_at=inc.started_at, detected_at=inc.detected_at, mitigated_at=inc.mitigated_at,
        resolved_at=inc.resolved_at, symptoms=inc.symptoms, user_impact=inc.user_impact, root_cause=inc.root_cause,
        root_cause_category=inc.root_cause_category, hotfix=inc.hotfix, rollback=inc.rollback,
        links=list(inc.links or []), tags=list(inc.tags or []), source=inc.source,
        countermeasures=[
            CountermeasureRecord(at=c.at, what=c.what, by=c.by, worked=c.worked, approval_id=c.approval_id)
            for c in inc.countermeasures
        ],
        remediations=[
            RemediationRecord(what=r.what, owner=r.owner, due_date=r.due_date, status=r.status,
                              verification=r.verification, done_at=r.done_at)
            for r in inc.remediations
        ],
        timeline=[
            TimelineRecord(at=t.at, actor=t.actor, kind=t.kind, field=t.field, old_value=t.old_value,
                           new_value=t.new_value, text=t.text)
            for t in inc.timeline
        ],
        created_at=inc.created_at, updated_at=inc.updated_at,
    )
