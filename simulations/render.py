"""Alerts rendered as each vendor really sends them, and signed the way that vendor signs.

Shapes follow ../shared/fixtures: Sentry integration-platform webhooks (`issue`, `event_alert`),
the Grafana unified-alerting webhook (version "1") and the Alertmanager webhook (version "4").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from firebreak.simulations.generator import AlertNotice
from firebreak.simulations.scenario import AlertEvent, Dashboard

GRAFANA_URL = "https://grafana.drill.example"
PROMETHEUS_URL = "http://prometheus.drill.example:9090"
ALERTMANAGER_URL = "http://alertmanager.drill.example:9093"
SENTRY_URL = "https://sentry.drill.example"
SENTRY_ORG = "drill"
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Secrets:
    """What the drill's intake is configured with; the renderer signs with the same values."""

    sentry_client_secret: str
    grafana_hmac_secret: str
    webhook_token: str


@dataclass
class Delivery:
    """One HTTP POST to the intake: path, raw body and the vendor's headers (signature included)."""

    source: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    resource: str = ""


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _digest(*parts: object, length: int = 16) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:length]


def _labels(alert: AlertEvent) -> dict[str, str]:
    labels = {"alertname": alert.name, "service": alert.service}
    if alert.severity is not None:
        labels["severity"] = alert.severity
    labels.update({k: str(v) for k, v in alert.labels.items()})
    return labels


def _annotations(alert: AlertEvent) -> dict[str, str]:
    return {"summary": alert.summary} if alert.summary else {}


def _dashboard_for(service: str, dashboards: list[Dashboard]) -> tuple[str, str]:
    """The first dashboard with a panel about the alert's service: (dashboard URL, panel URL)."""
    for dash in dashboards:
        for i, panel in enumerate(dash.panels):
            if panel.service == service:
                base = f"{GRAFANA_URL}/d/{dash.uid}"
                return base, f"{base}?orgId=1&viewPanel={i + 1}"
    return "", ""


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def render_grafana(notice: AlertNotice, dashboards: list[Dashboard], sent_at: datetime) -> dict[str, Any]:
    alert = notice.alert
    labels = _labels(alert)
    labels.setdefault("grafana_folder", alert.service)
    annotations = _annotations(alert)
    rule_uid = _digest("grafana-rule", alert.service, alert.name, length=14)
    fingerprint = _digest("grafana", sorted(labels.items()))
    dash_url, panel_url = _dashboard_for(alert.service, dashboards)
    firing = notice.status == "firing"
    matchers = quote(",".join(f"{k}={v}" for k, v in sorted(labels.items())), safe="")
    item = {
        "status": notice.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(notice.started_at),
        "endsAt": ZERO_TIME if firing else iso(notice.at),
        "generatorURL": f"{GRAFANA_URL}/alerting/grafana/{rule_uid}/view?orgId=1",
        "fingerprint": fingerprint,
        "silenceURL": f"{GRAFANA_URL}/alerting/silence/new?alertmanager=grafana&matchers={matchers}",
        "dashboardURL": dash_url,
        "panelURL": panel_url,
        "values": {"C": 1 if firing else 0},
    }
    group = {"alertname": alert.name, "grafana_folder": alert.service}
    text = "\n".join(f" - {k} = {v}" for k, v in sorted(labels.items()))
    notes = "\n".join(f" - {k} = {v}" for k, v in sorted(annotations.items()))
    word = "FIRING" if firing else "RESOLVED"
    return {
        "receiver": "firebreak",
        "status": notice.status,
        "orgId": 1,
        "alerts": [item],
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": f"{GRAFANA_URL}/",
        "version": "1",
        "groupKey": "{}/{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
        "title": f"[{word}:1] {alert.name} ({alert.service})",
        "state": "alerting" if firing else "ok",
        "message": f"**{word.title()}**\n\nValue: C=1\nLabels:\n{text}\nAnnotations:\n{notes}\n"
                   f"Source: {item['generatorURL']}\n",
    }


def render_alertmanager(notice: AlertNotice, sent_at: datetime) -> dict[str, Any]:
    alert = notice.alert
    labels = _labels(alert)
    instance = f"{alert.service}-{_digest('instance', alert.service, length=4)}:8080"
    labels = {"alertname": labels.pop("alertname"), "instance": instance, "job": alert.service, **labels}
    annotations = _annotations(alert)
    expr = quote(f'ALERTS{{alertname="{alert.name}",service="{alert.service}"}}', safe="")
    item = {
        "status": notice.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(notice.started_at),
        "endsAt": ZERO_TIME if notice.status == "firing" else iso(notice.at),
        "generatorURL": f"{PROMETHEUS_URL}/graph?g0.expr={expr}&g0.tab=1",
        "fingerprint": _digest("alertmanager", sorted(labels.items())),
    }
    group = {"alertname": alert.name, "service": alert.service}
    common = {k: v for k, v in labels.items() if k != "instance"}
    return {
        "receiver": "firebreak",
        "status": notice.status,
        "alerts": [item],
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": annotations,
        "externalURL": ALERTMANAGER_URL,
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
    }


def _sentry_ids(alert: AlertEvent) -> tuple[str, str, int]:
    issue_id = str(1_000_000_000 + zlib.crc32(f"{alert.service}\x1f{alert.name}".encode()) % 900_000_000)
    short = f"{alert.service.upper()}-{zlib.crc32(alert.name.encode()) % 400 + 1:X}"
    project_id = zlib.crc32(alert.service.encode()) % 9000 + 1000
    return issue_id, short, project_id


def _exception_type(alert: AlertEvent) -> tuple[str, str]:
    if alert.exception:
        kind = alert.exception
    elif ":" in alert.name:
        kind = alert.name.split(":", 1)[0].strip()
    else:
        kind = "Error"
    value = alert.message or (alert.name.split(":", 1)[1].strip() if ":" in alert.name else alert.name)
    return kind, value


def _frames(alert: AlertEvent) -> list[dict[str, Any]]:
    """A plausible Python stack ending in the culprit (`module in function`)."""
    module, function = "app.main", "handle"
    if alert.culprit:
        if " in " in alert.culprit:
            module, function = (p.strip() for p in alert.culprit.split(" in ", 1))
        else:
            module = alert.culprit.strip()
    filename = module.replace(".", "/") + ".py"
    lineno = zlib.crc32(alert.culprit.encode() if alert.culprit else b"x") % 400 + 20

    def frame(fn: str, mod: str, file: str, line: int, in_app: bool) -> dict[str, Any]:
        return {"filename": file, "abs_path": f"/srv/{alert.service}/{file}", "module": mod, "function": fn,
                "lineno": line, "in_app": in_app, "context_line": None, "pre_context": None,
                "post_context": None, "vars": None, "data": {}, "errors": None}

    return [
        frame("run", "concurrent.futures.thread", "concurrent/futures/thread.py", 58, False),
        frame("__call__", f"{alert.service}.worker", f"{alert.service}/worker.py", 112, True),
        frame(function, module, filename, lineno, True),
    ]


def render_sentry(notice: AlertNotice, sent_at: datetime) -> list[tuple[str, dict[str, Any]]]:
    """[(resource, payload)]: `issue` created then `event_alert` triggered; `issue` resolved at the end."""
    alert = notice.alert
    issue_id, short_id, project_id = _sentry_ids(alert)
    kind, value = _exception_type(alert)
    level = alert.level or "error"
    count = alert.count if alert.count is not None else 1
    web_url = f"{SENTRY_URL}/organizations/{SENTRY_ORG}/issues/{issue_id}/"
    project = {"id": str(project_id), "name": alert.service, "slug": alert.service, "platform": "python"}
    installation = {"uuid": str(uuid.UUID(_digest("installation", alert.service, length=32)))}
    actor = {"id": "sentry", "name": "Sentry", "type": "application"}
    issue: dict[str, Any] = {
        "annotations": [], "assignedTo": None, "count": str(count), "culprit": alert.culprit or "",
        "firstSeen": iso(notice.started_at), "hasSeen": False, "id": issue_id, "isBookmarked": False,
        "isPublic": False, "isSubscribed": False,
        "lastSeen": iso(notice.at if notice.status == "resolved" else notice.started_at),
        "level": level, "logger": None,
        "metadata": {"type": kind, "value": value, "filename": (alert.culprit or "").split(" in ")[0]},
        "numComments": 0, "permalink": web_url, "platform": "python", "project": project, "shareId": None,
        "shortId": short_id, "status": "unresolved" if notice.status == "firing" else "resolved",
        "statusDetails": {}, "subscriptionDetails": None,
        "substatus": "new" if notice.status == "firing" else None,
        "title": alert.name, "type": "error", "userCount": max(1, count // 3),
    }
    if notice.status == "resolved":
        return [("issue", {"action": "resolved", "actor": actor, "data": {"issue": issue},
                           "installation": installation})]
    event_id = _digest("event", alert.service, alert.name, notice.at.isoformat(), length=32)
    tags = [["environment", "production"], ["level", level], ["server_name", f"{alert.service}-1"],
            ["handled", "no"], ["mechanism", "excepthook"]]
    if alert.release:
        tags.insert(0, ["release", alert.release])
    for k, v in alert.labels.items():
        tags.append([k, str(v)])
    event = {
        "_ref": project_id, "_ref_version": 2,
        "contexts": {"runtime": {"name": "CPython", "type": "runtime", "version": "3.11.7"}},
        "culprit": alert.culprit or "", "datetime": iso(notice.at), "dist": None, "event_id": event_id,
        "exception": {"values": [{
            "mechanism": {"type": "excepthook", "handled": False, "data": None, "description": None,
                          "help_link": None, "meta": None, "synthetic": None},
            "stacktrace": {"frames": _frames(alert)}, "type": kind, "value": value, "module": None,
        }]},
        "fingerprint": ["{{ default }}"], "hashes": [_digest("hash", issue_id, length=32)],
        "issue_url": f"{SENTRY_URL}/api/0/issues/{issue_id}/", "issue_id": issue_id,
        "key_id": str(project_id * 7), "level": level, "location": (alert.culprit or "").split(" in ")[0],
        "logger": "", "message": "", "metadata": {"type": kind, "value": value},
        "platform": "python", "project": project_id, "received": notice.at.timestamp(),
        "release": alert.release, "request": None,
        "sdk": {"name": "sentry.python", "version": "2.19.0", "integrations": ["logging", "threading"]},
        "tags": tags, "time_spent": None, "timestamp": notice.at.timestamp(), "title": alert.name,
        "type": "error",
        "url": f"{SENTRY_URL}/api/0/projects/{SENTRY_ORG}/{alert.service}/events/{event_id}/",
        "user": None, "version": "7",
        "web_url": f"{SENTRY_URL}/organizations/{SENTRY_ORG}/issues/{issue_id}/events/{event_id}/",
    }
    rule = f"{alert.service}: new or escalating errors"
    return [
        ("issue", {"action": "created", "actor": actor, "data": {"issue": issue}, "installation": installation}),
        ("event_alert", {"action": "triggered", "actor": actor,
                         "data": {"event": event, "triggered_rule": rule,
                                  "issue_alert": {"title": rule, "settings": []}},
                         "installation": installation}),
    ]


def sign(delivery: Delivery, secrets: Secrets, sent_at: datetime) -> Delivery:
    """Add the headers the vendor would send, its signature or token included."""
    stamp = str(int(sent_at.timestamp()))
    headers = {"Content-Type": "application/json"}
    if delivery.source == "sentry":
        headers.update({
            "User-Agent": "sentry-webhooks",
            "Request-ID": _digest("request", delivery.body, length=32),
            "Sentry-Hook-Resource": delivery.resource,
            "Sentry-Hook-Timestamp": stamp,
            "Sentry-Hook-Signature": hmac.new(secrets.sentry_client_secret.encode(), delivery.body,
                                              hashlib.sha256).hexdigest(),
        })
    elif delivery.source == "grafana":
        message = stamp.encode() + b":" + delivery.body
        headers.update({
            "User-Agent": "Grafana",
            "X-Grafana-Alerting-Signature": hmac.new(secrets.grafana_hmac_secret.encode(), message,
                                                     hashlib.sha256).hexdigest(),
            "X-Grafana-Alerting-Timestamp": stamp,
        })
    else:
        headers.update({"User-Agent": "Alertmanager/0.25.0",
                        "Authorization": f"Bearer {secrets.webhook_token}"})
    delivery.headers = headers
    return delivery


def render(notice: AlertNotice, dashboards: list[Dashboard], secrets: Secrets, sent_at: datetime) -> list[Delivery]:
    """The signed HTTP deliveries for one alert notification, in the order the vendor sends them."""
    alert = notice.alert
    if alert.source == "grafana":
        out = [Delivery("grafana", "/webhooks/grafana", _json(render_grafana(notice, dashboards, sent_at)))]
    elif alert.source == "alertmanager":
        out = [Delivery("alertmanager", "/webhooks/alertmanager", _json(render_alertmanager(notice, sent_at)))]
    else:
        out = [Delivery("sentry", "/webhooks/sentry", _json(payload), resource=resource)
               for resource, payload in render_sentry(notice, sent_at)]
    return [sign(d, secrets, sent_at) for d in out]
