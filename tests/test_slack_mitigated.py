"""The mitigated notice: every alert of an incident resolved, its Slack thread hears so once and is
asked whether to close; an approver's click closes it, anyone else's changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory.incident_log import get_incident
from firebreak.server.intake.service import ingest_alerts
from firebreak.server.slack import BlockActions, handle_block_actions
from firebreak.server.slack_blocks import ACTION_CLOSE
from firebreak.server.updates import post_due_updates, post_mitigated_notices
from firebreak.state.incidents import Incident
from tests.fake_slack import FakeSlack, block_actions
from tests.test_intake_common import alert


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def sctx(ctx: ToolContext, fake: FakeSlack) -> ToolContext:
    ctx.settings.slack_bot_token = SecretStr(fake.token)
    ctx.settings.slack_channel = "C0INC"
    ctx.settings.slack_api_url = fake.api_url
    ctx.settings.approvers = ["U0BOSS"]
    return ctx


def _mitigated_incident(ctx: ToolContext, clock: FixedClock) -> str:
    now = clock.now()
    (inc_id,) = ingest_alerts(ctx, [alert("api", "a", now, title="HighErrorRate")]).incidents_opened
    with ctx.db.session() as s:
        inc = s.get(Incident, inc_id)
        assert inc is not None
        inc.slack_channel, inc.slack_ts = "C0INC", "1700000000.000100"
    clock.advance(timedelta(minutes=7))
    assert ingest_alerts(ctx, [alert("api", "a", now, status="resolved")]).incidents_mitigated == [inc_id]
    return inc_id


def _click(ctx: ToolContext, fake: FakeSlack, user: str, incident_id: str) -> None:
    payload = block_actions(user=user, action_id=ACTION_CLOSE, value=incident_id, channel="C0INC",
                            message_ts="1700000000.000200", response_url=fake.response_url(),
                            thread_ts="1700000000.000100")
    handle_block_actions(ctx, BlockActions.model_validate(payload))


def test_notice_posted_once_in_the_thread(sctx: ToolContext, clock: FixedClock, fake: FakeSlack) -> None:
    inc_id = _mitigated_incident(sctx, clock)
    assert post_mitigated_notices(sctx) == [inc_id]
    assert post_mitigated_notices(sctx) == [] and post_due_updates(sctx) == []  # once per mitigation
    (msg,) = fake.calls("chat.postMessage")
    assert msg["thread_ts"] == "1700000000.000100" and "mitigated" in msg["text"]
    assert ACTION_CLOSE in str(msg["blocks"])
    # A relapse and a new mitigation: a new notice.
    clock.advance(timedelta(minutes=2))
    ingest_alerts(sctx, [alert("api", "a", clock.now())])
    ingest_alerts(sctx, [alert("api", "a", clock.now(), status="resolved")])
    assert post_mitigated_notices(sctx) == [inc_id]


def test_failed_post_is_tried_again(sctx: ToolContext, clock: FixedClock, fake: FakeSlack) -> None:
    inc_id = _mitigated_incident(sctx, clock)
    fake.fail_next("chat.postMessage", "ratelimited")
    assert post_mitigated_notices(sctx) == []
    assert post_mitigated_notices(sctx) == [inc_id]


def test_only_an_approver_closes(sctx: ToolContext, clock: FixedClock, fake: FakeSlack) -> None:
    inc_id = _mitigated_incident(sctx, clock)
    _click(sctx, fake, "U0INTERN", inc_id)
    with sctx.db.session() as s:
        assert get_incident(s, inc_id).status == "mitigated"
    told = fake.calls("chat.postEphemeral")
    assert told and "Only approvers can close" in told[-1]["text"]
    _click(sctx, fake, "U0BOSS", inc_id)
    with sctx.db.session() as s:
        inc = get_incident(s, inc_id)
        assert inc.status == "resolved" and inc.resolved_at == clock.now()
        assert inc.timeline[-1].actor == "U0BOSS"
    assert any("closed by <@U0BOSS>" in m["text"] for m in fake.calls("chat.postMessage"))
