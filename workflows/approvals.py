"""The approval service: nothing is done to production until an approver says yes, and then exactly once.

`request_approval` stores a pending `Approval` (one per idempotency key; only catalog actions) and tells
people (`workflows.notify`). `decide` is the single door for Slack clicks, the web page and the CLI: it
checks FIREBREAK_APPROVERS and moves the row `pending -> approved|rejected` with a conditional UPDATE (a
second click or a Slack retry changes nothing). What follows the decision (`after_decision`: run the
action once through `workflows.executor`, close the agent's paused run, tell people) runs either in the
durable investigation workflow that waits for this decision (a DBOS message wakes it; `decide` waits a
little for its outcome), or right here when no workflow owns the approval (a drill, a test, the CLI on a
database no server has used).

Alternatives (the other hypotheses' fixes) are rows with status `alternative`, linked to the request by
their idempotency key (`<request key>#alt<N>`); approving one copies its action onto the request row, so
the paused tool call and the executor always read one row.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from firebreak.statuses import ALTERNATIVE_STATUSES, ApprovalStatus, Decision, InvestigationStatus
from firebreak.tools.executors import describe, rows_changed
from firebreak.workflows.executor import ExecutionRefused, ExecutionResult, execute_approved
from firebreak.workflows.notify import get_people

log = logging.getLogger(__name__)

Via = Literal["slack", "web", "cli"]
OutcomeCode = Literal[
    "approved", "rejected", "not_approver", "unknown_approval", "incident_finished",
    "already_decided", "bad_input",
]
FINISHED_INCIDENT = ("resolved",)
MAX_ALTERNATIVES = 5


class ApprovalError(ValueError):
    """Bad input to the approval flow, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DecisionOutcome(BaseModel):
    """What `decide` did; `message` is written for the person who clicked."""

    ok: bool
    code: OutcomeCode
    message: str
    approval_id: str
    status: str | None = None
    execution: ExecutionResult | None = None


def alternatives_of(s: Session, approval: Approval) -> list[Approval]:
    prefix = approval.idempotency_key + "#alt"
    rows = s.execute(
        select(Approval).where(Approval.incident_id == approval.incident_id,
                               Approval.idempotency_key.startswith(prefix, autoescape=True))
    ).scalars().all()
    return sorted(rows, key=lambda a: a.idempotency_key)


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
    workflow_id: str | None = None,
) -> Approval:
    """Store a pending approval for `fix` (idempotent per tool call) and tell people.

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
                rationale=_rationale(fix), status=ApprovalStatus.PENDING, requested_at=now, idempotency_key=key,
                workflow_id=workflow_id,
            )
            s.add(approval)
            for i, alt in enumerate(alts, 1):
                s.add(Approval(
                    id=_new_id(), incident_id=incident_id, investigation_id=investigation_id,
                    tool_call_id=None, action=alt.action, parameters=dict(alt.parameters),
                    rationale=_rationale(alt), status=ApprovalStatus.ALTERNATIVE, requested_at=now,
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
    get_people().approval_requested(ctx, approval_id)
    with ctx.db.session() as s:
        stored = s.get(Approval, approval_id)
        assert stored is not None
        return stored


def request_for_investigation(ctx: ToolContext, investigation_id: str, *, workflow_id: str | None = None) -> str | None:
    """Ask for approval of the fix an investigation's paused run proposes; None when it proposes none."""
    with ctx.db.session() as s:
        inv = s.get(Investigation, investigation_id)
        if inv is None or inv.status != InvestigationStatus.AWAITING_APPROVAL or not inv.report:
            return None
        pending = list((inv.usage or {}).get("pending_tool_call_ids") or [])
        report = TriageReport.model_validate(inv.report)
        incident_id = inv.incident_id
    if not pending or report.proposed_fix is None:
        return None
    try:
        approval = request_approval(
            ctx, incident_id=incident_id, investigation_id=investigation_id, tool_call_id=pending[0],
            fix=report.proposed_fix, alternatives=_report_alternatives(report), workflow_id=workflow_id,
        )
    except Exception as exc:  # noqa: BLE001 - the report stands; the approval error is kept on the row
        log.exception("request_approval failed for %s", investigation_id)
        with ctx.db.session() as s:
            row = s.get(Investigation, investigation_id)
            if row is not None:
                row.error = f"request_approval failed: {type(exc).__name__}: {exc}"[:2000]
        return None
    return approval.id


def _report_alternatives(report: TriageReport) -> list[ProposedFix]:
    seen = {json.dumps(report.proposed_fix.flat(), sort_keys=True)} if report.proposed_fix else set()
    out = []
    for h in report.hypotheses[1:]:
        if h.fix is None:
            continue
        k = json.dumps(h.fix.flat(), sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(h.fix)
    return out[:3]


def _new_id() -> str:
    return "apr-" + uuid.uuid4().hex[:12]


def _rationale(fix: ProposedFix) -> str:
    parts = [fix.rationale.strip()]
    if fix.risk.strip():
        parts.append(f"Risk: {fix.risk.strip()}")
    if fix.undo.strip():
        parts.append(f"Undo: {fix.undo.strip()}")
    return "\n".join(p for p in parts if p)


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
    wait_seconds: float | None = None,
    auth: str | None = None,
) -> DecisionOutcome:
    """Apply one person's decision; refusals change nothing but the audit log.

    `auth` says how the person proved who they are (`password`, `personal_token`, `os_user` from the
    CLI, `web_session`, `slack_signature`); it is kept in the audit log with the decision.

    `choice` is the id (or 1-based number) of an alternative fix to approve instead of the proposal.
    When a durable workflow owns the approval, the decision is handed to it and `decide` waits up to
    `wait_seconds` (default: the action timeout plus 10 s) for the execution's outcome.
    """
    now = ctx.clock.now()
    user = (user or "").strip()[:128]  # the audit and approval columns hold 128 characters

    def refuse(code: OutcomeCode, message: str, status: str | None = None) -> DecisionOutcome:
        with ctx.db.session() as s:
            s.add(AuditEvent(at=now, actor=user or "?", event="approval_refused",
                             detail={"approval_id": approval_id, "via": via, "decision": decision,
                                     "code": code, "message": message, "auth": auth}))
        return DecisionOutcome(ok=False, code=code, message=message, approval_id=approval_id, status=status)

    if decision not in tuple(Decision):
        return refuse("bad_input", f"decision: must be approve or reject, not {decision!r}")
    if via not in ("slack", "web", "cli"):
        return refuse("bad_input", f"via: must be slack, web or cli, not {via!r}")
    if not user or not ctx.settings.is_approver(user):
        return refuse("not_approver", f"{user or 'anonymous'} is not allowed to approve fixes "
                      "(not in FIREBREAK_APPROVERS); the attempt was logged.")

    with ctx.db.session() as s:
        applied = _apply(s, approval_id, user=user, decision=decision, via=via, reason=reason,
                         choice=choice, now=now, auth=auth)
    if isinstance(applied, tuple):
        code, message, status = applied
        if code == "already_decided" and not message:  # lost a race: read what the winner wrote
            with ctx.db.session() as s:
                fresh = s.get(Approval, approval_id)
                message = already_text(fresh) if fresh else f"No approval {approval_id}."
                status = fresh.status if fresh else None
        return refuse(code, message, status)
    final = applied

    execution = _hand_over(ctx, approval_id, via=via, reason=reason, wait_seconds=wait_seconds)
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        assert approval is not None
        status = approval.status
    if decision == Decision.REJECT:
        message = f"Rejected {final}; nothing will run."
    elif execution is None:
        message = f"Approved {final}; execution is {status}."
    else:
        message = f"Approved {final}. {execution.status.value}: {execution.detail}"
    return DecisionOutcome(ok=True, code="approved" if decision == Decision.APPROVE else "rejected",
                           message=message, approval_id=approval_id, status=status, execution=execution)


def _hand_over(
    ctx: ToolContext, approval_id: str, *, via: str, reason: str | None, wait_seconds: float | None
) -> ExecutionResult | None:
    """To the workflow that waits for this decision when there is one, else run the continuation here."""
    from firebreak.workflows import engine

    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        workflow_id = a.workflow_id if a is not None else None
    if workflow_id:  # only the workflow runs it; if the message fails, its next look at the row will do
        if not engine.send_decision(ctx, workflow_id, approval_id, via=via, reason=reason):
            return None
        wait = wait_seconds if wait_seconds is not None else ctx.settings.action_timeout_seconds + 10
        return engine.wait_outcome(ctx, workflow_id, approval_id, wait)
    return after_decision(ctx, approval_id, via=via, reason=reason)


def after_decision(
    ctx: ToolContext, approval_id: str, *, via: str, reason: str | None, takeover: bool = False
) -> ExecutionResult | None:
    """What follows a decision: run an approved action once, close the paused agent run, tell people.

    `takeover` is set by a recovered workflow: a claim left by a dead process becomes outcome_unknown.
    """
    execution = execute_decided(ctx, approval_id, takeover=takeover)
    close_run(ctx, approval_id, takeover=takeover)
    tell_decided(ctx, approval_id, via=via, reason=reason)
    return execution


def execute_decided(ctx: ToolContext, approval_id: str, *, takeover: bool = False) -> ExecutionResult | None:
    """Run the action if the decision was yes (through the one entry point); None when nothing runs."""
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        if a is None or a.decision != Decision.APPROVE:
            return None
    try:
        return execute_approved(ctx, approval_id, takeover=takeover)
    except ExecutionRefused as exc:
        log.info("execution of %s not run here: %s", approval_id, exc)
        return None


def close_run(ctx: ToolContext, approval_id: str, *, takeover: bool = False) -> None:
    """Give the decision to the agent's paused run so its transcript ends with the outcome."""
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        tied = (a is not None and a.investigation_id is not None and a.tool_call_id is not None
                and s.get(Investigation, a.investigation_id) is not None)
    if not tied:
        return
    from firebreak.agent.investigator import resume  # importing the agent (pydantic-ai) costs seconds: only when needed

    try:
        resume(ctx, approval_id, takeover=takeover)
    except Exception:  # noqa: BLE001 - the action's outcome is recorded; the transcript is secondary
        log.exception("closing the agent run of %s failed", approval_id)


def tell_decided(ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
    try:
        get_people().approval_decided(ctx, approval_id, via=via, reason=reason)
    except Exception:  # noqa: BLE001 - Slack being down must not hide the recorded outcome
        log.exception("telling people about %s failed", approval_id)


def _apply(
    s: Session, approval_id: str, *, user: str, decision: str, via: str, reason: str | None,
    choice: str | None, now: datetime, auth: str | None = None,
) -> str | tuple[OutcomeCode, str, str | None]:
    """The decision inside one transaction: the final action's description, or a refusal."""
    approval = s.get(Approval, approval_id)
    if approval is None or approval.status in ALTERNATIVE_STATUSES:
        return "unknown_approval", f"No approval {approval_id}: nothing was done.", None
    incident = s.get(Incident, approval.incident_id)
    assert incident is not None
    if approval.status != ApprovalStatus.PENDING:
        return "already_decided", already_text(approval), approval.status
    if incident.status in FINISHED_INCIDENT:
        return ("incident_finished", f"Incident {incident.id} is {incident.status}: approval "
                f"{approval_id} can no longer be decided, nothing was done.", approval.status)
    chosen: Approval | None = None
    if choice and decision == Decision.APPROVE:
        chosen = _pick(alternatives_of(s, approval), choice)
        if chosen is None:
            return "bad_input", f"choice: {choice!r} is not an alternative of {approval_id}", approval.status
    original = describe(approval.action, approval.parameters or {})
    new_status = ApprovalStatus.APPROVED if decision == Decision.APPROVE else ApprovalStatus.REJECTED
    values: dict[str, Any] = {"status": new_status, "decision": decision, "decided_by": user, "decided_at": now}
    if decision == Decision.REJECT:
        values["result"] = f"rejected: {reason}" if reason else "rejected"
    if chosen is not None:
        values.update(action=chosen.action, parameters=dict(chosen.parameters or {}), rationale=chosen.rationale)
    won = rows_changed(s.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.PENDING)
        .values(**values).execution_options(synchronize_session=False)
    ))
    if not won:  # someone else decided between our read and our write
        return "already_decided", "", None
    for alt in alternatives_of(s, approval):
        alt.status = ApprovalStatus.CHOSEN if chosen is not None and alt.id == chosen.id else ApprovalStatus.NOT_CHOSEN
    s.refresh(approval)
    final = describe(approval.action, approval.parameters or {})
    text = f"Approval {approval_id} {new_status.value} by {user} via {via}: {final}"
    if chosen is not None:
        text += f" (chosen instead of {original})"
    if reason:
        text += f". Reason: {reason}"
    incident_log.record(s, incident, at=now, actor=user, kind="approval", field="approval",
                        old=ApprovalStatus.PENDING.value, new=new_status.value, text=text)
    s.add(AuditEvent(at=now, actor=user, event="approval_decided",
                     detail={"approval_id": approval_id, "via": via, "decision": decision,
                             "action": final, "choice": chosen.id if chosen else None, "auth": auth}))
    return final


def already_text(a: Approval) -> str:
    verb = {Decision.APPROVE: "approved", Decision.REJECT: "rejected"}.get(a.decision or "", a.status)  # type: ignore[call-overload]
    when = a.decided_at.strftime("%Y-%m-%d %H:%M UTC") if a.decided_at else "earlier"
    return (f"Approval {a.id} was already {verb} by {a.decided_by or '?'} at {when} "
            f"(status {a.status}); nothing was done again.")


def _pick(alts: list[Approval], choice: str) -> Approval | None:
    for a in alts:
        if a.id == choice:
            return a
    if choice.isdigit() and 1 <= int(choice) <= len(alts):
        return alts[int(choice) - 1]
    return None


class Desk:
    """`agent.notify.Notifier` for the agent: approval requests and the one executor entry point."""

    def report_ready(self, ctx: ToolContext, investigation_id: str) -> str | None:
        return request_for_investigation(ctx, investigation_id)

    def run_approved(self, ctx: ToolContext, approval_id: str) -> dict[str, Any]:
        try:
            result = execute_approved(ctx, approval_id)
        except ExecutionRefused as exc:
            return {"status": "refused", "detail": str(exc)[:2000], "approval_id": approval_id}
        return {"status": result.status.value, "detail": result.detail[:2000], "approval_id": approval_id}
