"""The one entry point for an approved action: `execute_approved`, exactly once, never stuck after a crash.

The approval row is the lock. Running an action claims it (`approved -> executing`, with `claimed_by` =
this replica and process boot); finishing writes the outcome, the countermeasure and the timeline in one
transaction. A second call, a Slack retry or a concurrent worker finds nothing to claim and gets the
stored outcome back.

After a crash the claim is left behind (`executing`, claimed by a process that is gone). Whoever takes
over (the recovered workflow, or the sweeper for a process that was not a workflow) does NOT rerun the
action blindly: the approval moves to `outcome_unknown`, the incident timeline and Slack say "check by
hand", and an approver marks it done or retries it (`resolve_unknown`). Only actions listed in
`FIREBREAK_IDEMPOTENT_ACTIONS` are run again by themselves (the receiver gets the same idempotency key).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.incidents import Incident
from firebreak.statuses import FINISHED_EXECUTIONS, ApprovalStatus
from firebreak.tools.executors import (
    HOTFIX_ACTIONS,
    ROLLBACK_ACTIONS,
    action_timeout,
    describe,
    rows_changed,
    run_action,
)
from firebreak.workflows.notify import get_people

log = logging.getLogger(__name__)

BOOT_ID = uuid.uuid4().hex[:12]  # this process; a claim with another boot id was made by another process
CHECK_BY_HAND = "the process running it stopped before reporting; check by hand whether it took effect"


class ExecutionResult(BaseModel):
    """What happened to one approved action. `already` is true when an earlier call had done it."""

    approval_id: str
    status: ApprovalStatus
    detail: str
    executed_at: datetime | None = None
    already: bool = False


class ExecutionRefused(Exception):
    """The approval is unknown or not in a state that may run (pending, rejected, running now)."""


def replica_id(ctx: ToolContext) -> str:
    """This replica's name (`FIREBREAK_REPLICA_ID`, else host and pid): DBOS's executor id."""
    return ctx.settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"


def owner_token(ctx: ToolContext) -> str:
    return f"{replica_id(ctx)}/{BOOT_ID}"


def _stored(a: Approval) -> ExecutionResult:
    return ExecutionResult(approval_id=a.id, status=ApprovalStatus(a.status), detail=a.result or "",
                           executed_at=a.executed_at, already=True)


def execute_approved(ctx: ToolContext, approval_id: str, *, takeover: bool = False) -> ExecutionResult:
    """Run the approved action behind `approval_id` if nobody has; otherwise return what happened.

    `takeover=True` is for a caller that knows the claimant is gone (a recovered workflow re-running
    its execute step): a claim by another process then becomes `outcome_unknown` (or a rerun for an
    action declared idempotent). Without it, a claim held elsewhere is refused: it is running now.
    """
    token = owner_token(ctx)
    now = ctx.clock.now()
    unknown: ExecutionResult | None = None
    with ctx.db.session() as s:
        claimed = rows_changed(s.execute(
            update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.APPROVED)
            .values(status=ApprovalStatus.EXECUTING, claimed_by=token, claimed_at=now)
            .execution_options(synchronize_session=False)
        ))
        approval = s.get(Approval, approval_id)
        if approval is None:
            raise ExecutionRefused(f"approval {approval_id}: no such approval")
        if not claimed:
            status = approval.status
            if status in FINISHED_EXECUTIONS or status == ApprovalStatus.OUTCOME_UNKNOWN:
                return _stored(approval)
            if status != ApprovalStatus.EXECUTING or not takeover or approval.claimed_by == token:
                raise ExecutionRefused(
                    f"approval {approval_id}: status is {status!r}, only an approved action runs"
                    + (" (it is running now)" if status == ApprovalStatus.EXECUTING else "")
                )
            if approval.action not in ctx.settings.idempotent_actions:
                unknown, won = _mark_unknown(ctx, s, approval, now)
                if not won:
                    return unknown
            # Declared idempotent: run it again under our claim; the receiver sees the same key.
            elif not rows_changed(s.execute(
                update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.EXECUTING,
                                       Approval.claimed_by == approval.claimed_by)
                .values(claimed_by=token, claimed_at=now).execution_options(synchronize_session=False)
            )):
                raise ExecutionRefused(f"approval {approval_id}: taken over by another process")
        payload: dict[str, Any] = {
            "incident": approval.incident_id, "approval_id": approval.id, "action": approval.action,
            **(approval.parameters or {}), "approved_by": approval.decided_by,
        }
        action, params, actor = approval.action, dict(approval.parameters or {}), approval.decided_by or "?"
    if unknown is not None:
        _tell_check_by_hand(ctx, approval_id)
        return unknown
    try:
        status, detail = run_action(ctx, action, params, payload, idempotency_key=approval_id, actor=actor, at=now)
    except Exception as exc:  # noqa: BLE001 - an executor must never leave the row in "executing" forever
        log.exception("executor for %s failed", approval_id)
        status, detail = ApprovalStatus.FAILED, f"executor error: {exc}"
    return _finish(ctx, approval_id, token, status, detail, now)


def _mark_unknown(ctx: ToolContext, s: Session, approval: Approval, now: datetime) -> tuple[ExecutionResult, bool]:
    """The claimant died mid-action: say so in the row and the timeline, run nothing (caller tells Slack)."""
    what = describe(approval.action, approval.parameters or {})
    detail = f"{what}: {CHECK_BY_HAND} (was run by {approval.claimed_by or '?'})"
    won = rows_changed(s.execute(
        update(Approval).where(Approval.id == approval.id, Approval.status == ApprovalStatus.EXECUTING,
                               Approval.claimed_by == approval.claimed_by)
        .values(status=ApprovalStatus.OUTCOME_UNKNOWN, result=detail).execution_options(synchronize_session=False)
    ))
    s.refresh(approval)
    if won:
        incident = s.get(Incident, approval.incident_id)
        if incident is not None:
            incident_log.record(s, incident, at=now, actor="firebreak", kind="approval", field="approval",
                                old=ApprovalStatus.EXECUTING.value, new=ApprovalStatus.OUTCOME_UNKNOWN.value,
                                text=f"Approval {approval.id}: outcome unknown, check by hand. {detail}. "
                                     f"An approver can mark it done or retry it.")
    return _stored(approval), bool(won)


def _tell_check_by_hand(ctx: ToolContext, approval_id: str) -> None:
    try:
        get_people().check_by_hand(ctx, approval_id)
    except Exception:  # noqa: BLE001 - Slack being down must not undo the state change
        log.exception("telling people to check %s by hand failed", approval_id)


def _finish(
    ctx: ToolContext, approval_id: str, token: str, status: ApprovalStatus, detail: str, started: datetime
) -> ExecutionResult:
    now = ctx.clock.now()
    executed_at = started if status != ApprovalStatus.MANUAL else None
    with ctx.db.session() as s:
        # Our own claim only; a sweeper may have marked it unknown meanwhile: the real outcome wins.
        done = rows_changed(s.execute(
            update(Approval)
            .where(Approval.id == approval_id, Approval.claimed_by == token,
                   Approval.status.in_([ApprovalStatus.EXECUTING, ApprovalStatus.OUTCOME_UNKNOWN]))
            .values(status=status, executed_at=executed_at, result=detail)
            .execution_options(synchronize_session=False)
        ))
        approval = s.get(Approval, approval_id)
        if not done:
            log.warning("outcome of %s not recorded: the claim was taken over", approval_id)
            return _stored(approval) if approval is not None else ExecutionResult(
                approval_id=approval_id, status=status, detail=detail, executed_at=executed_at)
        incident = s.get(Incident, approval.incident_id) if approval else None
        if approval is not None and incident is not None:
            record_outcome(s, incident, approval, status, detail, now)
    return ExecutionResult(approval_id=approval_id, status=status, detail=detail, executed_at=executed_at)


def record_outcome(
    s: Session, incident: Incident, approval: Approval, status: ApprovalStatus, detail: str, now: datetime
) -> None:
    """Countermeasure, timeline, and the incident's marks: written once, with the final status."""
    what = describe(approval.action, approval.parameters or {})
    by = approval.decided_by or "?"
    worked: bool | None
    if status == ApprovalStatus.EXECUTED:
        text = f"{what} executed (approved by {by}): {detail}"
        worked = None
    elif status == ApprovalStatus.MANUAL:
        text = f"{what} approved by {by}, to be done by hand: no executor configured"
        worked = None
    else:
        text = f"{what} approved by {by} but execution failed: {detail}"
        worked = False
    incident_log.add_countermeasure(s, incident, what=text, by=by, at=now, worked=worked, approval_id=approval.id)
    if status != ApprovalStatus.EXECUTED:
        return
    marks: dict[str, Any] = {}
    if approval.action in ROLLBACK_ACTIONS:
        marks["rollback"] = True
    if approval.action in HOTFIX_ACTIONS:
        marks["hotfix"] = True
    if marks:
        incident_log.update_incident(s, incident, marks, at=now, actor="firebreak")
    if incident.status == "open":
        incident_log.set_status(s, incident, "mitigated", at=now, actor="firebreak")


class ResolveOutcome(BaseModel):
    ok: bool
    message: str
    status: ApprovalStatus | None = None
    execution: ExecutionResult | None = None


def resolve_unknown(ctx: ToolContext, approval_id: str, *, user: str, outcome: str, via: str) -> ResolveOutcome:
    """An approver settles an `outcome_unknown` action: `done` (it took effect) or `retry` (run it again)."""
    user = (user or "").strip()[:128]
    now = ctx.clock.now()
    if outcome not in ("done", "retry"):
        return ResolveOutcome(ok=False, message=f"outcome: must be done or retry, not {outcome!r}")
    if not user or not ctx.settings.is_approver(user):
        with ctx.db.session() as s:
            s.add(AuditEvent(at=now, actor=user or "?", event="approval_refused",
                             detail={"approval_id": approval_id, "via": via, "decision": outcome,
                                     "code": "not_approver"}))
        return ResolveOutcome(ok=False, message=f"{user or 'anonymous'} is not allowed to settle approvals "
                                                "(not in FIREBREAK_APPROVERS); the attempt was logged.")
    new = ApprovalStatus.EXECUTED if outcome == "done" else ApprovalStatus.APPROVED
    with ctx.db.session() as s:
        approval = s.get(Approval, approval_id)
        if approval is None:
            return ResolveOutcome(ok=False, message=f"No approval {approval_id}: nothing was done.")
        values: dict[str, Any] = {"status": new}
        if outcome == "done":
            values.update(executed_at=now, result=f"marked done by {user} via {via} after checking by hand")
        won = rows_changed(s.execute(
            update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.OUTCOME_UNKNOWN)
            .values(**values).execution_options(synchronize_session=False)
        ))
        s.refresh(approval)
        if not won:
            return ResolveOutcome(ok=False, status=ApprovalStatus(approval.status),
                                  message=f"Approval {approval_id} is {approval.status}, not outcome_unknown: "
                                          "nothing was done.")
        incident = s.get(Incident, approval.incident_id)
        assert incident is not None
        verb = "marked done" if outcome == "done" else "retried"
        incident_log.record(s, incident, at=now, actor=user, kind="approval", field="approval",
                            old=ApprovalStatus.OUTCOME_UNKNOWN.value, new=new.value,
                            text=f"Approval {approval_id} {verb} by {user} via {via} (outcome was unknown)")
        s.add(AuditEvent(at=now, actor=user, event="approval_resolved",
                         detail={"approval_id": approval_id, "via": via, "outcome": outcome}))
        if outcome == "done":
            record_outcome(s, incident, approval, ApprovalStatus.EXECUTED, approval.result or "", now)
    if outcome == "done":
        return ResolveOutcome(ok=True, status=ApprovalStatus.EXECUTED, message=f"Approval {approval_id} marked done.")
    result = execute_approved(ctx, approval_id)
    return ResolveOutcome(ok=True, status=result.status, execution=result,
                          message=f"Approval {approval_id} retried: {result.status.value}: {result.detail}")


def sweep_orphaned_claims(ctx: ToolContext, live_tokens: set[str]) -> list[str]:
    """Claims held by a process that is gone (not a live replica) past the action timeout: outcome unknown.

    Covers actions run outside a workflow (the CLI, a retry by an approver) whose process died; a
    workflow's own claims are usually settled sooner, when the workflow is recovered.
    """
    cutoff = ctx.clock.now() - timedelta(seconds=action_timeout(ctx) + 30)
    swept: list[str] = []
    with ctx.db.session() as s:
        rows = s.scalars(select(Approval).where(Approval.status == ApprovalStatus.EXECUTING,
                                                Approval.claimed_at < cutoff)).all()
        for a in rows:
            if a.claimed_by in live_tokens:
                continue
            if _mark_unknown(ctx, s, a, ctx.clock.now())[1]:
                swept.append(a.id)
    for approval_id in swept:
        _tell_check_by_hand(ctx, approval_id)
    return swept
