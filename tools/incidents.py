"""Incident-log tools: the current incident with its alerts, past incidents, and the service graph.

They read the incident log (`firebreak.state`), the source of truth for what happened and what was done,
and `settings.dependencies` (service -> services it depends on) for blast radius and upstream suspects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from firebreak.context import ToolContext
from firebreak.memory.incident_log import STATUSES
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident
from firebreak.tools.registry import ToolError, tool

MAX_ALERTS = 30
MAX_TIMELINE = 20
MAX_TEXT = 1500


def _short(text: str | None, limit: int = MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class IncidentDetailsInput(BaseModel):
    incident_id: str = Field(min_length=1, description="Incident id, e.g. INC-2026-004.")


class AlertOut(BaseModel):
    source: str
    service: str
    title: str
    summary: str
    severity: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    receive_count: int = 1
    labels: dict[str, Any]
    links: list[Any]


class TimelineOut(BaseModel):
    at: datetime
    actor: str
    kind: str
    text: str


class CountermeasureOut(BaseModel):
    at: datetime
    what: str
    by: str
    worked: bool | None


class IncidentHead(BaseModel):
    """The fields every view of an incident starts with (a list row and the full details)."""

    id: str
    title: str
    services: list[str]
    severity: str
    status: str
    started_at: datetime | None
    detected_at: datetime | None

    @staticmethod
    def fields_of(inc: Incident) -> dict[str, Any]:
        """Those fields of an `Incident` row, as keyword arguments for a subclass."""
        return {
            "id": inc.id,
            "title": inc.title,
            "services": list(inc.services or []),
            "severity": inc.severity,
            "status": inc.status,
            "started_at": inc.started_at,
            "detected_at": inc.detected_at,
        }


class IncidentDetailsOutput(IncidentHead):
    mitigated_at: datetime | None
    resolved_at: datetime | None
    symptoms: str
    user_impact: str
    root_cause: str
    root_cause_category: str
    tags: list[Any]
    links: list[Any]
    alerts: list[AlertOut]
    alerts_total: int
    alerts_truncated: bool
    timeline: list[TimelineOut] = Field(description="the most recent entries, oldest first")
    timeline_truncated: bool
    countermeasures: list[CountermeasureOut]


@tool("incidents")
def incident_details(ctx: ToolContext, args: IncidentDetailsInput) -> IncidentDetailsOutput:
    """The incident under investigation: services, severity, status, times, and every alert grouped into it.

    Use it first: the alerts (source, service, start time, labels, links) say what fired and when, which
    sets the onset to compare changes, logs and metrics against.
    """
    with ctx.db.session() as s:
        inc = s.get(Incident, args.incident_id.strip())
        if inc is None:
            recent = list(s.execute(select(Incident.id).order_by(Incident.created_at.desc()).limit(10)).scalars())
            raise ToolError(
                f"no incident {args.incident_id!r} (recent: {', '.join(recent) or 'none'})",
                status=404, field="incident_id",
            )
        total = s.execute(select(func.count()).select_from(Alert).where(Alert.incident_id == inc.id)).scalar_one()
        alerts = list(s.execute(
            select(Alert).where(Alert.incident_id == inc.id).order_by(Alert.started_at, Alert.id).limit(MAX_ALERTS)
        ).scalars())
        timeline = list(inc.timeline)[-MAX_TIMELINE:]
        return IncidentDetailsOutput(
            **IncidentHead.fields_of(inc), mitigated_at=inc.mitigated_at, resolved_at=inc.resolved_at,
            symptoms=_short(inc.symptoms),
            user_impact=_short(inc.user_impact), root_cause=_short(inc.root_cause),
            root_cause_category=inc.root_cause_category, tags=list(inc.tags or []), links=list(inc.links or []),
            alerts=[
                AlertOut(
                    source=a.source, service=a.service, title=_short(a.title, 300), summary=_short(a.summary, 600),
                    severity=a.severity, status=a.status, started_at=a.started_at, ended_at=a.ended_at,
                    receive_count=a.receive_count, labels=dict(a.labels or {}), links=list(a.links or []),
                )
                for a in alerts
            ],
            alerts_total=total, alerts_truncated=total > len(alerts),
            timeline=[TimelineOut(at=t.at, actor=t.actor, kind=t.kind, text=_short(t.text, 300)) for t in timeline],
            timeline_truncated=len(inc.timeline) > len(timeline),
            countermeasures=[
                CountermeasureOut(at=c.at, what=_short(c.what, 300), by=c.by, worked=c.worked)
                for c in inc.countermeasures
            ][-MAX_TIMELINE:],
        )


class ListIncidentsInput(BaseModel):
    service: str | None = Field(default=None, description="Only incidents that involved this service.")
    status: str | None = Field(default=None, description="open, mitigated or resolved.")
    since: datetime | None = Field(default=None, description="Only incidents detected at or after this time.")
    limit: int = Field(default=20, ge=1, le=100)


class IncidentRow(IncidentHead):
    root_cause: str
    root_cause_category: str


class ListIncidentsOutput(BaseModel):
    incidents: list[IncidentRow]
    total: int
    truncated: bool


@tool("incidents")
def list_incidents(ctx: ToolContext, args: ListIncidentsInput) -> ListIncidentsOutput:
    """Incidents in the log, newest first, with their root cause when known.

    Use it to see what else is open right now (a shared cause?) or what went wrong before on a service;
    for similar past incidents by meaning, use `similar_incidents`.
    """
    if args.status is not None and args.status not in STATUSES:
        raise ToolError(f"status: unknown status {args.status!r} ({', '.join(STATUSES)})", field="status")
    if args.since is not None and args.since.tzinfo is None:
        raise ToolError("since: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)", field="since")
    with ctx.db.session() as s:
        q = select(Incident)
        if args.status:
            q = q.where(Incident.status == args.status)
        if args.since:
            q = q.where(func.coalesce(Incident.detected_at, Incident.created_at) >= args.since)
        rows = list(s.execute(q.order_by(Incident.created_at.desc(), Incident.id.desc())).scalars())
        if args.service:
            rows = [r for r in rows if args.service in (r.services or [])]
        picked = rows[: args.limit]
        return ListIncidentsOutput(
            incidents=[
                IncidentRow(
                    **IncidentHead.fields_of(r), root_cause=_short(r.root_cause, 500),
                    root_cause_category=r.root_cause_category,
                )
                for r in picked
            ],
            total=len(rows), truncated=len(rows) > len(picked),
        )


class ServiceDependenciesInput(BaseModel):
    service: str | None = Field(
        default=None, description="Only edges touching this service: what it depends on and what depends on it."
    )


class Edge(BaseModel):
    service: str
    depends_on: str


class ServiceDependenciesOutput(BaseModel):
    edges: list[Edge]
    depends_on: list[str] = Field(default_factory=list, description="direct and indirect dependencies of `service`")
    dependents: list[str] = Field(default_factory=list, description="services that depend on `service`, transitively")
    truncated: bool = False
    note: str = ""


def _closure(start: str, graph: dict[str, set[str]]) -> list[str]:
    seen: list[str] = []
    stack = sorted(graph.get(start, ()))
    while stack:
        node = stack.pop(0)
        if node in seen or node == start:
            continue
        seen.append(node)
        stack.extend(sorted(graph.get(node, ())))
    return seen


@tool("incidents")
def service_dependencies(ctx: ToolContext, args: ServiceDependenciesInput) -> ServiceDependenciesOutput:
    """The service dependency graph: which services a service calls and which call it.

    Use it to widen the search when a service fails: a failing dependency (database, queue, third party)
    or a change to one often explains symptoms upstream.
    """
    deps = {svc: set(targets) for svc, targets in ctx.settings.dependencies.items()}
    note = ""
    if not deps:  # no configured graph: the one traces show
        from firebreak.tools.traces import observed_dependencies

        try:
            deps = {svc: set(targets) for svc, targets in observed_dependencies(ctx).items()}
        except ToolError as exc:  # a trace backend that fails leaves the answer as "none configured"
            deps, note = {}, f"traces unavailable: {exc.message}; "
        note = "from traces (calls seen in the last 24 h); FIREBREAK_DEPENDENCIES overrides" if deps else note
    all_edges = sorted((svc, d) for svc, targets in deps.items() for d in targets)
    if not all_edges:
        return ServiceDependenciesOutput(
            edges=[],
            note=note + "no dependencies configured (FIREBREAK_DEPENDENCIES, a JSON object service -> [services])",
        )
    if args.service is None:
        edges = all_edges[:200]
        return ServiceDependenciesOutput(
            edges=[Edge(service=a, depends_on=b) for a, b in edges], truncated=len(all_edges) > len(edges), note=note
        )
    known = set(deps) | {d for targets in deps.values() for d in targets}
    if args.service not in known:
        raise ToolError(
            f"unknown service {args.service!r} in the dependency graph (known: {', '.join(sorted(known)[:40])})",
            status=404, field="service",
        )
    reverse: dict[str, set[str]] = {}
    for svc, targets in deps.items():
        for d in targets:
            reverse.setdefault(d, set()).add(svc)
    edges = [(a, b) for a, b in all_edges if args.service in (a, b)]
    return ServiceDependenciesOutput(
        edges=[Edge(service=a, depends_on=b) for a, b in edges],
        depends_on=_closure(args.service, deps), dependents=_closure(args.service, reverse), note=note,
    )
