"""After a crash mid-action, the Slack thread says "check by hand" (through the server's notifier)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from firebreak.context import ToolContext
from firebreak.server.approvals import install, request_approval
from firebreak.state.approvals import Approval
from firebreak.statuses import ApprovalStatus
from firebreak.workflows.executor import execute_approved
from firebreak.workflows.notify import get_people, set_people
from tests.fake_slack import FakeSlack, open_incident, sample_report, seed_flags


@pytest.fixture
def sctx(ctx: ToolContext) -> Iterator[tuple[ToolContext, FakeSlack]]:
    with FakeSlack() as fake:
        s = ctx.settings
        s.slack_bot_token = SecretStr(fake.token)
        s.slack_signing_secret = SecretStr("8f742231b10e8888abcd99yyyzzz85a5")
        s.slack_channel = "C0INCIDENTS"
        s.slack_api_url = fake.api_url
        s.approvers = ["U0APPROVER"]
        seed_flags(ctx)
        before = get_people()
        install()
        try:
            yield ctx, fake
        finally:
            set_people(before)


def test_outcome_unknown_is_posted_in_the_thread(sctx: tuple[ToolContext, FakeSlack]) -> None:
    ctx, fake = sctx
    report = sample_report()
    inc = open_incident(ctx, report=report)
    assert report.proposed_fix is not None
    approval = request_approval(ctx, incident_id=inc, investigation_id=None, tool_call_id="c1",
                                fix=report.proposed_fix)
    assert approval.slack_ts  # the request was posted
    with ctx.db.session() as s:
        s.execute(update(Approval).where(Approval.id == approval.id).values(
            status=ApprovalStatus.EXECUTING, decision="approve", decided_by="U0APPROVER",
            claimed_by="gone/000000000000", claimed_at=ctx.clock.now()))
    assert execute_approved(ctx, approval.id, takeover=True).status == ApprovalStatus.OUTCOME_UNKNOWN
    posts = [p for p in fake.calls("chat.postMessage") if "check by hand" in str(p.get("text", "")).lower()]
    assert len(posts) == 1 and approval.id in posts[0]["text"] and posts[0].get("thread_ts")
