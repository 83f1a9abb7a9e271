"""The whole path: change webhook, Grafana and Sentry alerts about checkout, the agent's approval request
in the channel, a refused click from a non-approver, the approver's click, one execution, the updated message.

Everything real but the vendors: intake, offline investigator, deferred run and resume, slack_sdk's
WebClient against tests/fake_slack.py, signed Slack interactions, and a command executor.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.server.slack_blocks import ACTION_APPROVE
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.incidents import Countermeasure, Incident
from firebreak.state.investigations import Investigation
from tests.fake_slack import FakeSlack, block_actions, interaction_body, sign

pytest.importorskip("firebreak.server.webhooks")
pytest.importorskip("firebreak.agent.investigator")

from firebreak.agent.worker import run_due  # noqa: E402
from tests.test_intake_common import (  # noqa: E402
    API_TOKEN,
    WEBHOOK_TOKEN,
    client,
    configure,
    grafana_headers,
    sentry_headers,
)

SLACK_SECRET = "slack-signing-secret"
CHANNEL = "C0INCIDENTS"
APPROVER = "U0ONCALL"
START = datetime(2026, 5, 14, 13, 20, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


def test_alerts_to_one_approved_execution(ctx: ToolContext, clock: FixedClock, fake: FakeSlack,
                                          fixtures_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clock.set(START)
    configure(ctx)
    s = ctx.settings
    s.service_map = {"front-end": "checkout"}  # the Sentry fixture's project
    s.slack_bot_token = SecretStr(fake.token)
    s.slack_signing_secret = SecretStr(SLACK_SECRET)
    s.slack_channel = CHANNEL
    s.slack_api_url = fake.api_url
    s.approvers = [APPROVER]
    runs = tmp_path / "rollbacks.jsonl"
    script = tmp_path / "rollback.py"
    script.write_text(f"import sys\nopen({str(runs)!r}, 'a').write(sys.stdin.read() + '\\n')\nprint('argo synced')\n")
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", f"{sys.executable} {script}")
    c = client(ctx)

    # 1. The deploy, then Grafana and Sentry alerts about the same service.
    r = c.post("/webhooks/changes", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, json={
        "kind": "deploy", "service": "checkout", "version": "8.3.0", "previous_version": "8.2.0",
        "at": "2026-05-14T13:12:00Z", "author": "ci"})
    assert r.status_code == 202, r.text
    grafana = json.loads((fixtures_dir / "grafana-webhook-firing.docs.json").read_text())
    grafana["alerts"] = grafana["alerts"][:1]
    grafana["alerts"][0]["labels"]["service"] = "checkout"
    grafana["alerts"][0]["startsAt"] = "2026-05-14T13:14:00Z"
    body = json.dumps(grafana).encode()
    r = c.post("/webhooks/grafana", content=body, headers=grafana_headers(body, int(clock.now().timestamp())))
    assert r.status_code == 202, r.text
    (incident_id,) = r.json()["incidents_opened"]
    sentry = json.loads((fixtures_dir / "sentry-event-alert-triggered.docs.json").read_text())
    sentry["data"]["event"]["datetime"] = "2026-05-14T13:15:00Z"
    body = json.dumps(sentry).encode()
    r = c.post("/webhooks/sentry", content=body, headers=sentry_headers(body, "event_alert"))
    assert r.status_code == 202 and r.json()["incidents_updated"] == [incident_id], r.text

    # 2. The investigation runs and asks for approval in the channel.
    clock.advance(timedelta(minutes=2))
    assert run_due(ctx)
    with ctx.db.session() as ss:
        approval = ss.execute(select(Approval).where(Approval.incident_id == incident_id,
                                                     Approval.status == "pending")).scalar_one()
    assert approval.action == "rollback" and approval.parameters == {"service": "checkout", "to": "8.2.0"}
    (request,) = [p for p in fake.calls("chat.postMessage") if p["channel"] == CHANNEL and not p.get("thread_ts")]
    assert approval.slack_ts and approval.id in json.dumps(request["blocks"])
    assert "rollback(service=checkout, to=8.2.0)" in request["text"]

    def click(user: str) -> int:
        payload = block_actions(user=user, action_id=ACTION_APPROVE, value=approval.id, channel=CHANNEL,
                                message_ts=approval.slack_ts or "", response_url=fake.response_url())
        form = interaction_body(payload)
        return c.post("/slack/interactions", content=form,
                      headers=sign(SLACK_SECRET, form, int(clock.now().timestamp()))).status_code

    # 3. A non-approver's click: refused, ephemerally, logged; nothing runs.
    clock.advance(timedelta(minutes=1))
    assert click("U0INTRUDER") == 200
    (refusal,) = fake.calls("chat.postEphemeral")
    assert refusal["user"] == "U0INTRUDER" and "not allowed" in refusal["text"]
    assert not runs.exists()

    # 4. The approver's click (twice): the deferred run resumes and the rollback runs once.
    clock.advance(timedelta(minutes=1))
    assert click(APPROVER) == 200
    assert click(APPROVER) == 200
    lines = runs.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"incident": incident_id, "approval_id": approval.id, "action": "rollback",
                                    "service": "checkout", "to": "8.2.0", "approved_by": APPROVER,
                                    "idempotency_key": approval.id}
    with ctx.db.session() as ss:
        done = ss.get(Approval, approval.id)
        assert done is not None and done.status == "executed" and done.decided_by == APPROVER
        assert done.executed_at == clock.now() and "argo synced" in (done.result or "")
        inc = ss.get(Incident, incident_id)
        assert inc is not None and inc.status == "mitigated" and inc.rollback
        assert ss.execute(select(Countermeasure).where(Countermeasure.approval_id == approval.id)).scalar_one()
        assert ss.execute(select(AuditEvent).where(AuditEvent.actor == "U0INTRUDER")).scalar_one()
        inv = ss.get(Investigation, approval.investigation_id)
        assert inv is not None and inv.status == "done"

    # 5. The original message shows who decided, when, and the result; the outcome is in the thread.
    (update,) = fake.calls("chat.update")
    assert update["ts"] == approval.slack_ts
    shown = json.dumps(update["blocks"])
    assert f"<@{APPROVER}>" in shown and "2026-05-14 13:24 UTC" in shown and "executed" in shown
    assert ACTION_APPROVE not in shown
    thread = [p for p in fake.calls("chat.postMessage") if p.get("thread_ts") == approval.slack_ts]
    assert len(thread) == 1 and "argo synced" in thread[0]["text"]
    second = fake.calls("chat.postEphemeral")[1]
    assert second["user"] == APPROVER and "already approved" in second["text"]

    # 6. The incidents API shows the approval.
    r = c.get(f"/api/incidents/{incident_id}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    if r.status_code != 404:
        assert r.status_code == 200, r.text
        (shown_approval,) = [a for a in r.json()["approvals"] if a.get("status") == "executed"]
        assert shown_approval["decided_by"] == APPROVER and shown_approval["action"] == "rollback"
