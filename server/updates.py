"""Update reminders: an open incident gets an update at least every FIREBREAK_UPDATE_MINUTES.

When nothing was posted for that long (`Incident.last_update_at`, else its detection), a reminder goes
into the incident's Slack thread with an update drafted from the latest triage report through the
internal message template. `post_due_updates` is meant to be called periodically (the worker loop or
`firebreak serve`); it claims each reminder with a conditional UPDATE so two loops never post twice.

The same loop posts the mitigated notice: when every alert of an incident has resolved (intake marks it
mitigated), its Slack thread hears so and is asked whether to close it; a person closes it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from firebreak.agent.messages import MessageTemplateError, render_fields, report_fields, scenario_for
from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.server import slack_blocks as sb
from firebreak.server.approvals import ALTERNATIVE_STATUSES
from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.tools.executors import describe, rows_changed

log = logging.getLogger(__name__)
ACTIVE = ("open", "mitigated")


class DueReminder(BaseModel):
    """One incident whose update is overdue, with the drafted update."""

    incident_id: str
    title: str
    status: str
    channel: str | None
    thread_ts: str | None
    last_update_at: datetime | None
    since: datetime
    minutes_since: int
    draft: str


def _report(incident: Incident) -> TriageReport | None:
    if not incident.report:
        return None
    try:
        return TriageReport.model_validate(incident.report)
    except ValidationError:
        return None


def _approval_text(s: Session, incident_id: str) -> str:
    a = s.execute(
        select(Approval).where(Approval.incident_id == incident_id,
                               Approval.status.not_in(ALTERNATIVE_STATUSES))
        .order_by(Approval.requested_at.desc(), Approval.id).limit(1)
    ).scalar_one_or_none()
    if a is None:
        return "none requested"
    text = f"{describe(a.action, a.parameters or {})} is {a.status}"
    return text + (f" (by {a.decided_by})" if a.decided_by else "")


def draft_update(s: Session, incident: Incident, *, now: datetime, minutes: int) -> str:
    """An internal update from the incident and its report, via the scenario's template."""
    report = _report(incident)
    fields = report_fields(
        incident_id=incident.id, title=incident.title, severity=incident.severity, status=incident.status,
        services=list(incident.services or []), started_at=incident.started_at or incident.detected_at,
        user_impact=incident.user_impact, report=report, next_update=now + timedelta(minutes=minutes),
        approval=_approval_text(s, incident.id),
    )
    try:
        return render_fields("internal", scenario_for(report), fields)
    except MessageTemplateError as exc:
        log.warning("update draft: %s", exc)
        return f"[{incident.id}] {incident.title} ({incident.severity}, {incident.status})"


def due_reminders(ctx: ToolContext) -> list[DueReminder]:
    """Active incidents with no update for `settings.update_minutes` or more, oldest first."""
    minutes = max(1, ctx.settings.update_minutes)
    now = ctx.clock.now()
    limit = now - timedelta(minutes=minutes)
    due: list[DueReminder] = []
    with ctx.db.session() as s:
        rows = s.execute(select(Incident).where(Incident.status.in_(ACTIVE))).scalars().all()
        for inc in rows:
            since = inc.last_update_at or inc.detected_at or inc.created_at
            if since > limit:
                continue
            due.append(DueReminder(
                incident_id=inc.id, title=inc.title, status=inc.status, channel=inc.slack_channel,
                thread_ts=inc.slack_ts, last_update_at=inc.last_update_at, since=since,
                minutes_since=int((now - since).total_seconds() // 60),
                draft=draft_update(s, inc, now=now, minutes=minutes),
            ))
    return sorted(due, key=lambda d: d.since)


def post_due_updates(ctx: ToolContext) -> list[DueReminder]:
    """Post each due reminder in its incident's Slack thread; returns the ones posted.

    Incidents without a Slack thread (or with Slack off) stay due: the web page shows them.
    """
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return []
    post_mitigated_notices(ctx)
    posted: list[DueReminder] = []
    for r in due_reminders(ctx):
        if not r.thread_ts or not r.channel:
            continue
        now = ctx.clock.now()
        with ctx.db.session() as s:
            claim = update(Incident).where(Incident.id == r.incident_id)
            claim = claim.where(Incident.last_update_at.is_(None) if r.last_update_at is None
                                else Incident.last_update_at == r.last_update_at)
            if not rows_changed(s.execute(claim.values(last_update_at=now)
                             .execution_options(synchronize_session=False))):
                continue  # another loop posted it
        text, blocks = sb.reminder_message(r.incident_id, r.minutes_since, r.draft)
        if slack.post(ctx.settings, text=text, blocks=blocks, thread_ts=r.thread_ts, channel=r.channel) is None:
            with ctx.db.session() as s:  # give the claim back so the next loop tries again
                s.execute(update(Incident).where(Incident.id == r.incident_id, Incident.last_update_at == now)
                          .values(last_update_at=r.last_update_at)
                          .execution_options(synchronize_session=False))
            continue
        with ctx.db.session() as s:
            inc = s.get(Incident, r.incident_id)
            if inc is not None:
                incident_log.record(s, inc, at=now, actor="firebreak", kind="reminder",
                                    text=f"Update reminder posted in Slack after {r.minutes_since} minutes")
        posted.append(r)
    return posted


MITIGATED_NOTICE = "mitigated_notice"


def post_mitigated_notices(ctx: ToolContext) -> list[str]:
    """Tell each mitigated incident's Slack thread that every alert resolved and offer to close it; once per
    mitigation (a relapse and a new mitigation post again). Returns the incident ids posted."""
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return []
    posted: list[str] = []
    with ctx.db.session() as s:
        rows = s.execute(select(Incident.id).where(Incident.status == "mitigated", Incident.slack_ts.is_not(None)))
        candidates = list(rows.scalars())
    for incident_id in candidates:
        now = ctx.clock.now()
        with ctx.db.session() as s:  # claim: the notice entry is written before posting
            last = s.execute(
                select(TimelineEntry.kind).where(
                    TimelineEntry.incident_id == incident_id,
                    TimelineEntry.kind.in_((incident_log.ALERTS_RESOLVED, MITIGATED_NOTICE)),
                ).order_by(TimelineEntry.id.desc()).limit(1)
            ).scalar_one_or_none()
            inc = s.get(Incident, incident_id)
            if last != incident_log.ALERTS_RESOLVED or inc is None:
                continue
            alerts = s.scalar(select(func.count()).select_from(Alert).where(Alert.incident_id == incident_id)) or 0
            claim = incident_log.record(s, inc, at=now, actor="firebreak", kind=MITIGATED_NOTICE,
                                        text="Told the Slack thread every alert resolved; asked whether to close")
            s.flush()
            claim_id, title, channel, thread = claim.id, inc.title, inc.slack_channel, inc.slack_ts
            at = inc.mitigated_at or now
        text, blocks = sb.mitigated_message(incident_id, title, at, alerts)
        if slack.post(ctx.settings, text=text, blocks=blocks, thread_ts=thread, channel=channel) is None:
            with ctx.db.session() as s:  # give the claim back: the next loop tries again
                s.execute(delete(TimelineEntry).where(TimelineEntry.id == claim_id))
            continue
        posted.append(incident_id)
    return posted


def close_from_slack(ctx: ToolContext, user: str, incident_id: str) -> str:
    """The Close button of the mitigated notice: an approver closes the incident (status resolved)."""
    if not ctx.settings.is_approver(user):
        return (f"Only approvers can close {incident_id} from Slack; nothing was changed. "
                f"A person can run `firebreak incidents close {incident_id}`.")
    now = ctx.clock.now()
    with ctx.db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            return f"No incident {incident_id}: nothing was changed."
        if inc.status == "resolved":
            return f"{incident_id} is already closed."
        incident_log.set_status(s, inc, "resolved", at=now, actor=user)
        channel, thread = inc.slack_channel, inc.slack_ts
    from firebreak.server import slack

    slack.post(ctx.settings, text=f"{incident_id} closed by <@{user}> at {sb.when(now)}.", thread_ts=thread,
               channel=channel)
    return ""
