"""Vendor payloads -> `NormalizedAlert`s (Sentry here; Grafana and Alertmanager in `prom.py`).

Sources: Sentry integration-platform webhooks (`issue`, `event_alert`, `metric_alert`, `error`),
Grafana unified-alerting webhooks (several alerts per delivery, `truncatedAlerts`) and Alertmanager
webhook v4. Every shape problem becomes `IntakeRefused(4xx)` naming the field; nothing a client
sends raises anything else.

Identity (`fingerprint`) is what makes a re-send update instead of duplicate:
Grafana/Alertmanager use the alert's own fingerprint (a hash of its labels when absent); every
Sentry resource about one issue (`issue`, `event_alert`, `error`) shares `issue:<issue id>`;
a metric alert is `metric_alert:<id>`, so its `resolved` notification resolves it.

Service: labels `service`, `job`, `app` (in that order), else the Sentry project slug, else
`unknown`; the result is then looked up in `settings.service_map` (raw name -> canonical name).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from pydantic import Field

from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.fields import (
    SERVICE_LABELS,
    Lenient,
    ParsedDelivery,
    StrOrInt,
    Timestamp,
    clean,
    describe_errors,
    fingerprint_of,
    link,
    parse_json_object,
    resolve_service,
    severity_of,
    validate_model,
)
from firebreak.server.intake.models import AlertStatus, NormalizedAlert
from firebreak.server.intake.prom import normalize_alertmanager, normalize_grafana
from firebreak.settings import Settings
from firebreak.tools.sentry_payload import epoch_datetime, tag_pairs

__all__ = [
    "SERVICE_LABELS", "ParsedDelivery", "describe_errors", "normalize_alertmanager", "normalize_grafana",
    "normalize_sentry", "parse_json_object", "resolve_service", "severity_of",
]

log = logging.getLogger("firebreak.intake")

SENTRY_RESOURCES = ("issue", "event_alert", "metric_alert", "error")
MAX_TAGS = 100
_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")


class SentryEnvelope(Lenient):
    action: str
    data: dict[str, Any]


class SentryProject(Lenient):
    id: StrOrInt | None = None
    slug: str | None = None
    name: str | None = None


class SentryIssue(Lenient):
    id: StrOrInt
    title: str | None = None
    culprit: str | None = None
    level: str | None = None
    status: str | None = None
    shortId: str | None = None
    firstSeen: Timestamp | None = None
    lastSeen: Timestamp | None = None
    project: SentryProject | None = None
    permalink: str | None = None
    web_url: str | None = None
    count: StrOrInt | None = None


class SentryEvent(Lenient):
    event_id: str | None = None
    issue_id: StrOrInt | None = None
    title: str | None = None
    message: str | None = None
    culprit: str | None = None
    level: str | None = None
    occurred: Timestamp | None = Field(None, alias="datetime")
    timestamp: float | None = None
    tags: list[Any] | dict[str, Any] | None = None
    release: str | None = None
    environment: str | None = None
    url: str | None = None
    web_url: str | None = None
    project: StrOrInt | None = None
    project_slug: str | None = None


class SentryIssueData(Lenient):
    issue: SentryIssue


class SentryEventAlertData(Lenient):
    event: SentryEvent
    triggered_rule: str | None = None


class SentryErrorData(Lenient):
    error: SentryEvent


class SentryAlertRule(Lenient):
    id: StrOrInt | None = None
    name: str | None = None
    projects: list[str] | None = None
    query: str | None = None
    aggregate: str | None = None
    environment: str | None = None


class SentryMetricAlert(Lenient):
    id: StrOrInt
    title: str | None = None
    identifier: StrOrInt | None = None
    alert_rule: SentryAlertRule | None = None
    projects: list[str] | None = None
    date_started: Timestamp | None = None
    date_detected: Timestamp | None = None
    date_closed: Timestamp | None = None


class SentryMetricAlertData(Lenient):
    metric_alert: SentryMetricAlert
    description_title: str | None = None
    description_text: str | None = None
    web_url: str | None = None


# --- Sentry ---------------------------------------------------------------------------------------

def _sentry_resource(header: str | None, data: dict[str, Any]) -> str | None:
    if header:
        return header.strip().lower()
    for key, resource in (("issue", "issue"), ("metric_alert", "metric_alert"), ("event", "event_alert"),
                          ("error", "error")):
        if isinstance(data.get(key), dict):
            return resource
    return None


def _tags(tags: list[Any] | dict[str, Any] | None) -> dict[str, str]:
    """Sentry sends tags as [[key, value], ...] (sometimes [{key, value}] or a mapping)."""
    out: dict[str, str] = {}
    for key, value in tag_pairs(tags, MAX_TAGS):
        if isinstance(key, str) and clean(key, 200) and isinstance(value, str | int | float | bool):
            out[clean(key, 200)] = clean(str(value))
    return out


def _sentry_event(
    resource: str, action: str, event: SentryEvent, rule: str | None, raw: dict[str, Any],
    settings: Settings, now: datetime,
) -> NormalizedAlert:
    labels = _tags(event.tags)
    slug = event.project_slug
    if not slug:
        for url in (event.url, event.web_url):
            match = _PROJECT_IN_URL.search(url or "")
            if match:
                slug = match.group(1)
                break
    if slug:
        labels.setdefault("project", clean(slug, 200))
    for key, value in (("release", event.release), ("environment", event.environment), ("rule", rule)):
        if value:
            labels.setdefault(key, clean(value))
    if event.issue_id not in (None, ""):
        fingerprint = f"issue:{event.issue_id}"
    elif event.event_id:
        fingerprint = f"event:{event.event_id}"
    else:
        raise IntakeRefused(422, f"data.{'event' if resource == 'event_alert' else 'error'}.issue_id: "
                            "missing (neither issue_id nor event_id given)", "invalid_payload")
    title = clean(event.title) or clean(event.message) or "Sentry event"
    summary = " · ".join(p for p in (clean(event.culprit), f"rule: {clean(rule)}" if rule else "") if p)
    return NormalizedAlert(
        source="sentry",
        fingerprint=fingerprint_of(fingerprint),
        status="firing",
        service=resolve_service(settings, labels, slug),
        severity=severity_of(event.level, "error"),
        title=title,
        summary=summary,
        started_at=event.occurred or epoch_datetime(event.timestamp) or now,
        labels={**labels, "sentry_resource": resource, "sentry_action": clean(action, 64)},
        links=link("sentry", event.web_url, "Sentry event"),
        raw=raw,
    )


def normalize_sentry(body: bytes, resource_header: str | None, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    envelope: SentryEnvelope = validate_model(SentryEnvelope, raw)
    action = envelope.action.strip().lower()
    resource = _sentry_resource(resource_header, envelope.data)
    if resource not in SENTRY_RESOURCES:
        log.info("ignored Sentry webhook: resource %r action %r is not an alert", resource, action)
        return ParsedDelivery(ignored=f"Sentry resource {resource!r} is not an alert; ignored")

    if resource == "issue":
        issue: SentryIssue = validate_model(SentryIssueData, envelope.data, "data").issue
        if action in ("created", "unresolved"):
            status: AlertStatus = "firing"
        elif action in ("resolved", "archived", "ignored"):
            status = "resolved"
        else:  # assigned and future actions: follow the issue's own status
            status = "resolved" if (issue.status or "").lower() in ("resolved", "ignored", "archived") else "firing"
        project = issue.project or SentryProject()
        slug = project.slug or project.name
        labels = {"sentry_resource": resource, "sentry_action": clean(action, 64)}
        if slug:
            labels["project"] = clean(slug, 200)
        if issue.shortId:
            labels["short_id"] = clean(issue.shortId)
        started = (issue.firstSeen if action == "created" else issue.lastSeen) or issue.firstSeen or now
        return ParsedDelivery(alerts=[NormalizedAlert(
            source="sentry",
            fingerprint=fingerprint_of(f"issue:{issue.id}"),
            status=status,
            service=resolve_service(settings, labels, slug),
            severity=severity_of(issue.level, "error"),
            title=clean(issue.title) or f"Sentry issue {issue.id}",
            summary=clean(issue.culprit),
            started_at=started,
            ended_at=now if status == "resolved" else None,
            labels=labels,
            links=link("sentry", issue.web_url or issue.permalink, "Sentry issue"),
            raw=raw,
        )])

    if resource == "event_alert":
        data: SentryEventAlertData = validate_model(SentryEventAlertData, envelope.data, "data")
        return ParsedDelivery(alerts=[
            _sentry_event(resource, action, data.event, data.triggered_rule, raw, settings, now)])

    if resource == "error":
        err: SentryErrorData = validate_model(SentryErrorData, envelope.data, "data")
        return ParsedDelivery(alerts=[_sentry_event(resource, action, err.error, None, raw, settings, now)])

    metric: SentryMetricAlertData = validate_model(SentryMetricAlertData, envelope.data, "data")
    alert = metric.metric_alert
    rule = alert.alert_rule or SentryAlertRule()
    projects = alert.projects or rule.projects or []
    slug = projects[0] if projects else None
    labels = {"sentry_resource": resource, "sentry_action": clean(action, 64)}
    for key, value in (("project", slug), ("alert_rule", rule.name), ("query", rule.query),
                       ("aggregate", rule.aggregate), ("environment", rule.environment)):
        if value:
            labels[key] = clean(value, 200)
    status = "resolved" if action == "resolved" else "firing"
    title = clean(rule.name) or clean(metric.description_title) or clean(alert.title) or "Sentry metric alert"
    return ParsedDelivery(alerts=[NormalizedAlert(
        source="sentry",
        fingerprint=fingerprint_of(f"metric_alert:{alert.id}"),
        status=status,
        service=resolve_service(settings, labels, slug),
        severity=severity_of(action, "warning") if status == "firing" else "warning",
        title=title,
        summary=clean(metric.description_text).replace("\\n", "\n"),
        started_at=alert.date_started or alert.date_detected or now,
        ended_at=(alert.date_closed or now) if status == "resolved" else None,
        labels=labels,
        links=link("sentry", metric.web_url, "Sentry metric alert"),
        raw=raw,
    )])
