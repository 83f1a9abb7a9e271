"""Webhook endpoints on the vendors' real payloads, signed as the vendors sign them."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.state.alerts import Alert
from firebreak.state.changes import Change
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from tests.test_intake_common import (
    API_TOKEN,
    WEBHOOK_TOKEN,
    bearer,
    client,
    configure,
    fixture_bytes,
    grafana_headers,
    sentry_headers,
)

AM = "alertmanager-0.25.0-webhook-firing.json"
GRAFANA = "grafana-webhook-firing.docs.json"
SENTRY = {
    "sentry-issue-created.docs.json": "issue",
    "sentry-event-alert-triggered.docs.json": "event_alert",
    "sentry-metric-alert-resolved.docs.json": "metric_alert",
}


def _alerts(ctx: ToolContext) -> list[Alert]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def _count(ctx: ToolContext, model: type) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_alertmanager_fixture_opens_one_incident_and_dedups(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, AM)
    r = c.post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r.status_code == 202, r.text
    assert r.json()["created"] == 2 and len(r.json()["incidents_opened"]) == 1
    r2 = c.post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r2.status_code == 202 and r2.json()["created"] == 0 and r2.json()["updated"] == 2
    rows = _alerts(ctx)
    assert [(a.fingerprint, a.receive_count) for a in rows] == [("3ad9878359a0f14f", 2), ("711c95e367dfcd66", 2)]
    a = rows[0]
    assert a.service == "checkout" and a.severity == "critical" and a.title == "HighErrorRate"
    assert a.summary == "5xx ratio above 5% for checkout"
    assert a.ended_at is None and a.raw["fingerprint"] == "3ad9878359a0f14f"
    assert {lk["kind"] for lk in a.links} == {"generator", "runbook"}
    with ctx.db.session() as s:
        inc = s.scalars(select(Incident)).one()
        assert inc.severity == "critical" and inc.services == ["checkout"] and inc.source == "intake"
        assert inc.status == "open" and inc.detected_at == ctx.clock.now()
        assert s.scalar(select(func.count()).select_from(Investigation)) == 1


def test_grafana_fixture_timestamped_signature(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, GRAFANA)
    r = c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, int(time.time())))
    assert r.status_code == 202, r.text
    rows = _alerts(ctx)
    assert [a.title for a in rows] == ["High memory usage", "High CPU usage"]
    first = rows[0]
    assert first.fingerprint == "c6eadffa33fcdf37" and first.service == "unknown"
    assert first.summary == "This alert was triggered for zone us-1"
    assert first.started_at.isoformat() == "2021-10-12T07:51:03.157076+00:00"
    assert first.labels["zone"] == "us-1" and first.raw["values"]["C"] == 1
    assert r.json()["truncated_alerts"] == 0


def test_grafana_signature_forms(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, GRAFANA)
    # Untimestamped form: HMAC of the body alone.
    assert c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, None)).status_code == 202
    # Signed with the drill's simulated time (the context clock), not the wall clock.
    sim = int(ctx.clock.now().timestamp())
    assert c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, sim)).status_code == 202
    stale = grafana_headers(body, int(time.time()) - 3600)
    r = c.post("/webhooks/grafana", content=body, headers=stale)
    assert r.status_code == 401 and "X-Grafana-Alerting-Timestamp" in r.json()["detail"]
    wrong = grafana_headers(body, int(time.time()), secret="other")
    r = c.post("/webhooks/grafana", content=body, headers=wrong)
    assert r.status_code == 401 and "FIREBREAK_GRAFANA_HMAC_SECRET" in r.json()["detail"]
    # A signature over the body alone does not verify once a timestamp is sent.
    mixed = {**grafana_headers(body, None), "X-Grafana-Alerting-Timestamp": str(int(time.time()))}
    assert c.post("/webhooks/grafana", content=body, headers=mixed).status_code == 401
    r = c.post("/webhooks/grafana", content=body, headers={"X-Grafana-Alerting-Timestamp": "soon",
                                                           "X-Grafana-Alerting-Signature": "ab"})
    assert r.status_code == 401
    # The bearer token is accepted instead of a signature.
    assert c.post("/webhooks/grafana", content=body, headers=bearer()).status_code == 202


@pytest.mark.parametrize("name", sorted(SENTRY))
def test_sentry_fixtures(ctx: ToolContext, fixtures_dir: Path, name: str) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, name)
    r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, SENTRY[name]))
    assert r.status_code == 202, r.text
    assert r.json()["alerts"] == 1
    (row,) = _alerts(ctx)
    assert row.source == "sentry" and row.raw == json.loads(body)
    expected = {
        "sentry-issue-created.docs.json": ("issue:1170820242", "front-end", "firing",
                                           "ReferenceError: blooopy is not defined"),
        "sentry-event-alert-triggered.docs.json": ("issue:1117540176", "front-end", "firing",
                                                   "ReferenceError: heck is not defined"),
        "sentry-metric-alert-resolved.docs.json": ("metric_alert:4", "bar", "resolved", "Too many errors"),
    }[name]
    assert (row.fingerprint, row.service, row.status, row.title) == expected
    if name.startswith("sentry-event"):
        assert row.links[0]["url"].startswith("https://sentry.io/organizations/test-org/issues/1117540176/")
        assert row.labels["rule"] == "Very Important Alert Rule!"
    if row.status == "resolved":
        # A resolution for an alert never seen firing is kept but opens nothing.
        assert r.json()["incidents_opened"] == [] and row.incident_id is None and row.ended_at is not None
    else:
        assert len(r.json()["incidents_opened"]) == 1


def test_sentry_resource_inferred_without_header(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    for name in SENTRY:
        body = fixture_bytes(fixtures_dir, name)
        assert c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, None)).status_code == 202
    assert len(_alerts(ctx)) == 3


def test_sentry_issue_events_share_one_alert_and_resolve(ctx: ToolContext) -> None:
    configure(ctx)
    c = client(ctx)
    issue = {"id": "42", "title": "KeyError: 'cart'", "level": "fatal", "status": "unresolved",
             "firstSeen": "2026-03-02T08:40:00Z", "lastSeen": "2026-03-02T08:44:00Z",
             "project": {"id": "7", "slug": "checkout", "name": "checkout"}}
    event = {"issue_id": "42", "event_id": "e1", "title": "KeyError: 'cart'", "level": "fatal",
             "datetime": "2026-03-02T08:44:00Z",
             "url": "https://sentry.io/api/0/projects/acme/checkout/events/e1/",
             "web_url": "https://sentry.io/organizations/acme/issues/42/events/e1/", "tags": [["release", "8.3.0"]]}
    deliveries = [
        ("issue", {"action": "created", "data": {"issue": issue}}),
        ("event_alert", {"action": "triggered", "data": {"event": event, "triggered_rule": "errors"}}),
        ("error", {"action": "created", "data": {"error": event}}),
    ]
    for resource, payload in deliveries:
        body = json.dumps(payload).encode()
        assert c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, resource)).status_code == 202
    (row,) = _alerts(ctx)
    assert row.fingerprint == "issue:42" and row.receive_count == 3 and row.severity == "critical"
    assert row.service == "checkout" and row.labels["release"] == "8.3.0"
    body = json.dumps({"action": "resolved", "data": {"issue": {**issue, "status": "resolved"}}}).encode()
    r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, "issue"))
    assert r.status_code == 202 and r.json()["resolved"] == 1
    (row,) = _alerts(ctx)
    assert row.status == "resolved" and row.ended_at == ctx.clock.now()


def test_sentry_unknown_resource_is_acknowledged_and_ignored(
    ctx: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    configure(ctx)
    c = client(ctx)
    body = json.dumps({"action": "created", "data": {"installation": {"uuid": "x"}}}).encode()
    with caplog.at_level("INFO", logger="firebreak.intake"):
        r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, "installation"))
    assert r.status_code == 202 and "installation" in r.json()["ignored"]
    assert "ignored Sentry webhook" in caplog.text
    assert _alerts(ctx) == []


def test_unconfigured_sources_name_the_variable(ctx: ToolContext, fixtures_dir: Path) -> None:
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, AM)
    cases = {
        "/webhooks/sentry": "FIREBREAK_SENTRY_CLIENT_SECRET",
        "/webhooks/grafana": "FIREBREAK_GRAFANA_HMAC_SECRET",
        "/webhooks/alertmanager": "FIREBREAK_WEBHOOK_TOKEN",
        "/webhooks/changes": "FIREBREAK_WEBHOOK_TOKEN",
    }
    for path, variable in cases.items():
        r = c.post(path, content=body, headers=bearer())
        assert r.status_code == 401, path
        assert variable in r.json()["detail"], path
    assert _alerts(ctx) == []


def test_wrong_or_missing_credentials(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, AM)
    assert c.post("/webhooks/alertmanager", content=body).status_code == 401
    assert c.post("/webhooks/alertmanager", content=body, headers=bearer("nope")).status_code == 401
    assert c.post("/webhooks/alertmanager", content=body,
                  headers={b"Authorization": "Bearer t\u00e9st".encode("latin-1")}).status_code == 401
    sbody = fixture_bytes(fixtures_dir, "sentry-issue-created.docs.json")
    assert c.post("/webhooks/sentry", content=sbody).status_code == 401
    bad = sentry_headers(sbody, "issue", secret="other")
    r = c.post("/webhooks/sentry", content=sbody, headers=bad)
    assert r.status_code == 401 and "Sentry-Hook-Signature" in r.json()["detail"]
    # The signature covers the raw bytes: re-serialised JSON does not verify.
    reformatted = json.dumps(json.loads(sbody)).encode()
    assert c.post("/webhooks/sentry", content=reformatted, headers=sentry_headers(sbody, "issue")).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty body"),
        (b"[1, 2]", 422, "expected a JSON object"),
        (b'{"alerts": "x"}', 422, "alerts"),
        (b'{"version": "4", "alerts": [{"status": "burning", "labels": {}}]}', 422, "alerts.0.status"),
        (b'{"version": "3", "alerts": []}', 422, "version"),
        (b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "2026-03-02T08:00:00"}]}', 422,
         "alerts.0.startsAt"),
        (b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "9999-12-31T23:59:59-14:00"}]}', 422,
         "alerts.0.startsAt"),
        (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}', 422, "alerts.0.labels.a"),
        (b'{"version": "4", "alerts": [{"labels": {}}]}', 422, "alerts.0.status"),
    ],
)
def test_bad_alertmanager_input_names_the_problem(ctx: ToolContext, body: bytes, status: int, needle: str) -> None:
    configure(ctx)
    r = client(ctx).post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_bad_sentry_input(ctx: ToolContext) -> None:
    configure(ctx)
    c = client(ctx)
    for payload, resource, needle in [
        ({"data": {}}, "issue", "action"),
        ({"action": "created", "data": {}}, "issue", "data.issue"),
        ({"action": "created", "data": {"issue": {"title": "x"}}}, "issue", "data.issue.id"),
        ({"action": "triggered", "data": {"event": {"title": "x"}}}, "event_alert", "issue_id"),
        ({"action": "critical", "data": {"metric_alert": {"id": "1", "date_started": "yesterday"}}},
         "metric_alert", "data.metric_alert.date_started"),
    ]:
        body = json.dumps(payload).encode()
        r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, resource))
        assert r.status_code == 422, (payload, r.text)
        assert needle in r.json()["detail"], r.json()


def test_grafana_truncated_alerts_are_reported(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    payload = json.loads(fixture_bytes(fixtures_dir, GRAFANA))
    payload["truncatedAlerts"] = 7
    body = json.dumps(payload).encode()
    r = client(ctx).post("/webhooks/grafana", content=body, headers=grafana_headers(body, None))
    assert r.status_code == 202 and r.json()["truncated_alerts"] == 7 and r.json()["alerts"] == 2


def test_resolved_notification_resolves(ctx: ToolContext, fixtures_dir: Path, clock: FixedClock) -> None:
    configure(ctx)
    c = client(ctx)
    payload = json.loads(fixture_bytes(fixtures_dir, AM))
    body = json.dumps(payload).encode()
    c.post("/webhooks/alertmanager", content=body, headers=bearer())
    clock.advance(timedelta(minutes=3))
    payload["status"] = "resolved"
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-03-02T08:47:00Z"
    payload["alerts"] = payload["alerts"][:1]
    body = json.dumps(payload).encode()
    r = c.post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r.json()["resolved"] == 1
    first, second = _alerts(ctx)
    assert first.status == "resolved" and first.ended_at is not None and first.ended_at.minute == 47
    assert second.status == "firing"


def test_changes_webhook_records_a_change(ctx: ToolContext) -> None:
    configure(ctx)
    c = client(ctx)
    change = {"kind": "deploy", "service": "checkout", "version": "8.3.0", "previous_version": "8.2.0",
              "at": "2026-05-14T13:12:00Z", "author": "ci", "note": "release"}
    r = c.post("/webhooks/changes", content=json.dumps(change), headers=bearer())
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "deploy" and r.json()["service"] == "checkout"
    flag = {"kind": "flag", "flag": "new-checkout", "variant": "on"}
    r = c.post("/webhooks/changes", content=json.dumps(flag), headers=bearer())
    assert r.status_code == 202 and r.json()["at"].startswith("2026-03-02T08:45")
    with ctx.db.session() as s:
        rows = list(s.scalars(select(Change).order_by(Change.id)))
    assert [(x.kind, x.source) for x in rows] == [("deploy", "webhook"), ("flag", "webhook")]
    assert rows[0].version == "8.3.0" and rows[0].previous_version == "8.2.0"
    for bad, needle in [({"kind": "deploy", "service": "x"}, "version"), ({"kind": "party"}, "kind"),
                        ({"kind": "config", "key": "k", "at": "2026-03-02T08:00:00"}, "at")]:
        r = c.post("/webhooks/changes", content=json.dumps(bad), headers=bearer())
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
    assert c.post("/webhooks/changes", content=b"{", headers=bearer()).status_code == 400
    assert c.post("/webhooks/changes", content=json.dumps(change),
                  headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _count(ctx, Change) == 2


def test_backlog_limit_answers_429_with_retry_after(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    ctx.settings.intake_queue_limit = 3
    from firebreak.server.intake.service import intake_queue

    c = client(ctx)
    body = fixture_bytes(fixtures_dir, AM)
    queue = intake_queue(ctx)
    queue.pending = 2  # two alerts already waiting: a delivery of two would pass the limit of 3
    r = c.post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "limit" in r.json()["detail"]
    queue.pending = 0
    assert c.post("/webhooks/alertmanager", content=body, headers=bearer()).status_code == 202
    ctx.settings.intake_queue_limit = 1
    ctx.close()  # a new queue picks up the new limit
    r = client(ctx).post("/webhooks/alertmanager", content=body, headers=bearer())
    assert r.status_code == 413 and "FIREBREAK_INTAKE_QUEUE_LIMIT" in r.json()["detail"]
    assert len(_alerts(ctx)) == 2


def test_metrics_endpoint(ctx: ToolContext, fixtures_dir: Path) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, AM)
    c.post("/webhooks/alertmanager", content=body, headers=bearer())
    c.post("/webhooks/alertmanager", content=body, headers=bearer("wrong"))
    assert c.get("/metrics").status_code == 401  # behind the API token unless FIREBREAK_PUBLIC_METRICS
    text = c.get("/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}).text
    assert 'firebreak_alerts_received_total{source="alertmanager"}' in text
    assert 'firebreak_webhook_refused_total{reason="bad_token",source="alertmanager"}' in text
    assert "firebreak_incidents_opened_total" in text
    assert "firebreak_intake_queue_depth" in text
    assert "firebreak_investigation_queue_depth 1.0" in text
    assert WEBHOOK_TOKEN not in text
