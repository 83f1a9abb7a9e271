"""`GET /api/incidents` and `GET /api/incidents/{id}`: incidents with their alerts, report and approvals.

Guarded by `server.auth.require_api_token` (bearer FIREBREAK_API_TOKEN). Lists are bounded: an
incident from an alert storm can hold thousands of alerts and timeline entries, so the detail view
returns at most `alerts_limit` alerts and the newest `timeline_limit` timeline entries, with the
true counts and `*_truncated` flags alongside.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from firebreak.redact import redact_obj
from firebreak.server.approvals import ALTERNATIVE_STATUSES, ApprovalRecord
from firebreak.server.auth import require_api_token
from firebreak.server.deps import Ctx
from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Countermeasure, Incident, Remediation, TimelineEntry
from firebreak.state.investigations import Investigation

_M = TypeVar("_M", bound=BaseModel)

router = APIRouter(prefix="/api/incidents", tags=["incidents"], dependencies=[Depends(require_api_token)])


class _Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AlertOut(_Orm):
    id: int
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
    received_at: datetime
    last_received_at: datetime
    receive_count: int
    raw: dict[str, Any] | None = None


class ApprovalOut(ApprovalRecord):
    model_config = ConfigDict(from_attributes=True)

    investigation_id: str | None
    alternatives: list[ApprovalOut] = Field(default_factory=list)


class TimelineOut(_Orm):
    id: int
    at: datetime
    actor: str
    kind: str
    field: str | None
    old_value: Any = None
    new_value: Any = None
    text: str


class CountermeasureOut(_Orm):
    id: int
    at: datetime
    what: str
    by: str
    worked: bool | None
    approval_id: str | None


class RemediationOut(_Orm):
    id: int
    what: str
    owner: str
    due_date: date | None
    status: str
    verification: str
    done_at: datetime | None


class InvestigationOut(_Orm):
    id: str
    status: str
    model: str
    fallback: bool
    queued_at: datetime
    not_before: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class IncidentSummary(_Orm):
    id: str
    title: str
    services: list[str]
    severity: str
    status: str
    source: str
    started_at: datetime | None
    detected_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    root_cause: str
    root_cause_category: str
    tags: list[Any]
    created_at: datetime
    updated_at: datetime
    alert_count: int = 0
    alerts: list[AlertOut] = Field(default_factory=list)


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]
    total: int
    truncated: bool


class IncidentDetail(IncidentSummary):
    symptoms: str
    user_impact: str
    hotfix: bool
    rollback: bool
    links: list[Any]
    report: dict[str, Any] | None
    alerts_truncated: bool = False
    approvals: list[ApprovalOut] = Field(default_factory=list)
    timeline: list[TimelineOut] = Field(default_factory=list)
    timeline_count: int = 0
    timeline_truncated: bool = False
    countermeasures: list[CountermeasureOut] = Field(default_factory=list)
    remediations: list[RemediationOut] = Field(default_factory=list)
    investigations: list[InvestigationOut] = Field(default_factory=list)


def _alerts(s: Session, incident_id: str, limit: int, raw: bool) -> list[AlertOut]:
    rows = s.scalars(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id).limit(limit))
    out = []
    for row in rows:
        item = AlertOut.model_validate(row)
        out.append(item if raw else item.model_copy(update={"raw": None}))
    return out


def _alert_counts(s: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = s.execute(select(Alert.incident_id, func.count()).where(Alert.incident_id.in_(ids))
                     .group_by(Alert.incident_id))
    return {incident_id: count for incident_id, count in rows if incident_id is not None}


def _redacted(model: _M) -> _M:
    """The response with secrets masked: alert text and raw payloads are stored as received (nothing is
    lost), but an API caller gets them through the same redaction as the tools and the model."""
    return type(model).model_validate(redact_obj(model.model_dump(mode="python")))


@router.get("", response_model=IncidentList)
def list_incidents(ctx: Ctx, status: Literal["open", "mitigated", "resolved"] | None = None,
    service: str | None = Query(None, max_length=200),
    since: datetime | None = Query(None, description="only incidents detected at or after (ISO 8601, with zone)"),
    limit: int = Query(50, ge=1, le=500),
    alerts_limit: int = Query(20, ge=0, le=200, description="alerts shown per incident")) -> IncidentList:
    """Incidents, newest first, each with `alert_count` and its first `alerts_limit` alerts."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, detail="since: timestamp has no timezone (e.g. 2026-03-02T08:00:00Z)")
    with ctx.db.session() as s:
        query = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
        if status is not None:
            query = query.where(Incident.status == status)
        if since is not None:
            query = query.where(Incident.detected_at >= since)
        matched: list[Incident] = []
        total = 0
        for inc in s.scalars(query):
            if service is not None and service not in (inc.services or []):
                continue
            total += 1
            if len(matched) < limit:
                matched.append(inc)
        counts = _alert_counts(s, [inc.id for inc in matched])
        items = []
        for inc in matched:
            item = IncidentSummary.model_validate(inc, from_attributes=True)
            alerts = _alerts(s, inc.id, alerts_limit, raw=False) if alerts_limit else []
            items.append(item.model_copy(update={"alert_count": counts.get(inc.id, 0), "alerts": alerts}))
    return _redacted(IncidentList(incidents=items, total=total, truncated=total > len(items)))


@router.get("/{incident_id}", response_model=IncidentDetail)
def get_incident(ctx: Ctx, incident_id: str,
    alerts_limit: int = Query(500, ge=0, le=5000),
    timeline_limit: int = Query(1000, ge=0, le=10000, description="newest timeline entries shown"),
    include_raw: bool = Query(False, description="include each alert's raw vendor payload")) -> IncidentDetail:
    """One incident: fields, alerts (`alert_count`), report, approvals, timeline, countermeasures,
    remediations and investigations."""
    with ctx.db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise HTTPException(404, detail=f"no incident {incident_id}")
        alert_count = _alert_counts(s, [inc.id]).get(inc.id, 0)
        timeline_count = s.scalar(
            select(func.count()).select_from(TimelineEntry).where(TimelineEntry.incident_id == inc.id)) or 0
        timeline_rows = list(s.scalars(
            select(TimelineEntry).where(TimelineEntry.incident_id == inc.id)
            .order_by(TimelineEntry.id.desc()).limit(timeline_limit)))
        timeline_rows.reverse()
        all_approvals = list(s.scalars(
            select(Approval).where(Approval.incident_id == inc.id).order_by(Approval.requested_at, Approval.id)))
        alternatives = [a for a in all_approvals if a.status in ALTERNATIVE_STATUSES]
        approvals = [
            ApprovalOut.model_validate(a).model_copy(update={"alternatives": [
                ApprovalOut.model_validate(x) for x in alternatives if x.investigation_id == a.investigation_id]})
            for a in all_approvals if a.status not in ALTERNATIVE_STATUSES
        ]
        investigations = s.scalars(
            select(Investigation).where(Investigation.incident_id == inc.id).order_by(Investigation.queued_at))
        countermeasures = s.scalars(
            select(Countermeasure).where(Countermeasure.incident_id == inc.id).order_by(Countermeasure.id))
        remediations = s.scalars(
            select(Remediation).where(Remediation.incident_id == inc.id).order_by(Remediation.id))
        base = IncidentSummary.model_validate(inc).model_dump(exclude={"alerts", "alert_count"})
        return _redacted(IncidentDetail(
            **base,
            symptoms=inc.symptoms or "",
            user_impact=inc.user_impact or "",
            hotfix=bool(inc.hotfix),
            rollback=bool(inc.rollback),
            links=list(inc.links or []),
            report=inc.report,
            alert_count=alert_count,
            alerts=_alerts(s, inc.id, alerts_limit, raw=include_raw),
            alerts_truncated=alert_count > alerts_limit,
            approvals=approvals,
            timeline=[TimelineOut.model_validate(t) for t in timeline_rows],
            timeline_count=timeline_count,
            timeline_truncated=timeline_count > len(timeline_rows),
            countermeasures=[CountermeasureOut.model_validate(c) for c in countermeasures],
            remediations=[RemediationOut.model_validate(r) for r in remediations],
            investigations=[InvestigationOut.model_validate(i) for i in investigations],
        ))
