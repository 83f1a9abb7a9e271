"""Issue 15, items 4, 5 and 7: bounded bodies, JSON limits, replay refusal, and the token on /metrics and /docs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.server.guard import MAX_JSON_DEPTH, JSONLimitError, loads_limited
from tests.fake_slack import sign
from tests.test_intake_common import (
    API_TOKEN,
    GRAFANA_SECRET,
    bearer,
    configure,
    fixture_bytes,
    grafana_headers,
    make_app,
    sentry_headers,
)

SLACK_SECRET = "slack-signing-secret"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
MiB = 1024 * 1024


@pytest.fixture
def c(ctx: ToolContext) -> TestClient:
    configure(ctx)
    ctx.settings.slack_signing_secret = SecretStr(SLACK_SECRET)
    return TestClient(make_app(ctx))


def _slack_headers(ctx: ToolContext, body: str) -> dict[str, str]:
    return {**sign(SLACK_SECRET, body, int(ctx.clock.now().timestamp())),
            "Content-Type": "application/x-www-form-urlencoded"}


# --- body caps --------------------------------------------------------------------------------------


def test_declared_oversized_bodies_are_refused_before_reading(c: TestClient) -> None:
    for path, cap in (("/slack/interactions", MiB), ("/api/tools/search_logs", MiB),
                      ("/webhooks/alertmanager", 16 * MiB), ("/login", MiB)):
        r = c.post(path, content=b"", headers={"Content-Length": str(100 * 1024 * 1024)})
        assert r.status_code == 413, (path, r.status_code)
        assert str(cap) in r.json()["detail"]


def test_streamed_bodies_stop_at_the_cap(c: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100 * 16):  # 100 MiB in 64 KiB chunks, no Content-Length
            yield b"x" * 65536

    started = time.perf_counter()
    r = c.post("/slack/interactions", content=chunks())
    assert r.status_code == 413 and time.perf_counter() - started < 5
    r = c.post("/api/tools/search_logs", content=(b"[" * 10 for _ in range(200_000)), headers={
        **AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_sixty_thousand_alerts_are_refused_while_streaming(c: TestClient) -> None:
    alert = {"status": "firing", "labels": {"alertname": "A", "service": "s"}, "annotations": {},
             "startsAt": "2026-03-02T08:40:00Z", "endsAt": "0001-01-01T00:00:00Z"}
    body = json.dumps({"receiver": "r", "status": "firing", "version": "4", "groupKey": "k",
                       "groupLabels": {"labels": "x"}, "commonLabels": {}, "commonAnnotations": {},
                       "alerts": [alert] * 60_000}).encode()
    started = time.perf_counter()
    r = c.post("/webhooks/alertmanager", content=body, headers=bearer())
    elapsed = time.perf_counter() - started
    assert r.status_code == 413 and "FIREBREAK_MAX_ALERTS_PER_DELIVERY" in r.json()["detail"]
    assert elapsed < 3.0, elapsed  # parsing all of it took ~9 s before


def test_alert_cap_counts_only_alerts(c: TestClient, ctx: ToolContext) -> None:
    ctx.settings.max_alerts_per_delivery = 2
    alerts = [{"status": "firing", "labels": {"alertname": f"A{i}", "service": "s"}, "annotations": {},
               "startsAt": "2026-03-02T08:40:00Z"} for i in range(2)]
    payload = {"receiver": "r", "status": "firing", "version": "4", "groupKey": "k", "groupLabels": {},
               "commonLabels": {"alertname": "A"}, "commonAnnotations": {}, "alerts": alerts}
    assert c.post("/webhooks/alertmanager", content=json.dumps(payload).encode(), headers=bearer()).status_code == 202
    payload["alerts"] = [*alerts, {**alerts[0], "labels": {"alertname": "A3", "service": "s"}}]
    r = c.post("/webhooks/alertmanager", content=json.dumps(payload).encode(), headers=bearer())
    assert r.status_code == 413


# --- JSON limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "message"), [
    ("[" * 5000 + "]" * 5000, "nested deeper"),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
    ('{"n": ' + "9" * 5000 + "}", "digits"),
    ('{"n": 1e999}', "too large"),
    ('{"n": NaN}', "not a JSON number"),
    ("{nope", "not JSON"),
])
def test_loads_limited_names_the_limit(doc: str, message: str) -> None:
    with pytest.raises(JSONLimitError, match=message):
        loads_limited(doc)


def test_loads_limited_accepts_ordinary_json() -> None:
    assert loads_limited('{"a": [1, 2.5, -3, {"b": null}], "big": 12345678901234567890}')["big"] == \
        12345678901234567890


@pytest.mark.parametrize("payload", [
    '{"type": "block_actions", "user": {"id": "U1"}, "actions": ' + "[" * 3000 + "]" * 3000 + "}",
    '{"type": "block_actions", "user": {"id": "U1"}, "n": ' + "7" * 6000 + "}",
    '{"type": "block_actions", "user": {"id": "U1"}, "n": -Infinity}',
])
def test_signed_slack_payload_with_nesting_or_huge_numbers_is_a_400(c: TestClient, ctx: ToolContext,
                                                                    payload: str) -> None:
    body = "payload=" + quote_plus(payload)  # the form Slack posts, signed: only the JSON inside is hostile
    r = c.post("/slack/interactions", content=body, headers=_slack_headers(ctx, body))
    assert r.status_code == 400 and r.json()["detail"].startswith("payload:")


def test_api_json_limits_are_400_not_500(c: TestClient) -> None:
    deep = '{"service": "checkout", "x": ' + "[" * 200 + "]" * 200 + "}"
    r = c.post("/api/tools/search_logs", content=deep, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "nested deeper" in r.json()["detail"]
    huge = '{"service": "checkout", "limit": ' + "1" * 5000 + "}"
    r = c.post("/api/tools/search_logs", content=huge, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "digits" in r.json()["detail"]
    r = c.post("/api/tools/search_logs", json={"limit": 5}, headers=AUTH)
    assert r.status_code == 200, r.text


# --- replays ------------------------------------------------------------------------------------------


def test_vendor_fixtures_are_still_accepted_once(c: TestClient, fixtures_dir: Path) -> None:
    for name, resource in (("sentry-issue-created.docs.json", "issue"),
                           ("sentry-event-alert-triggered.docs.json", "event_alert"),
                           ("sentry-metric-alert-resolved.docs.json", "metric_alert")):
        body = fixture_bytes(fixtures_dir, name)
        headers = sentry_headers(body, resource)
        assert c.post("/webhooks/sentry", content=body, headers=headers).status_code == 202, name
        r = c.post("/webhooks/sentry", content=body, headers=headers)
        assert r.status_code == 409 and "replayed" in r.json()["detail"], name
    grafana = fixture_bytes(fixtures_dir, "grafana-webhook-firing.docs.json")
    stamp = int(time.time())
    assert c.post("/webhooks/grafana", content=grafana, headers=grafana_headers(grafana, stamp)).status_code == 202
    assert c.post("/webhooks/grafana", content=grafana, headers=grafana_headers(grafana, stamp)).status_code == 409
    am = fixture_bytes(fixtures_dir, "alertmanager-0.25.0-webhook-firing.json")
    for _ in range(2):  # bearer deliveries carry no per-delivery proof: a re-send only updates the alert
        assert c.post("/webhooks/alertmanager", content=am, headers=bearer()).status_code == 202


def test_grafana_body_only_signature_is_accepted_once(c: TestClient, fixtures_dir: Path) -> None:
    body = fixture_bytes(fixtures_dir, "grafana-webhook-firing.docs.json")
    assert c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, None)).status_code == 202
    assert c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, None)).status_code == 409


def test_stale_or_edited_sentry_timestamp(c: TestClient, ctx: ToolContext, fixtures_dir: Path) -> None:
    body = fixture_bytes(fixtures_dir, "sentry-issue-created.docs.json")
    old = int(time.time()) - 3600
    r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, "issue", stamp=old))
    assert r.status_code == 401 and "Sentry-Hook-Timestamp" in r.json()["detail"]
    r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, "issue", stamp=0))
    assert r.status_code == 401
    headers = sentry_headers(body, "issue")
    r = c.post("/webhooks/sentry", content=body, headers={**headers, "Sentry-Hook-Timestamp": "soon"})
    assert r.status_code == 401 and "Unix timestamp" in r.json()["detail"]
    assert c.post("/webhooks/sentry", content=body, headers=headers).status_code == 202
    # The captured delivery with its (unsigned) timestamp header rewritten to "now" is still a replay.
    fresh = {**headers, "Sentry-Hook-Timestamp": str(int(time.time()) + 1)}
    assert c.post("/webhooks/sentry", content=body, headers=fresh).status_code == 409


def test_stale_grafana_timestamp(c: TestClient, fixtures_dir: Path) -> None:
    body = fixture_bytes(fixtures_dir, "grafana-webhook-firing.docs.json")
    r = c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, int(time.time()) - 3600))
    assert r.status_code == 401 and "away from now" in r.json()["detail"]


def test_a_refused_delivery_can_be_retried(c: TestClient, ctx: ToolContext, fixtures_dir: Path) -> None:
    body = fixture_bytes(fixtures_dir, "grafana-webhook-firing.docs.json")
    headers = grafana_headers(body, int(time.time()))
    ctx.settings.intake_queue_limit = 0  # the backlog cannot take it now
    ctx.close()
    r = TestClient(make_app(ctx)).post("/webhooks/grafana", content=body, headers=headers)
    assert r.status_code in (413, 429), r.text
    ctx.settings.intake_queue_limit = 50_000
    ctx.close()
    assert TestClient(make_app(ctx)).post("/webhooks/grafana", content=body, headers=headers).status_code == 202


def test_replay_cache_entries_expire(c: TestClient, ctx: ToolContext, fixtures_dir: Path) -> None:
    from firebreak.clock import FixedClock

    body = fixture_bytes(fixtures_dir, "grafana-webhook-firing.docs.json")
    headers = grafana_headers(body, None, GRAFANA_SECRET)
    assert c.post("/webhooks/grafana", content=body, headers=headers).status_code == 202
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.advance(timedelta(hours=25))
    assert c.post("/webhooks/grafana", content=body, headers=headers).status_code == 202


# --- /metrics, /docs, /openapi.json -------------------------------------------------------------------


def test_metrics_and_docs_need_the_token(c: TestClient, ctx: ToolContext) -> None:
    for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert c.get(path, headers=AUTH).status_code == 200, path
    assert "firebreak_intake_queue_depth" in c.get("/metrics", headers=AUTH).text
    assert "/api/tools/search_logs" in c.get("/openapi.json", headers=AUTH).json()["paths"]
    ctx.settings.public_metrics = True
    ctx.settings.public_docs = True
    for path in ("/metrics", "/docs", "/openapi.json"):
        assert c.get(path).status_code == 200, path


def test_docs_open_to_a_signed_in_browser(c: TestClient, ctx: ToolContext) -> None:
    from firebreak.server.users import add_user

    with ctx.db.session() as s:
        add_user(s, "alice", "correct horse battery", at=ctx.clock.now())
    csrf = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    c.post("/login", data={"name": "alice", "password": "correct horse battery", "csrf": csrf, "next": "/"})
    assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200


def test_a_real_server_answers_413_before_the_body_ends(ctx: ToolContext) -> None:
    """Over real HTTP: after 2 MiB of a never-ending chunked body the 413 is already there to read."""
    import socket
    import threading

    import uvicorn

    configure(ctx)
    ctx.settings.slack_signing_secret = SecretStr(SLACK_SECRET)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(32):  # 2 MiB of a body announced as going on for ever
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
