"""The approval flow: nothing is done to production until an approver says yes, exactly once.

`request_approval` stores a pending `Approval` (one per idempotency key; only catalog actions) and posts
the request to Slack when configured; otherwise it waits for the web page or `firebreak approvals`.
`decide` is the single door for Slack clicks, the web page and the CLI: it checks FIREBREAK_APPROVERS,
moves the row `pending -> approved|rejected` with a conditional UPDATE (a second click or a Slack retry
changes nothing), resumes the agent's deferred run, makes sure the approved action ran exactly once
(`tools.executors.execute_once`), and reports the outcome in the Slack thread and the original message.

Alternatives (the other hypotheses' fixes) are stored as rows with status `alternative`, linked to the
request by their idempotency key (`<request key>#alt<N>`); approving one copies its action onto the
request row, so the deferred tool call and the executor always read one row.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.actions import ProposedFix
from agent.report import TriageReport
from memory import incident_log
from memory.models import Approval, AuditEvent, Incident, Investigation
from server import slack_blocks as sb
from tools.context import ToolContext
from tools.executors import ExecutionRefused, ExecutionResult, describe, execute_once, rows_changed

log = logging.getLogger(__name__)

Decision = Literal["approve", "reject"]
Via = Literal["slack", "web", "cli"]
OutcomeCode = Literal[
    "approved", "rejected", "not_approver", "unknown_approval", "incident_finished",
    "already_decided", "bad_input",
]
FINISHED_INCIDENT = ("resolved",)
MAX_ALTERNATIVES = 5
# Statuses of alternative rows: offered, picked instead of the proposal, or left when the request was decided.
ALTERNATIVE_STATUSES = ("alternative", "chosen", "not_chosen")


class ApprovalError(ValueError):
    """Bad input to the approval flow, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


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


class DecisionOutcome(BaseModel):
    """What `decide` did; `message` is written for the person who clicked."""

    ok: bool
    code: OutcomeCode
    message: str
    approval_id: str
    status: str | None = None
    execution: ExecutionResult | None = None


# ---------------------------------------------------------------------------------------------- views


def _alternatives(s: Session, approval: Approval) -> list[Approval]:
    prefix = approval.idempotency_key + "#alt"
    rows = s.execute(
        select(Approval).where(Approval.incident_id == approval.incident_id,
                               Approval.idempotency_key.startswith(prefix, autoescape=True))
    ).scalars().all()
    return sorted(rows, key=lambda a: a.idempotency_key)


def view(s: Session, approval: Approval) -> ApprovalView:
    alts = [] if approval.status in ALTERNATIVE_STATUSES else _alternatives(s, approval)
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


# ------------------------------------------------------------------------------------------- request


def _key(incident_id: str, investigation_id: str | None, tool_call_id: str | None, fix: ProposedFix) -> str:
    if tool_call_id:
        return f"{investigation_id or incident_id}:{tool_call_id}"[:100]
    flat = json.dumps(fix.flat(), sort_keys=True, default=str)
    return f"{incident_id}:{investigation_id or '-'}:{uuid.uuid5(uuid.NAMESPACE_URL, flat).hex}"[:100]


def _clean_alternatives(fix: ProposedFix, alternatives: list[ProposedFix]) -> list[ProposedFix]:
    """Catalog-valid, distinct from the proposal and each other; anything else is dropped (and logged)."""
    seen = {json.dumps(fix.flat(), sort_keys=True, default=str)}
    kept: list[ProposedFix] = []
    for alt in alternatives:
        try:
            alt.validate_catalog()
        except ValueError as exc:
            log.warning("alternative fix dropped: %s", exc)
            continue
        k = json.dumps(alt.flat(), sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            kept.append(alt)
    return kept[:MAX_ALTERNATIVES]


def request_approval(
    ctx: ToolContext,
    *,
    incident_id: str,
    investigation_id: str | None,
    tool_call_id: str | None,
    fix: ProposedFix,
    alternatives: list[ProposedFix] | None = None,
) -> Approval:
    """Store a pending approval for `fix` (idempotent per tool call) and ask for it in Slack if configured.

    Raises ApprovalError for a fix outside the action catalog or an unknown incident.
    """
    try:
        fix = ProposedFix.model_validate(fix.model_dump() if isinstance(fix, ProposedFix) else fix)
        fix.validate_catalog()
    except (ValidationError, ValueError) as exc:
        raise ApprovalError("fix", str(exc)) from None
    alts = _clean_alternatives(fix, list(alternatives or []))
    key = _key(incident_id, investigation_id, tool_call_id, fix)
    now = ctx.clock.now()
    try:
        with ctx.db.session() as s:
            existing = s.execute(select(Approval).where(Approval.idempotency_key == key)).scalar_one_or_none()
            if existing is not None:
                return existing
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise ApprovalError("incident_id", f"no incident {incident_id}")
            approval = Approval(
                id=_new_id(), incident_id=incident_id, investigation_id=investigation_id,
                tool_call_id=tool_call_id, action=fix.action, parameters=dict(fix.parameters),
                rationale=_rationale(fix), status="pending", requested_at=now, idempotency_key=key,
            )
            s.add(approval)
            for i, alt in enumerate(alts, 1):
                s.add(Approval(
                    id=_new_id(), incident_id=incident_id, investigation_id=investigation_id,
                    tool_call_id=None, action=alt.action, parameters=dict(alt.parameters),
                    rationale=_rationale(alt), status="alternative", requested_at=now,
                    idempotency_key=f"{key}#alt{i:02d}",
                ))
            alt_text = f" (alternatives: {', '.join(a.describe() for a in alts)})" if alts else ""
            incident_log.record(s, incident, at=now, actor="firebreak", kind="approval",
                                text=f"Approval {approval.id} requested: {fix.describe()}{alt_text}",
                                new={"approval_id": approval.id, **fix.flat()})
            s.flush()
            approval_id = approval.id
    except IntegrityError:
        with ctx.db.session() as s:  # a concurrent request with the same key won the insert
            return s.execute(select(Approval).where(Approval.idempotency_key == key)).scalar_one()
    _post_request(ctx, approval_id)
    with ctx.db.session() as s:
        stored = s.get(Approval, approval_id)
        assert stored is not None
        return stored


def _new_id() -> str:
    return "apr-" + uuid.uuid4().hex[:12]


def _rationale(fix: ProposedFix) -> str:
    parts = [fix.rationale.strip()]
    if fix.risk.strip():
        parts.append(f"Risk: {fix.risk.strip()}")
    if fix.undo.strip():
        parts.append(f"Undo: {fix.undo.strip()}")
    return "\n".join(p for p in parts if p)


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
        alternatives=[_fix_line(a) for a in _alternatives(s, approval) if a.status == "alternative"],
        links=links, requested_at=approval.requested_at,
        transcript_hint=(f"firebreak transcripts show {approval.investigation_id}"
                         if approval.investigation_id and not base else ""),
    )


def _public_url(ctx: ToolContext) -> str | None:
    """Where people reach this Firebreak (for links in Slack); FIREBREAK_PUBLIC_URL when set."""

    url = ctx.settings.public_url
    return str(url).rstrip("/") if url else None


def _post_request(ctx: ToolContext, approval_id: str) -> None:
    from server import slack

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


def decide(
    ctx: ToolContext,
    approval_id: str,
    *,
    user: str,
    decision: str,
    via: str,
    reason: str | None = None,
    choice: str | None = None,
) -> DecisionOutcome:
    """Apply one person's decision; refusals change nothing but the audit log.

    `choice` is the id (or 1-based number) of an alternative fix to approve instead of the proposal.
    """
    now = ctx.clock.now()
    user = (user or "").strip()[:128]  # the audit and approval columns hold 128 characters

    def refuse(code: OutcomeCode, message: str, status: str | None = None) -> DecisionOutcome:
        with ctx.db.session() as s:
            s.add(AuditEvent(at=now, actor=user or "?", event="approval_refused",
                             detail={"approval_id": approval_id, "via": via, "decision": decision,
                                     "code": code, "message": message}))
        return DecisionOutcome(ok=False, code=code, message=message, approval_id=approval_id, status=status)

    if decision not in ("approve", "reject"):
        return refuse("bad_input", f"decision: must be approve or reject, not {decision!r}")
    if via not in ("slack", "web", "cli"):
        return refuse("bad_input", f"via: must be slack, web or cli, not {via!r}")
    if not user or not ctx.settings.is_approver(user):
        return refuse("not_approver", f"{user or 'anonymous'} is not allowed to approve fixes "
                      "(not in FIREBREAK_APPROVERS); the attempt was logged.")

    with ctx.db.session() as s:
        applied = _apply(s, approval_id, user=user, decision=decision, via=via, reason=reason,
                         choice=choice, now=now)
    if isinstance(applied, tuple):
        code, message, status = applied
        if code == "already_decided" and not message:  # lost a race: read what the winner wrote
            with ctx.db.session() as s:
                fresh = s.get(Approval, approval_id)
                message = _already(fresh) if fresh else f"No approval {approval_id}."
                status = fresh.status if fresh else None
        return refuse(code, message, status)
    final = applied

    execution = _resume(ctx, approval_id)
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        assert approval is not None
        status = approval.status
    _notify_decision(ctx, approval_id, via=via, reason=reason)
    if decision == "reject":
        message = f"Rejected {final}; nothing will run."
    elif execution is None:
        message = f"Approved {final}; execution is {status}."
    else:
        message = f"Approved {final}. " + sb.result_line(execution.status, execution.detail, plain=True)
    return DecisionOutcome(ok=True, code="approved" if decision == "approve" else "rejected",
                           message=message, approval_id=approval_id, status=status, execution=execution)


def _apply(
    s: Session, approval_id: str, *, user: str, decision: str, via: str, reason: str | None,
    choice: str | None, now: datetime,
) -> str | tuple[OutcomeCode, str, str | None]:
    """The decision inside one transaction: the final action's description, or a refusal."""
    approval = s.get(Approval, approval_id)
    if approval is None or approval.status in ALTERNATIVE_STATUSES:
        return "unknown_approval", f"No approval {approval_id}: nothing was done.", None
    incident = s.get(Incident, approval.incident_id)
    assert incident is not None
    if approval.status != "pending":
        return "already_decided", _already(approval), approval.status
    if incident.status in FINISHED_INCIDENT:
        return ("incident_finished", f"Incident {incident.id} is {incident.status}: approval "
                f"{approval_id} can no longer be decided, nothing was done.", approval.status)
    chosen: Approval | None = None
    if choice and decision == "approve":
        chosen = _pick(_alternatives(s, approval), choice)
        if chosen is None:
            return "bad_input", f"choice: {choice!r} is not an alternative of {approval_id}", approval.status
    original = describe(approval.action, approval.parameters or {})
    values: dict[str, Any] = {
        "status": "approved" if decision == "approve" else "rejected",
        "decision": decision, "decided_by": user, "decided_at": now,
    }
    if decision == "reject":
        values["result"] = f"rejected: {reason}" if reason else "rejected"
    if chosen is not None:
        values.update(action=chosen.action, parameters=dict(chosen.parameters or {}), rationale=chosen.rationale)
    won = rows_changed(s.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == "pending").values(**values)
        .execution_options(synchronize_session=False)
    ))
    if not won:  # someone else decided between our read and our write
        return "already_decided", "", None
    for alt in _alternatives(s, approval):
        alt.status = "chosen" if chosen is not None and alt.id == chosen.id else "not_chosen"
    s.refresh(approval)
    final = describe(approval.action, approval.parameters or {})
    verb = "approved" if decision == "approve" else "rejected"
    text = f"Approval {approval_id} {verb} by {user} via {via}: {final}"
    if chosen is not None:
        text += f" (chosen instead of {original})"
    if reason:
        text += f". Reason: {reason}"
    incident_log.record(s, incident, at=now, actor=user, kind="approval", field="approval",
                        old="pending", new=values["status"], text=text)
    s.add(AuditEvent(at=now, actor=user, event="approval_decided",
                     detail={"approval_id": approval_id, "via": via, "decision": decision,
                             "action": final, "choice": chosen.id if chosen else None}))
    return final


def _already(a: Approval) -> str:
    verb = {"approve": "approved", "reject": "rejected"}.get(a.decision or "", a.status)
    when = sb.when(a.decided_at) if a.decided_at else "earlier"
    return (f"Approval {a.id} was already {verb} by {a.decided_by or '?'} at {when} "
            f"(status {a.status}); nothing was done again.")


def _pick(alts: list[Approval], choice: str) -> Approval | None:
    for a in alts:
        if a.id == choice:
            return a
    if choice.isdigit() and 1 <= int(choice) <= len(alts):
        return alts[int(choice) - 1]
    return None


def _resume(ctx: ToolContext, approval_id: str) -> ExecutionResult | None:
    """Hand the decision to the agent's deferred run, then make sure an approved action ran once.

    `agent.investigator.resume` (when present) continues the paused pydantic-ai run, whose action tool
    calls the executor. Whatever it did, `execute_once` afterwards either runs the action (the run did
    not, or no investigator is installed) or returns the stored result: exactly once either way.
    """
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        tied = (a is not None and a.investigation_id is not None and a.tool_call_id is not None
                and s.get(Investigation, a.investigation_id) is not None)
    if tied:  # importing the agent (pydantic-ai) costs seconds: only when there is a run to resume
        from agent.investigator import resume

        try:
            resume(ctx, approval_id)
        except Exception:
            log.exception("agent.investigator.resume failed for %s; executing directly", approval_id)
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        if a is None or a.status in ("rejected", "pending"):
            return None
    try:
        return execute_once(ctx, approval_id)
    except ExecutionRefused as exc:
        log.info("execution of %s not run here: %s", approval_id, exc)
        return None


def decision_line(approval: Approval, via: str, reason: str | None = None) -> sb.DecisionLine:
    return sb.DecisionLine(
        decision=approval.decision or "", status=approval.status, decided_by=approval.decided_by or "?",
        via=via, decided_at=approval.decided_at or approval.requested_at,
        action=describe(approval.action, approval.parameters or {}), result=approval.result or "",
        reason=reason or "",
    )


def _notify_decision(ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
    """Outcome in the thread, original message rewritten (who, when, result); no-op without Slack."""
    from server import slack

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
