"""Update reminders: due after FIREBREAK_UPDATE_MINUTES without an update, posted once in the thread."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.server.approvals import request_approval
from firebreak.server.updates import due_reminders, post_due_updates
from firebreak.state.incidents import Incident, TimelineEntry
from tests.fake_slack import FakeSlack, open_incident, sample_report


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def sctx(ctx: ToolContext, fake: FakeSlack) -> ToolContext:
    ctx.settings.slack_bot_token = SecretStr(fake.token)
    ctx.settings.slack_channel = "C0INC"
    ctx.settings.slack_api_url = fake.api_url
    ctx.settings.update_minutes = 20
    return ctx


def test_due_after_update_minutes_with_drafted_update(ctx: ToolContext, clock: FixedClock) -> None:
    ctx.settings.update_minutes = 30
    inc = open_incident(ctx)
    assert due_reminders(ctx) == []
    clock.advance(timedelta(minutes=29))
    assert due_reminders(ctx) == []
    clock.advance(timedelta(minutes=1))
    (r,) = due_reminders(ctx)
    assert r.incident_id == inc and r.minutes_since == 30 and r.thread_ts is None
    # Drafted from the report through the internal template of its scenario (deployment_error).
    assert "Flag checkout-new-pricing saturates pricing" in r.draft
    assert "Likely cause (a feature flag change)" in r.draft and "Part of the customers cannot pay" in r.draft
    assert "Next update by 2026-03-02 09:45 UTC" in r.draft
    assert post_due_updates(ctx) == []  # no Slack: it stays due, for the web page


def test_resolved_incidents_are_not_due(ctx: ToolContext, clock: FixedClock) -> None:
    inc = open_incident(ctx)
    with ctx.db.session() as s:
        incident_log.set_status(s, incident_log.get_incident(s, inc), "resolved", at=clock.now(), actor="t")
    clock.advance(timedelta(hours=2))
    assert due_reminders(ctx) == []


def test_reminder_posted_once_in_thread(sctx: ToolContext, clock: FixedClock, fake: FakeSlack) -> None:
    report = sample_report()
    inc = open_incident(sctx, report=report)
    assert report.proposed_fix is not None
    a = request_approval(sctx, incident_id=inc, investigation_id=None, tool_call_id="t1",
                         fix=report.proposed_fix, alternatives=[])
    clock.advance(timedelta(minutes=19))
    assert post_due_updates(sctx) == []
    clock.advance(timedelta(minutes=1))
    (posted,) = post_due_updates(sctx)
    assert posted.incident_id == inc
    assert post_due_updates(sctx) == []  # claimed: not posted twice
    reminders = [p for p in fake.calls("chat.postMessage") if p.get("thread_ts")]
    assert len(reminders) == 1 and reminders[0]["thread_ts"] == a.slack_ts
    assert "No update on" in reminders[0]["text"] and "disable_flag(flag=checkout-new-pricing) is pending" \
        in reminders[0]["text"]
    with sctx.db.session() as s:
        assert s.get(Incident, inc).last_update_at == clock.now()  # type: ignore[union-attr]
        assert s.execute(select(TimelineEntry).where(TimelineEntry.kind == "reminder")).first() is not None
    clock.advance(timedelta(minutes=20))
    assert len(post_due_updates(sctx)) == 1


def test_failed_post_leaves_it_due(sctx: ToolContext, clock: FixedClock, fake: FakeSlack) -> None:
    report = sample_report()
    inc = open_incident(sctx, report=report)
    assert report.proposed_fix is not None
    request_approval(sctx, incident_id=inc, investigation_id=None, tool_call_id="t1",
                     fix=report.proposed_fix, alternatives=[])
    clock.advance(timedelta(minutes=25))
    fake.fail_next("chat.postMessage", "ratelimited")
    assert post_due_updates(sctx) == []
    assert [r.incident_id for r in due_reminders(sctx)] == [inc]
    assert len(post_due_updates(sctx)) == 1
