"""Learn-step reminders in Slack: a post-mortem due the next working morning, overdue action items weekly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.server.learn_reminders import post_action_item_reminders, post_postmortem_reminders
from tests.fake_slack import FakeSlack

RESOLVED = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # a Friday evening


def _resolved_incident(ctx: ToolContext, severity: str) -> str:
    with ctx.db.session() as s:
        inc = incident_log.open_incident(s, title="Checkout errors", services=["checkout"], severity=severity,
                                         at=RESOLVED - timedelta(hours=1), actor="intake",
                                         started_at=RESOLVED - timedelta(hours=1, minutes=5))
        inc.slack_channel, inc.slack_ts = "C0INC", "1700000000.000100"
        incident_log.set_status(s, inc, "resolved", at=RESOLVED, actor="alice")
        return inc.id


def test_postmortem_reminder_waits_for_monday_morning_and_posts_once(
    slack_ctx: ToolContext, fake_slack: FakeSlack
) -> None:
    major = _resolved_incident(slack_ctx, "major")
    _resolved_incident(slack_ctx, "minor")  # minor incidents are not chased
    slack_ctx.clock = FixedClock(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))  # type: ignore[misc]  # Saturday
    assert post_postmortem_reminders(slack_ctx) == []
    slack_ctx.clock = FixedClock(datetime(2026, 3, 9, 9, 1, tzinfo=UTC))  # type: ignore[misc]  # Monday 09:01
    assert post_postmortem_reminders(slack_ctx) == [major]
    assert post_postmortem_reminders(slack_ctx) == []
    posts = fake_slack.calls("chat.postMessage")
    assert len(posts) == 1 and major in posts[0]["text"] and posts[0]["thread_ts"] == "1700000000.000100"


def test_overdue_action_item_reminds_its_owner_weekly(slack_ctx: ToolContext, fake_slack: FakeSlack) -> None:
    inc_id = _resolved_incident(slack_ctx, "major")
    with slack_ctx.db.session() as s:
        inc = incident_log.get_incident(s, inc_id)
        incident_log.add_remediation(s, inc, what="Alert on pool saturation", owner="U0OWNER",
                                     due=date(2026, 3, 10), at=RESOLVED, actor="alice")
    slack_ctx.clock = FixedClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))  # type: ignore[misc]  # due today
    assert post_action_item_reminders(slack_ctx) == []
    slack_ctx.clock = FixedClock(datetime(2026, 3, 11, 12, 0, tzinfo=UTC))  # type: ignore[misc]
    (rid,) = post_action_item_reminders(slack_ctx)
    assert "<@U0OWNER>" in fake_slack.calls("chat.postMessage")[-1]["text"]
    slack_ctx.clock = FixedClock(datetime(2026, 3, 14, 12, 0, tzinfo=UTC))  # type: ignore[misc]
    assert post_action_item_reminders(slack_ctx) == []
    slack_ctx.clock = FixedClock(datetime(2026, 3, 19, 12, 0, tzinfo=UTC))  # type: ignore[misc]
    assert post_action_item_reminders(slack_ctx) == [rid]


def test_without_slack_nothing_is_posted_and_nothing_claimed(ctx: ToolContext) -> None:
    from firebreak.memory.postmortem import service

    inc_id = _resolved_incident(ctx, "critical")
    ctx.clock = FixedClock(datetime(2026, 3, 9, 10, 0, tzinfo=UTC))  # type: ignore[misc]
    assert post_postmortem_reminders(ctx) == []
    with ctx.db.session() as s:
        assert [i.id for i, _ in service.due(s, now=ctx.clock.now())] == [inc_id]


def test_weekly_indicators_count_postmortems_due_until_published(ctx: ToolContext) -> None:
    from firebreak.memory.postmortem import service
    from firebreak.memory.stats import weekly_stats

    inc_id = _resolved_incident(ctx, "major")  # Friday 6 March, due Monday 9 March 09:00
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    with ctx.db.session() as s:
        weeks = {w.week_start: w.postmortems_due for w in weekly_stats(s, weeks=3, now=now)}
    assert weeks == {date(2026, 3, 2): 0, date(2026, 3, 9): 1, date(2026, 3, 16): 1}
    with ctx.db.session() as s:
        pm = service.draft_or_load(s, inc_id, now=datetime(2026, 3, 17, 10, 0, tzinfo=UTC), actor="alice")
        pm.root_cause = "The connection pool was shrunk by a config change"
        service.update(s, pm, now=datetime(2026, 3, 17, 10, 0, tzinfo=UTC), actor="alice")
        service.publish(s, inc_id, now=datetime(2026, 3, 17, 11, 0, tzinfo=UTC), actor="alice")
    with ctx.db.session() as s:
        weeks = {w.week_start: w.postmortems_due for w in weekly_stats(s, weeks=3, now=now)}
    assert weeks == {date(2026, 3, 2): 0, date(2026, 3, 9): 1, date(2026, 3, 16): 0}
