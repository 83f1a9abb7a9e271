"""Which open incident an alert belongs to, Alertmanager-style.

An alert joins the most recently active open incident that shares its service, or a service linked
to it by a known dependency (`settings.dependencies`: service -> services it depends on, read in
both directions), provided that incident saw activity within `correlation_window_minutes` of now.
Activity is the incident's `updated_at` (intake bumps it on every alert it receives), so a
long-running storm keeps feeding one incident instead of opening a new one every window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from memory.models import Incident
from server.intake.models import AlertSeverity

INCIDENT_SEVERITY: dict[str, str] = {"critical": "critical", "error": "major", "warning": "major", "info": "minor"}
SEVERITY_RANK = {"minor": 0, "major": 1, "critical": 2}


def incident_severity(alert_severity: AlertSeverity | str) -> str:
    return INCIDENT_SEVERITY.get(alert_severity, "major")


def related_services(service: str, dependencies: dict[str, list[str]]) -> set[str]:
    """The service, what it depends on, and what depends on it (one hop, both directions)."""
    related = {service, *dependencies.get(service, [])}
    related.update(name for name, deps in dependencies.items() if service in deps)
    return related


def last_activity(incident: Incident) -> datetime | None:
    times = [t for t in (incident.updated_at, incident.detected_at, incident.created_at) if t is not None]
    return max(times) if times else None


def pick_incident(
    incidents: Iterable[Incident], service: str, dependencies: dict[str, list[str]], now: datetime,
    window: timedelta,
) -> Incident | None:
    """The open incident this service's alert joins, or None when a new one must open."""
    related = related_services(service, dependencies)
    best: Incident | None = None
    best_at: datetime | None = None
    for incident in incidents:
        if incident.status != "open" or not related.intersection(incident.services or []):
            continue
        at = last_activity(incident)
        if at is None or at < now - window:
            continue
        if best_at is None or at > best_at:
            best, best_at = incident, at
    return best
