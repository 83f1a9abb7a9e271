"""Approvals as the web page, Slack and the CLI see them; Slack is how people are told.

The approval service itself (request, decide, exactly-once execution, outcome_unknown) lives in
`workflows.approvals` and `workflows.executor`; this module is the server's side of it: the views
(`ApprovalView`, `approvals_for_incident`, `list_approvals`), the Slack messages (`build_message`,
`SlackPeople`, which implements `workflows.notify.People`), and `decide`/`resolve`, the entry points
the Slack handler, the web page and `firebreak approvals` call.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.server import slack_blocks as sb
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from firebreak.statuses import ALTERNATIVE_STATUSES
from firebreak.tools.executors import describe
from firebreak.workflows import approvals as service
from firebreak.workflows.approvals import ApprovalError, DecisionOutcome
from firebreak.workflows.executor import ResolveOutcome, resolve_unknown
from firebreak.workflows.notify import set_people

log = logging.getLogger(__name__)

__all__ = [
    "ALTERNATIVE_STATUSES", "ApprovalError", "ApprovalRecord", "ApprovalView", "DecisionOutcome", "SlackPeople",
    "approvals_for_incident", "build_message", "decide", "get_approval", "install", "list_approvals",
    "request_approval", "resolve",
]


class AlternativeView(BaseModel):
    id: str
    action: str
    parameters: dict[str, Any]
    rationale: str = ""
    status: str


class ApprovalRecord(BaseModel):
    """The fields of an approval row that every view of it shows (this module's and /api/incidents')."""

    id: str
    action: str
    parameters: dict[str, Any]
    rationale: str
    status: str
    requested_at: datetime
    decided_by: str | None
    decision: str | None
    decided_at: datetime | None
    executed_at: datetime | None
    result: str | None


class ApprovalView(ApprovalRecord):
    """One approval as the API, the web page and `firebreak approvals list --json` show it."""

    incident_id: str
    investigation_id: str | None
    describe: str
    slack_channel: str | None = None
    slack_ts: str | None = None
    alternatives: list[AlternativeView] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------- views


def view(s: Session, approval: Approval) -> ApprovalView:
    alts = [] if approval.status in ALTERNATIVE_STATUSES else service.alternatives_of(s, approval)
    return ApprovalView(
        id=approval.id, incident_id=approval.incident_id, investigation_id=approval.investigation_id,
        action=approval.action, parameters=dict(approval.parameters or {}),
        describe=describe(approval.action, approval.parameters or {}), rationale=approval.rationale,
        status=approval.status, requested_at=approval.requested_at, decided_by=approval.decided_by,
        decision=approval.decision, decided_at=approval.decided_at, executed_at=approval.executed_at,
        result=approval.result, slack_channel=approval.slack_channel, slack_ts=approval.slack_ts,
        alternatives=[AlternativeView(id=a.id, action=a.action, parameters=dict(a.parameters or {}),
                                      rationale=a.rationale, status=a.status) for a in alts],
    )


def approvals_for_incident(s: Session, incident_id: str) -> list[dict[str, Any]]:
    """JSON-ready approvals of one incident (for `GET /api/incidents/{id}` under `approvals`)."""
    rows = s.execute(
        select(Approval).where(Approval.incident_id == incident_id, Approval.status.not_in(ALTERNATIVE_STATUSES))
        .order_by(Approval.requested_at, Approval.id)
    ).scalars().all()
    return [view(s, a).model_dump(mode="json") for a in rows]


def list_approvals(
    ctx: ToolContext, *, status: str | None = "pending", incident_id: str | None = None, limit: int = 100
) -> list[ApprovalView]:
    """Approvals newest first; `status=None` lists all (alternatives are shown under their request)."""
    with ctx.db.session() as s:
        q = select(Approval).where(Approval.status.not_in(ALTERNATIVE_STATUSES))
        if status:
            q = q.where(Approval.status == status)
        if incident_id:
            q = q.where(Approval.incident_id == incident_id)
        rows = s.execute(q.order_by(Approval.requested_at.desc(), Approval.id).limit(limit)).scalars().all()
        return [view(s, a) for a in rows]


def get_approval(ctx: ToolContext, approval_id: str) -> ApprovalView | None:
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        return view(s, a) if a is not None else None


# -------------------------------------------------------------------------------------------- Slack


def _split_rationale(text: str) -> tuple[str, str, str]:
    why, risk, undo = [], "", ""
    for line in (text or "").splitlines():
        if line.startswith("Risk: "):
            risk = line.removeprefix("Risk: ")
        elif line.startswith("Undo: "):
            undo = line.removeprefix("Undo: ")
        else:
            why.append(line)
    return "\n".join(why), risk, undo


def _report_for(s: Session, approval: Approval, incident: Incident) -> TriageReport | None:
    raw = None
    if approval.investigation_id:
        inv = s.get(Investigation, approval.investigation_id)
        raw = inv.report if inv is not None else None
    raw = raw or incident.report
    if not raw:
        return None
    try:
        return TriageReport.model_validate(raw)
    except ValidationError:
        log.warning("report of %s does not validate; approval message without hypotheses", incident.id)
        return None


def _fix_line(a: Approval) -> sb.FixLine:
    why, risk, undo = _split_rationale(a.rationale)
    return sb.FixLine(approval_id=a.id, describe=describe(a.action, a.parameters or {}),
                      rationale=why, risk=risk, undo=undo)


def build_message(ctx: ToolContext, s: Session, approval: Approval) -> sb.ApprovalMessage:
    """The facts an approval request shows (Slack and web): incident, top hypotheses, fix, alternatives."""
    incident = s.get(Incident, approval.incident_id)
    assert incident is not None
    report = _report_for(s, approval, incident)
    hyps: list[sb.HypothesisLine] = []
    for h in (report.hypotheses[:3] if report else []):
        links = [sb.Link(label=f"{e.tool}" + (f" {e.ref}" if e.ref else ""), url=e.link)
                 for e in h.evidence if e.link]
        hyps.append(sb.HypothesisLine(
            title=h.title, confidence=h.confidence,
            suspect=f"{h.suspect.kind}: {h.suspect.ref}" + (f" on {h.suspect.service}" if h.suspect.service else ""),
            evidence=[e.finding for e in h.evidence], links=links,
        ))
    links = [sb.Link(label=str(lk.get("label") or lk.get("kind") or "link"), url=str(lk["url"]))
             for lk in (incident.links or []) if isinstance(lk, dict) and lk.get("url")]
    base = _public_url(ctx)
    if base and approval.investigation_id:
        links.append(sb.Link(label="transcript", url=f"{base}/transcripts/{approval.investigation_id}"))
    if base:
        links.append(sb.Link(label="incident page", url=f"{base}/incidents/{incident.id}"))
    return sb.ApprovalMessage(
        incident_id=incident.id, title=incident.title, severity=incident.severity, status=incident.status,
        impact=incident.user_impact or (report.user_impact if report else ""),
        summary=report.summary if report else "", services=list(incident.services or []),
        hypotheses=hyps, fix=_fix_line(approval),
        alternatives=[_fix_line(a) for a in service.alternatives_of(s, approval) if a.status == "alternative"],
        links=links, requested_at=approval.requested_at,
        transcript_hint=(f"firebreak transcripts show {approval.investigation_id}"
                         if approval.investigation_id and not base else ""),
    )


def _public_url(ctx: ToolContext) -> str | None:
    """Where people reach this Firebreak (for links in Slack); FIREBREAK_PUBLIC_URL when set."""

    url = ctx.settings.public_url
    return str(url).rstrip("/") if url else None


def _post_request(ctx: ToolContext, approval_id: str) -> None:
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        assert approval is not None
        incident = s.get(Incident, approval.incident_id)
        assert incident is not None
        text, blocks = sb.approval_request(build_message(ctx, s, approval))
        thread = incident.slack_ts if incident.slack_channel == ctx.settings.slack_channel else None
    posted = slack.post(ctx.settings, text=text, blocks=blocks, thread_ts=thread, broadcast=bool(thread))
    if posted is None:
        return
    channel, ts = posted
    now = ctx.clock.now()
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        incident = s.get(Incident, approval.incident_id) if approval else None
        if approval is None or incident is None:
            return
        approval.slack_channel, approval.slack_ts = channel, ts
        if incident.slack_ts is None:
            incident.slack_channel, incident.slack_ts = channel, ts
        incident.last_update_at = now
        incident_log.record(s, incident, at=now, actor="firebreak", kind="slack",
                            text=f"Approval {approval_id} requested in Slack ({channel})", new=ts)


# -------------------------------------------------------------------------------------------- decide


def request_approval(ctx: ToolContext, **kwargs: Any) -> Approval:
    """Store a pending approval and post it in Slack (see `workflows.approvals.request_approval`)."""
    install()
    return service.request_approval(ctx, **kwargs)



def decide(
    ctx: ToolContext,
    approval_id: str,
    *,
    user: str,
    decision: str,
    via: str,
    reason: str | None = None,
    choice: str | None = None,
    auth: str | None = None,
) -> DecisionOutcome:
    """Apply one person's decision (see `workflows.approvals.decide`); the message is worded for them.

    `auth` is how the person was authenticated; it goes to the audit log with the decision.
    """
    install()
    out = service.decide(ctx, approval_id, user=user, decision=decision, via=via, reason=reason, choice=choice,
                         auth=auth)
    if out.ok and out.execution is not None:
        head = out.message.split(". ", 1)[0]
        out.message = f"{head}. " + sb.result_line(out.execution.status.value, out.execution.detail, plain=True)
    return out


def resolve(ctx: ToolContext, approval_id: str, *, user: str, outcome: str, via: str) -> ResolveOutcome:
    """Settle an `outcome_unknown` action: `done` (checked by hand) or `retry` (run it again, once)."""
    install()
    out = resolve_unknown(ctx, approval_id, user=user, outcome=outcome, via=via)
    if out.ok:
        SlackPeople().approval_decided(ctx, approval_id, via=via, reason=None)
    return out


def decision_line(approval: Approval, via: str, reason: str | None = None) -> sb.DecisionLine:
    return sb.DecisionLine(
        decision=approval.decision or "", status=approval.status, decided_by=approval.decided_by or "?",
        via=via, decided_at=approval.decided_at or approval.requested_at,
        action=describe(approval.action, approval.parameters or {}), result=approval.result or "",
        reason=reason or "",
    )


def _notify_decision(ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
    """Outcome in the thread, original message rewritten (who, when, result); no-op without Slack."""
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        if approval is None or not approval.slack_ts or not approval.slack_channel:
            return
        incident = s.get(Incident, approval.incident_id)
        assert incident is not None
        d = decision_line(approval, via, reason)
        msg = build_message(ctx, s, approval)
        channel, ts = approval.slack_channel, approval.slack_ts
        thread = incident.slack_ts if incident.slack_channel == channel and incident.slack_ts else ts
    text, blocks = sb.decided_message(msg, d)
    slack.update(ctx.settings, channel=channel, ts=ts, text=text, blocks=blocks)
    otext, oblocks = sb.outcome_message(d)
    if slack.post(ctx.settings, text=otext, blocks=oblocks, thread_ts=thread, channel=channel) is not None:
        now = ctx.clock.now()
        with ctx.db.session() as s:
            s.execute(update(Incident).where(Incident.id == msg.incident_id).values(last_update_at=now)
                      .execution_options(synchronize_session=False))


def _check_by_hand(ctx: ToolContext, approval_id: str) -> None:
    """Outcome unknown after a crash: say so in the incident's thread (no-op without Slack)."""
    from firebreak.server import slack

    if not slack.slack_enabled(ctx.settings):
        return
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        if approval is None:
            return
        incident = s.get(Incident, approval.incident_id)
        channel = approval.slack_channel or (incident.slack_channel if incident else None)
        thread = (incident.slack_ts if incident is not None and incident.slack_channel == channel else None) \
            or approval.slack_ts
        what = describe(approval.action, approval.parameters or {})
    text = (f":warning: Approval {approval_id} ({what}): the process running it stopped before reporting, so "
            "nobody knows whether it took effect. Please check by hand, then `firebreak approvals resolve "
            f"{approval_id} done` (it took effect) or `... retry` (run it again).")
    slack.post(ctx.settings, text=text, blocks=None, thread_ts=thread, channel=channel)


class SlackPeople:
    """`workflows.notify.People` over Slack: requests, outcomes and "check by hand" in the thread."""

    def approval_requested(self, ctx: ToolContext, approval_id: str) -> None:
        _post_request(ctx, approval_id)

    def approval_decided(self, ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
        _notify_decision(ctx, approval_id, via=via, reason=reason)

    def check_by_hand(self, ctx: ToolContext, approval_id: str) -> None:
        _check_by_hand(ctx, approval_id)


def install() -> None:
    """Wire the approval service to Slack and the agent to the approval service (idempotent)."""
    from firebreak import workflows

    workflows.install()
    set_people(SlackPeople())
