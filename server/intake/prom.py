"""Grafana unified-alerting and Alertmanager v4 webhooks -> `NormalizedAlert`s, a whole delivery at a time.

Both send a group of alerts per delivery (Grafana adds dashboard and panel links, `truncatedAlerts`
counts what the sender dropped). Identity: the alert's own fingerprint, or a hash of its labels.

Cost: a storm delivery is 100 alerts or more, and the webhook handler parses it while the intake
writer stores the previous ones, so parsing is written per delivery, not per alert: the body is
validated against the vendor shape in one pydantic-core call, its outside text is capped (only when
`may_hold_long_strings` says some string can be long) and redacted in one pass over the whole
payload, and the normalised alerts are validated together (`prepared_alerts`). The result is the
same as building each `NormalizedAlert` on its own (tests/test_intake_prom.py checks it).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from firebreak.redact import redact_obj, redact_text
from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.fields import (
    Lenient,
    ParsedDelivery,
    Timestamp,
    clean,
    describe_errors,
    fingerprint_of,
    labels_fingerprint,
    parse_json_object,
    real_time,
    resolve_service,
    severity_of,
    validate_model,
)
from firebreak.server.intake.models import (
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    AlertStatus,
    cap_strings,
    cap_text,
    may_hold_long_strings,
    prepared_alerts,
)
from firebreak.settings import Settings

log = logging.getLogger("firebreak.intake")

_DELIVERY_KEYS = ("receiver", "groupKey", "externalURL", "status")


class PromAlert(Lenient):
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


class AlertmanagerPayload(Lenient):
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


_GRAFANA = TypeAdapter(GrafanaPayload)
_ALERTMANAGER = TypeAdapter(AlertmanagerPayload)
# (kind, attribute, label) of the links a person can open, in the order they are shown.
_LINKS = (("generator", "generatorURL", "alert rule"), ("dashboard", "dashboardURL", "dashboard"),
          ("panel", "panelURL", "panel"))


def _prom_alerts(
    source: Literal["grafana", "alertmanager"], payload: AlertmanagerPayload, raw: dict[str, Any], body: bytes,
    settings: Settings, now: datetime,
) -> ParsedDelivery:
    long_text = may_hold_long_strings(body)
    nul = b"\\u0000" in body  # JSON can only carry NUL escaped
    # The delivery as kept: every string capped (when one can be long) and redacted, once.
    kept = redact_obj(cap_strings(raw, MAX_TEXT_CHARS) if long_text else raw)
    kept_alerts = kept.get("alerts") or []
    delivery = {k: kept.get(k) for k in _DELIVERY_KEYS if k in kept}
    rows: list[dict[str, Any]] = []
    for i, alert in enumerate(payload.alerts):
        status: AlertStatus | None = alert.status
        if status is None and payload.status in ("firing", "resolved"):
            status = "firing" if payload.status == "firing" else "resolved"
        if status is None:
            raise IntakeRefused(422, f"alerts.{i}.status: missing (firing or resolved)", "invalid_payload")
        item = kept_alerts[i] if i < len(kept_alerts) and isinstance(kept_alerts[i], dict) else {}
        sent = alert.labels or {}
        if nul:
            labels = {key: clean(v) for k, v in sent.items() if (key := clean(k, 200))}
        else:  # what `clean` leaves of a text without NUL
            labels = {key: v.strip() for k, v in sent.items() if (key := k.strip()[:200])}
        annotations = alert.annotations or {}
        alertname = clean(labels.get("alertname"))
        summary = clean(annotations.get("summary"))
        title = alertname or summary or f"{source.capitalize()} alert"
        if not alertname or not summary:
            summary = clean(annotations.get("description"))
        links = []
        fields = alert.__dict__  # Alertmanager alerts have no dashboard or panel (and getattr would raise)
        for kind, attr, label in (*_LINKS, ("runbook", None, "runbook")):
            url = clean(annotations.get("runbook_url") if attr is None else fields.get(attr))
            if url:  # the labels are ours, only the URL came from outside
                links.append({"kind": kind, "url": redact_text(url), "label": label})
        started = real_time(alert.startsAt) or now
        ended = real_time(alert.endsAt)
        if status == "resolved" and ended is None:
            ended = now
        elif status == "firing":
            ended = None
        rows.append({
            # Identity, service and severity read the labels as sent (cleaned), before redaction.
            "source": source,
            "fingerprint": fingerprint_of(clean(alert.fingerprint)) or labels_fingerprint(labels),
            "status": status,
            "service": resolve_service(settings, labels),
            "severity": severity_of(labels.get("severity")),
            "title": redact_text(cap_text(title, MAX_TITLE_CHARS)),
            "summary": redact_text(cap_text(summary, MAX_TEXT_CHARS)),
            "started_at": started,
            "ended_at": ended,
            "labels": item["labels"] if labels == sent and isinstance(item.get("labels"), dict)
            else redact_obj(cap_strings(labels, MAX_TEXT_CHARS) if long_text else labels),
            "links": links,
            "raw": {**item, "delivery": delivery},
        })
    try:
        alerts = prepared_alerts(rows)
    except ValidationError as exc:
        raise IntakeRefused(422, describe_errors(exc, "alerts"), "invalid_payload") from None
    if payload.truncatedAlerts:
        log.warning("%s delivery %r dropped %d alerts (truncatedAlerts); raise max_alerts on the sender",
                    source, payload.groupKey, payload.truncatedAlerts)
    return ParsedDelivery(alerts=alerts, truncated=payload.truncatedAlerts)


def normalize_grafana(body: bytes, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    payload: GrafanaPayload = validate_model(_GRAFANA, raw)
    return _prom_alerts("grafana", payload, raw, body, settings, now)


def normalize_alertmanager(body: bytes, settings: Settings, now: datetime) -> ParsedDelivery:
    raw = parse_json_object(body)
    payload: AlertmanagerPayload = validate_model(_ALERTMANAGER, raw)
    if payload.version is not None and payload.version != "4":
        raise IntakeRefused(
            422, f"version: unsupported Alertmanager webhook version {payload.version!r} (expected '4')",
            "invalid_payload")
    return _prom_alerts("alertmanager", payload, raw, body, settings, now)
