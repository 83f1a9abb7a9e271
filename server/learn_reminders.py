"""Reminders for the "learn" step: post-mortems due, and action items past their due date.

Called periodically by the worker (like update reminders). Each reminder is claimed in the database
before it is posted, so several replicas never post it twice; without Slack nothing is posted and the
CLI (`firebreak postmortem due`, `incidents remediation list --overdue`) and the indicators page show it.
"""

from __future__ import annotations

import logging
import re

from firebreak.context import ToolContext
from firebreak.memory.postmortem import service
from firebreak.state.incidents import Incident

log = logging.getLogger(__name__)
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")


def _mention(owner: str) -> str:
    return f"<@{owner}>" if SLACK_ID.match(owner) else owner


def post_postmortem_reminders(ctx: ToolContext) -> list[str]:
    """Post "post-mortem due" in each due incident's thread; returns the incident ids posted."""
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return []
    now = ctx.clock.now()
    posted: list[str] = []
    with ctx.db.session() as s:
        due = [(inc.id, inc.title, inc.slack_channel, inc.slack_ts)
               for inc, _ in service.due(s, now=now, delay_hours=ctx.settings.postmortem_delay_hours)]
    for incident_id, title, channel, ts in due:
        if not ts:
            continue
        with ctx.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None or not service.claim_reminder(s, inc, now=now):
                continue
        text = (f"Post-mortem due for {incident_id} ({title}): a draft from the incident log is ready. "
                f"Review the 5 Whys and action items, then `firebreak postmortem publish {incident_id}`.")
        if slack.post(ctx.settings, text=text, thread_ts=ts, channel=channel) is None:
            with ctx.db.session() as s:
                service.give_back_reminder(s, incident_id)
            continue
        posted.append(incident_id)
    return posted


def post_action_item_reminders(ctx: ToolContext) -> list[int]:
    """Remind the owner of each overdue action item in its incident's thread, at most weekly."""
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return []
    now = ctx.clock.now()
    posted: list[int] = []
    with ctx.db.session() as s:
        for rem in service.overdue_action_items(s, today=now.date()):
            inc = rem.incident
            if not inc.slack_ts or not service.claim_action_item_reminder(s, rem, now=now):
                continue
            text = (f"{_mention(rem.owner)}: action item #{rem.id} of {inc.id} was due {rem.due_date}: {rem.what}. "
                    f"Done? `firebreak incidents remediation done {rem.id} --verification ...`")
            if slack.post(ctx.settings, text=text, thread_ts=inc.slack_ts, channel=inc.slack_channel) is None:
                log.warning("action item reminder for #%s not posted (Slack refused)", rem.id)
                continue
            posted.append(rem.id)
    return posted


def post_learn_reminders(ctx: ToolContext) -> None:
    """The periodic entry point: both kinds of reminder."""
    post_postmortem_reminders(ctx)
    post_action_item_reminders(ctx)
