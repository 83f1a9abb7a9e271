"""Slack: the real slack_sdk WebClient against tests/fake_slack.py, and signed interaction payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.agent.actions import ProposedFix
from firebreak.context import ToolContext
from firebreak.server import slack
from firebreak.server.approvals import list_approvals, request_approval
from firebreak.server.slack_blocks import ACTION_APPROVE, ACTION_APPROVE_ALT, ACTION_REJECT
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.incidents import Incident
from tests.fake_slack import (
    FakeSlack,
    block_actions,
    interaction_body,
    open_incident,
    sample_report,
    seed_flags,
    sign,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0INCIDENTS"
APPROVER = "U0APPROVER"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def sctx(ctx: ToolContext, fake: FakeSlack) -> ToolContext:
    s = ctx.settings
    s.slack_bot_token = SecretStr(fake.token)
    s.slack_signing_secret = SecretStr(SECRET)
    s.slack_channel = CHANNEL
    s.slack_api_url = fake.api_url
    s.approvers = [APPROVER]
    seed_flags(ctx)
    return ctx


@pytest.fixture
def client(sctx: ToolContext) -> TestClient:
    app = FastAPI()
    app.state.ctx = sctx
    app.include_router(slack.router)
    return TestClient(app)


def _approval(ctx: ToolContext, alts: list[ProposedFix] | None = None) -> Approval:
    report = sample_report()
    inc = open_incident(ctx, report=report)
    assert report.proposed_fix is not None
    return request_approval(ctx, incident_id=inc, investigation_id="inv-1", tool_call_id="call-1",
                            fix=report.proposed_fix, alternatives=alts or [])


def _click(client: TestClient, ctx: ToolContext, fake: FakeSlack, approval: Approval, *, user: str,
           action_id: str = ACTION_APPROVE, value: str | None = None, secret: str = SECRET,
           age: int = 0) -> Any:
    assert approval.slack_ts is not None
    payload = block_actions(user=user, action_id=action_id, value=value or approval.id, channel=CHANNEL,
                            message_ts=approval.slack_ts, response_url=fake.response_url())
    body = interaction_body(payload)
    headers = sign(secret, body, int(ctx.clock.now().timestamp()) - age)
    return client.post("/slack/interactions", content=body, headers=headers)


def _text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks)


def test_request_posts_block_kit_message(sctx: ToolContext, fake: FakeSlack) -> None:
    restart = ProposedFix(action="restart", parameters={"service": "pricing"})
    a = _approval(sctx, alts=[restart])
    (post,) = fake.calls("chat.postMessage")
    assert post["channel"] == CHANNEL and "disable_flag(flag=checkout-new-pricing)" in post["text"]
    blocks = post["blocks"]
    assert blocks[0]["type"] == "header" and "Checkout slow and failing" in blocks[0]["text"]["text"]
    body = _text(blocks)
    for needle in ("major", "Part of the customers cannot pay", "Flag checkout-new-pricing saturates pricing",
                   "https://grafana.example/d/pricing?viewPanel=2", "https://sentry.example/issues/1/",
                   ACTION_APPROVE, ACTION_REJECT, ACTION_APPROVE_ALT, "restart(service=pricing)"):
        assert needle in body, needle
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert {b["value"] for b in buttons} == {a.id}
    with sctx.db.session() as s:
        stored = s.get(Approval, a.id)
        inc = s.get(Incident, a.incident_id)
        assert stored is not None and inc is not None
        assert (stored.slack_channel, stored.slack_ts) == (CHANNEL, inc.slack_ts) and stored.slack_ts
        assert inc.last_update_at == sctx.clock.now()


def test_slack_down_keeps_the_approval_for_web_and_cli(sctx: ToolContext, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", "channel_not_found")
    a = _approval(sctx)
    assert a.status == "pending" and a.slack_ts is None
    assert [v.id for v in list_approvals(sctx)] == [a.id]


@pytest.mark.parametrize("case", ["unsigned", "bad", "stale", "garbage_ts", "wrong_secret"])
def test_bad_signatures_are_401(case: str, client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx)
    payload = block_actions(user=APPROVER, action_id=ACTION_APPROVE, value=a.id, channel=CHANNEL,
                            message_ts=a.slack_ts or "", response_url=fake.response_url())
    body = interaction_body(payload)
    now = int(sctx.clock.now().timestamp())
    headers = {
        "unsigned": {"Content-Type": "application/x-www-form-urlencoded"},
        "bad": {**sign(SECRET, body, now), "X-Slack-Signature": "v0=" + "0" * 64},
        "stale": sign(SECRET, body, now - 301),
        "garbage_ts": {**sign(SECRET, body, now), "X-Slack-Request-Timestamp": "yesterday"},
        "wrong_secret": sign("not-the-secret", body, now),
    }[case]
    r = client.post("/slack/interactions", content=body, headers=headers)
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    with sctx.db.session() as s:
        assert s.get(Approval, a.id).status == "pending"  # type: ignore[union-attr]
    assert fake.calls("chat.update") == []


def test_within_window_is_accepted(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx)
    assert _click(client, sctx, fake, a, user=APPROVER, action_id=ACTION_REJECT, age=290).status_code == 200


def test_no_signing_secret_refuses_everything(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    sctx.settings.slack_signing_secret = None
    a = _approval(sctx)
    r = _click(client, sctx, fake, a, user=APPROVER)
    assert r.status_code == 401 and "FIREBREAK_SLACK_SIGNING_SECRET" in r.json()["detail"]


def test_bad_form_bodies_are_400(client: TestClient, sctx: ToolContext) -> None:
    now = int(sctx.clock.now().timestamp())
    for body, word in (("foo=bar", "payload: missing"), ("payload=%7Bnot-json", "payload: not JSON"),
                       ("payload=" + "%7B%22type%22%3A%22block_actions%22%7D", "payload.user")):
        r = client.post("/slack/interactions", content=body, headers=sign(SECRET, body, now))
        assert r.status_code == 400 and word in r.json()["detail"], (body, r.text)


def test_recorded_fixture_body_unknown_action(client: TestClient, sctx: ToolContext, fake: FakeSlack,
                                              fixtures_dir: Path) -> None:
    """Slack's own form body (action id "a"), signed: acknowledged, the clicker told, nothing done."""
    body = (fixtures_dir / "slack-block_actions-button.form-body.txt").read_text().strip()
    r = client.post("/slack/interactions", content=body,
                    headers=sign(SECRET, body, int(sctx.clock.now().timestamp())))
    assert r.status_code == 200
    (eph,) = fake.calls("chat.postEphemeral")
    assert eph["user"] == "W111" and eph["channel"] == "C111" and "Unknown action `a`" in eph["text"]


def test_non_approver_gets_ephemeral_refusal(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx)
    r = _click(client, sctx, fake, a, user="U111")
    assert r.status_code == 200 and r.content == b""
    (eph,) = fake.calls("chat.postEphemeral")
    assert eph["user"] == "U111" and "not allowed" in eph["text"]
    with sctx.db.session() as s:
        assert s.get(Approval, a.id).status == "pending"  # type: ignore[union-attr]
        ev = s.execute(select(AuditEvent)).scalars().one()
        assert ev.actor == "U111" and ev.detail["via"] == "slack"
    assert fake.calls("chat.update") == []


def test_approver_click_decides_once_and_updates_message(client: TestClient, sctx: ToolContext,
                                                         fake: FakeSlack) -> None:
    a = _approval(sctx)
    assert _click(client, sctx, fake, a, user=APPROVER).status_code == 200
    with sctx.db.session() as s:
        stored = s.get(Approval, a.id)
        assert stored is not None and stored.decided_by == APPROVER and stored.status == "executed"
    (upd,) = fake.calls("chat.update")
    assert upd["channel"] == CHANNEL and upd["ts"] == a.slack_ts
    body = _text(upd["blocks"])
    assert f"<@{APPROVER}>" in body and "Approved" in body and "2026-03-02 08:45 UTC" in body
    assert ACTION_APPROVE not in body  # the buttons are gone
    thread = [p for p in fake.calls("chat.postMessage") if p.get("thread_ts") == a.slack_ts]
    assert len(thread) == 1 and "Result" in thread[0]["text"]
    # A second click (or a retry) does nothing again and says so.
    assert _click(client, sctx, fake, a, user=APPROVER).status_code == 200
    assert len(fake.calls("chat.update")) == 1
    (eph,) = fake.calls("chat.postEphemeral")
    assert "already approved" in eph["text"]


def test_reject_click(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx)
    _click(client, sctx, fake, a, user=APPROVER, action_id=ACTION_REJECT)
    with sctx.db.session() as s:
        assert s.get(Approval, a.id).status == "rejected"  # type: ignore[union-attr]
    assert "Rejected" in _text(fake.calls("chat.update")[0]["blocks"])


def test_alternative_click(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx, alts=[ProposedFix(action="restart", parameters={"service": "pricing"})])
    (view,) = list_approvals(sctx)
    _click(client, sctx, fake, a, user=APPROVER, action_id=ACTION_APPROVE_ALT,
           value=f"{a.id}|{view.alternatives[0].id}")
    (view,) = list_approvals(sctx, status=None)
    assert view.action == "restart" and view.status == "manual"
    assert "restart(service=pricing)" in _text(fake.calls("chat.update")[0]["blocks"])


def test_response_url_used_without_bot_token(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    a = _approval(sctx)
    sctx.settings.slack_bot_token = None
    _click(client, sctx, fake, a, user="U111")
    (resp,) = fake.calls("response_url")
    assert resp["response_type"] == "ephemeral" and "not allowed" in resp["text"]


def test_other_interaction_types_are_acknowledged(client: TestClient, sctx: ToolContext, fake: FakeSlack) -> None:
    """Anything but `block_actions` is acknowledged and ignored, even when it carries an approve click."""
    a = _approval(sctx)
    assert a.slack_ts is not None
    click = block_actions(user=APPROVER, action_id=ACTION_APPROVE, value=a.id, channel=CHANNEL,
                          message_ts=a.slack_ts, response_url=fake.response_url())
    body = interaction_body({**click, "type": "view_submission"})
    r = client.post("/slack/interactions", content=body,
                    headers=sign(SECRET, body, int(sctx.clock.now().timestamp())))
    assert r.status_code == 200 and r.content == b""
    with sctx.db.session() as s:
        assert s.get(Approval, a.id).status == "pending"  # type: ignore[union-attr]
    assert fake.calls("chat.update") == [] and fake.calls("chat.postEphemeral") == []
    assert fake.calls("response_url") == []


def test_public_url_links_transcript_and_incident(sctx: ToolContext, fake: FakeSlack,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sctx.settings, "public_url", "https://firebreak.example/")
    a = _approval(sctx)
    body = _text(fake.calls("chat.postMessage")[0]["blocks"])
    assert "https://firebreak.example/transcripts/inv-1|transcript" in body
    assert f"https://firebreak.example/incidents/{a.incident_id}|incident page" in body


def test_without_public_url_the_transcript_command_is_shown(sctx: ToolContext, fake: FakeSlack) -> None:
    _approval(sctx)
    assert "firebreak transcripts show inv-1" in _text(fake.calls("chat.postMessage")[0]["blocks"])


def test_web_decision_updates_the_slack_message(sctx: ToolContext, fake: FakeSlack) -> None:
    from firebreak.server.approvals import decide

    sctx.settings.approvers = [APPROVER, "carol"]
    a = _approval(sctx)
    out = decide(sctx, a.id, user="carol", decision="approve", via="web")
    assert out.ok and out.execution is not None and out.execution.status == "executed"
    (upd,) = fake.calls("chat.update")
    shown = _text(upd["blocks"])
    assert "by carol via web" in shown and "flag checkout-new-pricing" in shown and ACTION_APPROVE not in shown
