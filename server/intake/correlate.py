"""Which open incident an alert belongs to, Alertmanager-style.

An alert joins the most recently active open incident that shares its service, or a service linked
to it by a known dependency (`settings.dependencies`: service -> services it depends on, read in
both directions), provided that incident saw activity within `correlation_window_minutes` of now.
Activity is the incident's `updated_at` (intake bumps it on every alert it receives), so a
long-running storm keeps feeding one incident instead of opening a new one every window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from firebreak.server.intake.models import AlertSeverity
from firebreak.state.incidents import Incident

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


class Correlator:
    """`pick_incident` for many alerts at once: open incidents indexed by service, rebuilt on change.

    Valid within one transaction at one `now`: activity only moves forward while alerts are stored,
    so an incident active when the index was built stays active.
    """

    def __init__(self, incidents: list[Incident], dependencies: dict[str, list[str]], now: datetime,
                 window: timedelta) -> None:
        self.incidents = incidents
        self.dependencies = dependencies
        self.since = now - window
        self._index: dict[str, list[Incident]] | None = None
        self._cache: dict[str, Incident | None] = {}

    def invalidate(self) -> None:
        """Call after an incident opens or its services change."""
        self._index = None
        self._cache.clear()

    def _build(self) -> dict[str, list[Incident]]:
        index: dict[str, list[Incident]] = {}
        for incident in self.incidents:
            at = last_activity(incident)
            if incident.status != "open" or at is None or at < self.since:
                continue
            for service in set(incident.services or []):
                index.setdefault(service, []).append(incident)
        return index

    def match(self, service: str) -> Incident | None:
        if service in self._cache:
            return self._cache[service]
        if self._index is None:
            self._index = self._build()
        best: Incident | None = None
        best_at: datetime | None = None
        for name in related_services(service, self.dependencies):
            for incident in self._index.get(name, ()):
                at = last_activity(incident)
                if at is not None and (best_at is None or at > best_at):
                    best, best_at = incident, at
        self._cache[service] = best
        return best


def pick_incident(
    incidents: list[Incident], service: str, dependencies: dict[str, list[str]], now: datetime,
    window: timedelta,
) -> Incident | None:
    """The open incident this service's alert joins, or None when a new one must open."""
    return Correlator(incidents, dependencies, now, window).match(service)
