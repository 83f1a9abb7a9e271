"""Vendor payloads -> `NormalizedAlert`s.

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

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.models import AlertLink, AlertSeverity, AlertStatus, NormalizedAlert
from firebreak.settings import Settings
from firebreak.tools.sentry_payload import epoch_datetime, tag_pairs

log = logging.getLogger("firebreak.intake")

SENTRY_RESOURCES = ("issue", "event_alert", "metric_alert", "error")
SERVICE_LABELS = ("service", "job", "app")
MAX_TAGS = 100

_SEVERITY = {
    **dict.fromkeys(("critical", "crit", "page", "p1", "sev1", "fatal", "emergency", "emerg", "alert",
                     "disaster"), "critical"),
    **dict.fromkeys(("error", "err", "major", "high", "p2", "sev2"), "error"),
    **dict.fromkeys(("warning", "warn", "minor", "medium", "average", "p3", "sev3"), "warning"),
    **dict.fromkeys(("info", "informational", "information", "low", "notice", "debug", "log", "none",
                     "ok", "p4", "p5", "sev4", "sev5"), "info"),
}
_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")


def _utc(value: datetime) -> datetime:
    """Aware -> UTC; a timestamp that cannot be represented is a field error, not a crash."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None


Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
StrOrInt = str | int


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- payload shapes (only what we read; everything else is kept in `raw`) ---------------------------

class PromAlert(_Lenient):
    status: AlertStatus | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    startsAt: Timestamp | None = None
    endsAt: Timestamp | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class GrafanaAlert(PromAlert):
    silenceURL: str | None = None
    dashboardURL: str | None = None
    panelURL: str | None = None
    valueString: str | None = None


class AlertmanagerPayload(_Lenient):
    version: str | None = None
    status: str | None = None
    receiver: str | None = None
    alerts: list[PromAlert]
    externalURL: str | None = None
    groupKey: str | None = None
    truncatedAlerts: int = Field(0, ge=0)


class GrafanaPayload(AlertmanagerPayload):
    alerts: list[GrafanaAlert]  # type: ignore[assignment]
    orgId: int | None = None
    title: str | None = None


class SentryEnvelope(_Lenient):
    action: str
    data: dict[str, Any]


class SentryProject(_Lenient):
    id: StrOrInt | None = None
    slug: str | None = None
    name: str | None = None


class SentryIssue(_Lenient):
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


class SentryEvent(_Lenient):
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


class SentryIssueData(_Lenient):
    issue: SentryIssue


class SentryEventAlertData(_Lenient):
    event: SentryEvent
    triggered_rule: str | None = None


class SentryErrorData(_Lenient):
    error: SentryEvent


class SentryAlertRule(_Lenient):
    id: StrOrInt | None = None
    name: str | None = None
    projects: list[str] | None = None
    query: str | None = None
    aggregate: str | None = None
    environment: str | None = None


class SentryMetricAlert(_Lenient):
    id: StrOrInt
    title: str | None = None
    identifier: StrOrInt | None = None
    alert_rule: SentryAlertRule | None = None
    projects: list[str] | None = None
    date_started: Timestamp | None = None
    date_detected: Timestamp | None = None
    date_closed: Timestamp | None = None


class SentryMetricAlertData(_Lenient):
    metric_alert: SentryMetricAlert
    description_title: str | None = None
    description_text: str | None = None
    web_url: str | None = None


@dataclass
class ParsedDelivery:
    """What one delivery carried: alerts to ingest, alerts the sender dropped, or why it was ignored."""

    alerts: list[NormalizedAlert] = field(default_factory=list)
    truncated: int = 0
    ignored: str | None = None


# --- helpers --------------------------------------------------------------------------------------

def _clean(text: str | None, limit: int | None = None) -> str:
    """NUL is refused by PostgreSQL text columns; very long names are refused by varchar ones."""
    if not text:
        return ""
    text = text.replace("\x00", "").strip()
    return text[:limit] if limit else text


def _fingerprint(value: str) -> str:
    value = value.replace("\x00", "")
    if len(value) <= 200:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _labels_fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return "labels:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def severity_of(value: str | None, default: AlertSeverity = "warning") -> AlertSeverity:
    if not value:
        return default
    return _SEVERITY.get(value.strip().lower(), default)  # type: ignore[return-value]


def resolve_service(settings: Settings, labels: dict[str, str], fallback: str | None = None) -> str:
    name = ""
    for key in SERVICE_LABELS:
        if labels.get(key, "").strip():
            name = labels[key]
            break
    name = _clean(name or fallback or "unknown", 200) or "unknown"
    return _clean(settings.service_map.get(name, name), 200) or "unknown"


def _real(ts: datetime | None) -> datetime | None:
    """Alertmanager and Grafana send 0001-01-01T00:00:00Z for "no end yet"."""
    if ts is None or ts.year <= 1970:
        return None
    return ts


def _link(kind: str, url: str | None, label: str = "") -> list[AlertLink]:
    url = _clean(url)
    return [AlertLink(kind=kind, url=url, label=label)] if url else []


def _validate(model: type[_Lenient], data: Any, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise IntakeRefused(422, describe_errors(exc, prefix), "invalid_payload") from None


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err.get("loc", ())))
        parts.append(f"{loc or 'body'}: {err.get('msg')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise IntakeRefused(400, "empty body: expected a JSON object", "malformed_json")
    try:
        value = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise IntakeRefused(400, f"body is not valid JSON: {exc}", "malformed_json") from None
    if not isinstance(value, dict):
        raise IntakeRefused(422, f"body: expected a JSON object, got {type(value).__name__}", "invalid_payload")
    return value


# --- Grafana and Alertmanager ---------------------------------------------------------------------

def _prom_alerts(
    source: Literal["grafana", "alertmanager"], payload: AlertmanagerPayload, raw: dict[str, Any],
    settings: Settings, now: datetime,
) -> ParsedDelivery:
    raw_alerts = raw.get("alerts") or []
    delivery = {k: raw.get(k) for k in ("receiver", "groupKey", "externalURL", "status") if k in raw}
    out: list[NormalizedAlert] = []
    for i, alert in enumerate(payload.alerts):
        status: AlertStatus | None = alert.status
        if status is None and payload.status in ("firing", "resolved"):
            status = "firing" if payload.status == "firing" else "resolved"
        if status is None:
            raise IntakeRefused(422, f"alerts.{i}.status: missing (firing or resolved)", "invalid_payload")
        labels = {_clean(k, 200): _clean(v) for k, v in (alert.labels or {}).items() if _clean(k, 200)}
        annotations = alert.annotations or {}
        alertname = _clean(labels.get("alertname"))
        summary = _clean(annotations.get("summary"))
        description = _clean(annotations.get("description"))
        title = alertname or summary or f"{source.capitalize()} alert"
        if not alertname or not summary:
            summary = description
        links = [
            *_link("generator", alert.generatorURL, "alert rule"),
            *_link("dashboard", getattr(alert, "dashboardURL", None), "dashboard"),
            *_link("panel", getattr(alert, "panelURL", None), "panel"),
            *_link("runbook", annotations.get("runbook_url"), "runbook"),
        ]
        started = _real(alert.startsAt) or now
        ended = _real(alert.endsAt)
        if status == "resolved" and ended is None:
            ended = now
        elif status == "firing":
            ended = None
        item = raw_alerts[i] if i < len(raw_alerts) and isinstance(raw_alerts[i], dict) else {}
        out.append(NormalizedAlert(
            source=source,
            fingerprint=_fingerprint(_clean(alert.fingerprint)) or _labels_fingerprint(labels),
            status=status,
            service=resolve_service(settings, labels),
            severity=severity_of(labels.get("severity")),
            title=title,
            summary=summary,
            started_at=started,
            ended_at=ended,
            labels=labels,
            links=links,
            raw={**item, "delivery": delivery},
        ))
    if payload.truncatedAlerts:
        log.warning("%s delivery %r dropped %d alerts (truncatedAlerts); raise max_alerts on the sender",
                    source, payload.groupKey, payload.truncatedAlerts)
    return ParsedDelivery(alerts=out, truncated=payload.truncatedAlerts)


def normalize_grafana(body: bytes, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    payload: GrafanaPayload = _validate(GrafanaPayload, raw)
    return _prom_alerts("grafana", payload, raw, settings, now)


def normalize_alertmanager(body: bytes, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    payload: AlertmanagerPayload = _validate(AlertmanagerPayload, raw)
    if payload.version is not None and payload.version != "4":
        raise IntakeRefused(
            422, f"version: unsupported Alertmanager webhook version {payload.version!r} (expected '4')",
            "invalid_payload")
    return _prom_alerts("alertmanager", payload, raw, settings, now)


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
        if isinstance(key, str) and _clean(key, 200) and isinstance(value, str | int | float | bool):
            out[_clean(key, 200)] = _clean(str(value))
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
        labels.setdefault("project", _clean(slug, 200))
    for key, value in (("release", event.release), ("environment", event.environment), ("rule", rule)):
        if value:
            labels.setdefault(key, _clean(value))
    if event.issue_id not in (None, ""):
        fingerprint = f"issue:{event.issue_id}"
    elif event.event_id:
        fingerprint = f"event:{event.event_id}"
    else:
        raise IntakeRefused(422, f"data.{'event' if resource == 'event_alert' else 'error'}.issue_id: "
                            "missing (neither issue_id nor event_id given)", "invalid_payload")
    title = _clean(event.title) or _clean(event.message) or "Sentry event"
    summary = " · ".join(p for p in (_clean(event.culprit), f"rule: {_clean(rule)}" if rule else "") if p)
    return NormalizedAlert(
        source="sentry",
        fingerprint=_fingerprint(fingerprint),
        status="firing",
        service=resolve_service(settings, labels, slug),
        severity=severity_of(event.level, "error"),
        title=title,
        summary=summary,
        started_at=event.occurred or epoch_datetime(event.timestamp) or now,
        labels={**labels, "sentry_resource": resource, "sentry_action": _clean(action, 64)},
        links=_link("sentry", event.web_url, "Sentry event"),
        raw=raw,
    )


def normalize_sentry(body: bytes, resource_header: str | None, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    envelope: SentryEnvelope = _validate(SentryEnvelope, raw)
    action = envelope.action.strip().lower()
    resource = _sentry_resource(resource_header, envelope.data)
    if resource not in SENTRY_RESOURCES:
        log.info("ignored Sentry webhook: resource %r action %r is not an alert", resource, action)
        return ParsedDelivery(ignored=f"Sentry resource {resource!r} is not an alert; ignored")

    if resource == "issue":
        issue: SentryIssue = _validate(SentryIssueData, envelope.data, "data").issue
        if action in ("created", "unresolved"):
            status: AlertStatus = "firing"
        elif action in ("resolved", "archived", "ignored"):
            status = "resolved"
        else:  # assigned and future actions: follow the issue's own status
            status = "resolved" if (issue.status or "").lower() in ("resolved", "ignored", "archived") else "firing"
        project = issue.project or SentryProject()
        slug = project.slug or project.name
        labels = {"sentry_resource": resource, "sentry_action": _clean(action, 64)}
        if slug:
            labels["project"] = _clean(slug, 200)
        if issue.shortId:
            labels["short_id"] = _clean(issue.shortId)
        started = (issue.firstSeen if action == "created" else issue.lastSeen) or issue.firstSeen or now
        return ParsedDelivery(alerts=[NormalizedAlert(
            source="sentry",
            fingerprint=_fingerprint(f"issue:{issue.id}"),
            status=status,
            service=resolve_service(settings, labels, slug),
            severity=severity_of(issue.level, "error"),
            title=_clean(issue.title) or f"Sentry issue {issue.id}",
            summary=_clean(issue.culprit),
            started_at=started,
            ended_at=now if status == "resolved" else None,
            labels=labels,
            links=_link("sentry", issue.web_url or issue.permalink, "Sentry issue"),
            raw=raw,
        )])

    if resource == "event_alert":
        data: SentryEventAlertData = _validate(SentryEventAlertData, envelope.data, "data")
        return ParsedDelivery(alerts=[
            _sentry_event(resource, action, data.event, data.triggered_rule, raw, settings, now)])

    if resource == "error":
        err: SentryErrorData = _validate(SentryErrorData, envelope.data, "data")
        return ParsedDelivery(alerts=[_sentry_event(resource, action, err.error, None, raw, settings, now)])

    metric: SentryMetricAlertData = _validate(SentryMetricAlertData, envelope.data, "data")
    alert = metric.metric_alert
    rule = alert.alert_rule or SentryAlertRule()
    projects = alert.projects or rule.projects or []
    slug = projects[0] if projects else None
    labels = {"sentry_resource": resource, "sentry_action": _clean(action, 64)}
    for key, value in (("project", slug), ("alert_rule", rule.name), ("query", rule.query),
                       ("aggregate", rule.aggregate), ("environment", rule.environment)):
        if value:
            labels[key] = _clean(value, 200)
    status = "resolved" if action == "resolved" else "firing"
    title = _clean(rule.name) or _clean(metric.description_title) or _clean(alert.title) or "Sentry metric alert"
    return ParsedDelivery(alerts=[NormalizedAlert(
        source="sentry",
        fingerprint=_fingerprint(f"metric_alert:{alert.id}"),
        status=status,
        service=resolve_service(settings, labels, slug),
        severity=severity_of(action, "warning") if status == "firing" else "warning",
        title=title,
        summary=_clean(metric.description_text).replace("\\n", "\n"),
        started_at=alert.date_started or alert.date_detected or now,
        ended_at=(alert.date_closed or now) if status == "resolved" else None,
        labels=labels,
        links=_link("sentry", metric.web_url, "Sentry metric alert"),
        raw=raw,
    )])
