"""A local fake of Slack's Web API (and of response_url), for the real slack_sdk WebClient.

It speaks the real protocol: `POST /api/<method>` with a bearer token and a JSON or form body, HTTP 200
with `{"ok": true, ...}` or `{"ok": false, "error": "..."}`; answers are built from the recorded examples
in tests/fixtures/vendor/slack-web-api-examples.slack-api-specs.json. Every request is recorded for tests.
Also used to sign interaction payloads the way Slack does (`signed_interaction`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vendor"
EXAMPLES = json.loads((FIXTURES / "slack-web-api-examples.slack-api-specs.json").read_text())


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeSlack:
    """Start with `with FakeSlack() as slack:`; point FIREBREAK_SLACK_API_URL at `slack.api_url`."""

    token: str = "xoxb-test-token"
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # method -> error returned once
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                status, answer = fake._handle(self.path, dict(self.headers.items()), raw)
                data = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
                self.send_response(status)
                ctype = "application/json; charset=utf-8" if isinstance(answer, dict) else "text/plain"
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base}/response/{name}"

    # ---------------------------------------------------------------- assertions
    def calls(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.method == method]

    def fail_next(self, method: str, error: str) -> None:
        self.failures[method] = error

    # ---------------------------------------------------------------- protocol
    def _handle(self, path: str, headers: dict[str, str], raw: str) -> tuple[int, dict[str, Any] | str]:
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if "json" in ctype:
            body = json.loads(raw or "{}")
        else:
            body = {k: v[0] for k, v in parse_qs(raw).items()}
            for k in ("blocks", "attachments"):
                if isinstance(body.get(k), str):
                    body[k] = json.loads(body[k])
        if path.startswith("/response/"):
            with self._lock:
                self.requests.append(Recorded("response_url", path, headers, body))
            return 200, "ok"
        method = path.removeprefix("/api/").split("?")[0]
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            if auth != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth" if auth else "not_authed"}
            if method in self.failures:
                return 200, {"ok": False, "error": self.failures.pop(method)}
            handler = {
                "chat.postMessage": self._post_message,
                "chat.update": self._update,
                "chat.postEphemeral": self._post_ephemeral,
            }.get(method)
            if handler is None:
                return 404, {"ok": False, "error": "unknown_method"}
            return 200, handler(body)

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._new_ts()
        answer = copy.deepcopy(EXAMPLES["chat.postMessage"]["200"])
        message = answer["message"]
        message.pop("attachments", None)
        message.update(text=body.get("text", ""), ts=ts)
        if body.get("blocks"):
            message["blocks"] = body["blocks"]
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        answer.update(channel=channel, ts=ts)
        self.messages[(channel, ts)] = message
        return answer

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body.get("channel", ""), body.get("ts", ""))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key].update(text=body.get("text", ""), blocks=body.get("blocks", []))
        answer = copy.deepcopy(EXAMPLES["chat.update"]["200"])
        answer.update(channel=key[0], ts=key[1], text=body.get("text", ""))
        answer["message"]["text"] = body.get("text", "")
        return answer

    def _post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("channel") or not body.get("user"):
            return {"ok": False, "error": "channel_not_found" if not body.get("channel") else "user_not_found"}
        return {"ok": True, "message_ts": self._new_ts()}


def sign(secret: str, body: str, timestamp: int) -> dict[str, str]:
    """Headers Slack sends with an interaction: v0 HMAC-SHA256 over `v0:{ts}:{body}`."""
    base = f"v0:{timestamp}:{body}".encode()
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def interaction_body(payload: dict[str, Any]) -> str:
    """The form body Slack posts: `payload=<url-encoded JSON>` (as in slack-block_actions-button.form-body.txt)."""
    return "payload=" + quote(json.dumps(payload), safe="")


def block_actions(
    *, user: str, action_id: str, value: str, channel: str, message_ts: str, response_url: str,
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload from the recorded Bolt fixture, with our button, user and message."""
    payload = json.loads(
        (FIXTURES / "slack-block_actions-button-with-message.bolt-test_block_actions_respond.json").read_text()
    )
    payload["user"] = {"id": user}
    payload["container"].update(channel_id=channel, message_ts=message_ts)
    payload["channel"] = {"id": channel}
    payload["message"]["ts"] = message_ts
    if thread_ts:
        payload["message"]["thread_ts"] = thread_ts
    payload["response_url"] = response_url
    payload["actions"][0].update(action_id=action_id, value=value)
    return payload


# ------------------------------------------------------------------------------------ test world


def sample_report() -> Any:
    """A triage report like the investigator's for the checkout-flag-timeouts drill."""
    from firebreak.agent.actions import ProposedFix
    from firebreak.agent.report import Evidence, Hypothesis, Suspect, TriageReport

    flag_fix = ProposedFix(action="disable_flag", parameters={"flag": "checkout-new-pricing"},
                           rationale="the flag was turned on 2 minutes before the errors",
                           risk="customers see the old prices", undo="enable the flag again")
    rollback_fix = ProposedFix(action="rollback", parameters={"service": "search", "to": "5.0.3"},
                               rationale="search 5.0.4 was deployed 4 minutes before")
    return TriageReport(
        summary="Checkout times out since the checkout-new-pricing flag was enabled.",
        severity="major", user_impact="Part of the customers cannot pay",
        hypotheses=[
            Hypothesis(title="Flag checkout-new-pricing saturates pricing",
                       suspect=Suspect(kind="flag", service="checkout", ref="checkout-new-pricing"),
                       confidence=0.8, fix=flag_fix, evidence=[
                           Evidence(tool="metric_anomalies", finding="pricing thread pool at 100% from 13:13",
                                    link="https://grafana.example/d/pricing?viewPanel=2"),
                           Evidence(tool="list_sentry_issues", finding="TimeoutError in checkout",
                                    ref="CHECKOUT-1", link="https://sentry.example/issues/1/"),
                       ]),
            Hypothesis(title="Search 5.0.4 deploy", confidence=0.1, fix=rollback_fix,
                       suspect=Suspect(kind="deploy", service="search", ref="5.0.4")),
        ],
        proposed_fix=flag_fix, customer_template="deployment_error",
    )


def open_incident(ctx: Any, *, title: str = "Checkout slow and failing", report: Any = None) -> str:
    """An open incident with a stored report; returns its id."""
    from firebreak.memory import incident_log

    rep = report if report is not None else sample_report()
    now = ctx.clock.now()
    with ctx.db.session() as s:
        inc = incident_log.open_incident(s, title=title, services=["checkout"], severity="major", at=now,
                                         actor="test", started_at=now, user_impact=rep.user_impact)
        inc.report = rep.model_dump(mode="json")
        return str(inc.id)


def seed_flags(ctx: Any) -> None:
    """The drill's flag file: checkout-new-pricing on for everybody."""
    from firebreak.tools.flag_store import get_flag_store

    store = get_flag_store(ctx)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps({"flags": {"checkout-new-pricing": {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}}}))
