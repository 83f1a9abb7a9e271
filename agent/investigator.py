"""The investigator: one pydantic-ai agent run per incident, offline by default, any OpenAI-compatible LLM.

The agent (deps = ToolContext; its tools in `agent.agent_tools`, the run itself in `agent.agent_run`)
sees every registry query tool with its name, docstring and input schema, plus two of its own:
`submit_report` (the structured triage report) and `request_action`
(the proposed fix: an approval-required, deferred tool). A run therefore always stops on
`DeferredToolRequests` when there is a fix; only `resume()` after a person's decision lets the action
tool run, and that tool only asks the notifier (`agent.notify`) to run the approved action through the
one executor entry point, which executes at most once. The agent never imports the approval service or
the server: it reaches them through that notifier.

Everything is recorded on the `Investigation` row: messages, tool calls (args, results, durations),
usage, model, report, wall time, status (`done`, `awaiting_approval`, `failed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_ai import DeferredToolResults, ModelMessagesTypeAdapter, ToolDenied
from sqlalchemy import update

from firebreak.agent.agent_run import RunOutcome, _approval_calls, _dump_messages, _redact, _run_agent, make_llm
from firebreak.agent.agent_tools import RunRecorder, SubmitReportArgs, _fix_from_args, build_tools
from firebreak.agent.notify import get_notifier
from firebreak.agent.offline import ACTION_TOOL, OfflineInvestigator
from firebreak.agent.prompts import user_prompt
from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from firebreak.statuses import ApprovalStatus, Decision, InvestigationStatus

__all__ = [
    "InvestigationError",
    "RunRecorder",
    "SubmitReportArgs",
    "build_tools",
    "investigate",
    "make_llm",
    "queue_investigation",
    "resume",
]

log = logging.getLogger(__name__)


class InvestigationError(RuntimeError):
    """An investigation that could not run (unknown id, nothing to resume...), naming what is wrong."""


# ----------------------------------------------------------------------------------------------
# Public entry points


def queue_investigation(ctx: ToolContext, incident_id: str, *, not_before: datetime | None = None) -> str:
    """Queue one investigation (intake does this itself; the CLI and tests use this)."""
    now = ctx.clock.now()
    inv_id = f"inv-{uuid.uuid4().hex[:12]}"
    with ctx.db.session() as s:
        if s.get(Incident, incident_id) is None:
            raise InvestigationError(f"incident_id: no incident {incident_id}")
        s.add(
            Investigation(
                id=inv_id,
                incident_id=incident_id,
                status=InvestigationStatus.QUEUED,
                model=ctx.settings.model,
                queued_at=now,
                not_before=not_before or now,
                messages=[],
                tool_calls=[],
                usage={},
            )
        )
    return inv_id


def investigate(ctx: ToolContext, investigation_id: str, *, notify: bool = True) -> TriageReport:
    """Run the investigation, store its transcript and report, and (with `notify`) ask for approval of its
    fix; a durable workflow passes notify=False and asks in a step of its own."""
    with ctx.db.session() as s:
        inv = s.get(Investigation, investigation_id)
        if inv is None:
            raise InvestigationError(f"investigation_id: no investigation {investigation_id}")
        if inv.status in (InvestigationStatus.DONE, InvestigationStatus.AWAITING_APPROVAL) and inv.report:
            return TriageReport.model_validate(inv.report)
        incident_id = inv.incident_id
        now = ctx.clock.now()
        inv.status = InvestigationStatus.RUNNING
        inv.started_at = now
        inv.model = ctx.settings.model
    wall0 = time.perf_counter()
    try:
        report, outcome, rec, fallback_reason = _investigate(ctx, investigation_id, incident_id, now)
    except Exception as exc:
        log.exception("investigation %s failed", investigation_id)
        with ctx.db.session() as s:
            inv = s.get(Investigation, investigation_id)
            if inv is not None:
                inv.status = InvestigationStatus.FAILED
                inv.error = f"{type(exc).__name__}: {exc}"[:2000]
                inv.finished_at = ctx.clock.now()
                inv.wall_seconds = round(time.perf_counter() - wall0, 3)
        raise
    calls = _approval_calls(outcome.output)
    fix_call = calls[0] if calls else None
    if fix_call is not None:
        # What a person approves is exactly what the paused tool call will run.
        report.proposed_fix = _fix_from_args(fix_call.args_as_dict())
    elif report.proposed_fix is not None:
        report.notes.append("the proposed fix was not submitted for approval")
    report = TriageReport.model_validate(_redact(report.model_dump(mode="json")))
    status = InvestigationStatus.AWAITING_APPROVAL if fix_call is not None else InvestigationStatus.DONE
    wall = round(time.perf_counter() - wall0, 3)
    with ctx.db.session() as s:
        inv = s.get(Investigation, investigation_id)
        assert inv is not None
        inv.status = status
        inv.fallback = fallback_reason is not None
        inv.fallback_reason = fallback_reason
        inv.messages = _dump_messages(outcome.messages)
        inv.tool_calls = _redact(rec.tool_calls)
        inv.usage = {**outcome.usage, "pending_tool_call_ids": [c.tool_call_id for c in calls]}
        found = s.get(Incident, incident_id)
        if found is not None:  # the incident log holds the one severity and name; the report follows it
            from firebreak.agent.report_sync import align_report

            report = align_report(s, found, report, at=ctx.clock.now())
        inv.report = report.model_dump(mode="json")
        inv.finished_at = ctx.clock.now() if status == InvestigationStatus.DONE else None
        inv.wall_seconds = wall
        incident = s.get(Incident, incident_id)
        if incident is not None:
            incident.report = report.model_dump(mode="json")
            incident.updated_at = ctx.clock.now()
            from firebreak.memory.incident_log import record

            top = report.hypotheses[0] if report.hypotheses else None
            record(
                s,
                incident,
                at=ctx.clock.now(),
                actor=f"firebreak ({report.investigator})",
                kind="report",
                text=f"Triage report: {report.summary}"
                + (
                    f" Proposed fix (awaiting approval): {report.proposed_fix.describe()}."
                    if fix_call and report.proposed_fix
                    else ""
                ),
                new={"investigation_id": investigation_id, "top": top.suspect.model_dump() if top else None},
            )
    if notify and fix_call is not None and report.proposed_fix is not None:
        get_notifier().report_ready(ctx, investigation_id)
    return report


def _offline_run(
    ctx: ToolContext, investigation_id: str, incident_id: str, now: datetime, rec: RunRecorder
) -> RunOutcome:
    model = OfflineInvestigator(incident_id, now, update_minutes=ctx.settings.update_minutes).model()
    return _run_agent(ctx, model, rec, prompt=user_prompt(incident_id), llm=False)


def _investigate(
    ctx: ToolContext, investigation_id: str, incident_id: str, now: datetime
) -> tuple[TriageReport, RunOutcome, RunRecorder, str | None]:
    name = ctx.settings.model
    fallback_reason: str | None = None
    if name != "offline":
        rec = RunRecorder(investigation_id)
        try:
            outcome = _run_agent(ctx, make_llm(ctx), rec, prompt=user_prompt(incident_id), llm=True)
            if rec.report is None:
                raise InvestigationError("the model finished without submitting a report")
            if rec.report.proposed_fix is not None and not _approval_calls(outcome.output):
                # The model forgot to request approval: ask once more, same run.
                outcome = _run_agent(
                    ctx,
                    make_llm(ctx),
                    rec,
                    llm=True,
                    history=outcome.messages,
                    prompt="Now call request_action with the proposed fix from your report.",
                )
            report = _finish(rec.report, ctx, now, investigator=name, fallback=False, incident_id=incident_id)
            return report, outcome, rec, None
        except Exception as exc:  # noqa: BLE001 - any model failure falls back to the offline investigator
            fallback_reason = _reason(exc)
            log.warning("model %s failed (%s); using the offline investigator", name, fallback_reason)
            prior_calls = rec.tool_calls
    else:
        prior_calls = []
    rec = RunRecorder(investigation_id)
    outcome = _offline_run(ctx, investigation_id, incident_id, now, rec)
    if rec.report is None:
        raise InvestigationError("offline investigator produced no report")
    rec.tool_calls = [{**c, "phase": "failed-llm"} for c in prior_calls] + rec.tool_calls
    report = _finish(
        rec.report, ctx, now, investigator="offline", fallback=fallback_reason is not None, incident_id=incident_id
    )
    if fallback_reason:
        report.notes.append(f"fallback to the offline investigator: {fallback_reason}")
    return report, outcome, rec, fallback_reason


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "wall-time budget exhausted"
    text = f"{type(exc).__name__}: {exc}"
    return text[:500]


def _finish(
    report: TriageReport, ctx: ToolContext, now: datetime, *, investigator: str, fallback: bool, incident_id: str
) -> TriageReport:
    report = report.model_copy(deep=True)
    report.next_update_due = now + timedelta(minutes=ctx.settings.update_minutes)
    report.investigator = investigator
    report.fallback = fallback
    if report.proposed_fix is None and report.hypotheses and report.hypotheses[0].fix is not None:
        report.proposed_fix = report.hypotheses[0].fix
    if not report.internal_update or not report.customer_message:
        _fill_messages(ctx, report, now, incident_id)
    return report


def _fill_messages(ctx: ToolContext, report: TriageReport, now: datetime, incident_id: str) -> None:
    """A model may leave the messages out; draft them from the templates like the offline path does."""
    from firebreak.agent.triage.observe import Findings
    from firebreak.agent.triage.summary import render_messages

    incident: dict[str, Any] = {}
    with ctx.db.session() as s:
        inv = s.get(Incident, incident_id)
        if inv is not None:
            incident = {
                "id": inv.id,
                "title": inv.title,
                "services": list(inv.services or []),
                "status": inv.status,
                "started_at": inv.started_at.isoformat() if inv.started_at else None,
            }
    internal, customer = render_messages(
        report,
        Findings(now=now, incident=incident),
        str(incident.get("id", "")),
        str(incident.get("title", "incident")),
    )
    report.internal_update = report.internal_update or internal
    report.customer_message = report.customer_message or customer


def resume(ctx: ToolContext, approval_id: str, *, takeover: bool = False) -> str:
    """Continue the paused run after a person decided; safe to call twice (the action runs at most once).

    `takeover=True` (a recovered workflow) also continues a run left `resuming` by a process that died."""
    with ctx.db.session() as s:
        appr = s.get(Approval, approval_id)
        if appr is None:
            raise InvestigationError(f"approval_id: no approval {approval_id}")
        if appr.status == ApprovalStatus.PENDING and appr.decision is None:
            raise InvestigationError(f"approval_id: approval {approval_id} is still pending")
        approved = appr.decision == Decision.APPROVE
        decided_by = appr.decided_by or "someone"
        inv_id, call_id = appr.investigation_id, appr.tool_call_id
        if inv_id is None or call_id is None:
            raise InvestigationError(f"approval_id: approval {approval_id} is not tied to an agent run")
        inv = s.get(Investigation, inv_id)
        if inv is None:
            raise InvestigationError(f"approval_id: investigation {inv_id} is gone")
        resumable = [InvestigationStatus.AWAITING_APPROVAL] + ([InvestigationStatus.RESUMING] if takeover else [])
        if inv.status not in resumable:
            return str((inv.usage or {}).get("outcome") or f"investigation {inv_id} already {inv.status}")
        claimed = s.execute(
            update(Investigation)
            .where(Investigation.id == inv_id, Investigation.status.in_(resumable))
            .values(status=InvestigationStatus.RESUMING)
        )
        if getattr(claimed, "rowcount", 1) == 0:
            return f"investigation {inv_id} is being resumed elsewhere"
        stored = list(inv.messages or [])
        pending = list((inv.usage or {}).get("pending_tool_call_ids") or [call_id])
        model_name = inv.model
        was_fallback = inv.fallback
        incident_id = inv.incident_id
        prior_usage = dict(inv.usage or {})
    wall0 = time.perf_counter()
    rec = RunRecorder(inv_id, phase="resume")
    try:
        history = ModelMessagesTypeAdapter.validate_python(stored)
        approvals: dict[str, Any] = {}
        for cid in pending:
            if cid == call_id:
                approvals[cid] = True if approved else ToolDenied(f"Rejected by {decided_by}; nothing was executed.")
            else:
                approvals[cid] = ToolDenied("Only one action per investigation is requested; this one was not.")
        deferred = DeferredToolResults(approvals=approvals)
        use_llm = model_name != "offline" and not was_fallback
        outcome: RunOutcome | None = None
        if use_llm:
            try:
                outcome = _run_agent(ctx, make_llm(ctx), rec, prompt=None, history=history, deferred=deferred, llm=True)
            except Exception as exc:  # noqa: BLE001 - close the transcript offline instead
                log.warning("model failed while resuming %s: %s", inv_id, exc)
        if outcome is None:
            model = OfflineInvestigator(incident_id, ctx.clock.now()).model()
            outcome = _run_agent(ctx, model, rec, prompt=None, history=history, deferred=deferred, llm=False)
        text = outcome.output if isinstance(outcome.output, str) else "Action requested again; see approvals."
    except (ValidationError, Exception) as exc:
        with ctx.db.session() as s:
            inv = s.get(Investigation, inv_id)
            if inv is not None:
                inv.status = InvestigationStatus.FAILED
                inv.error = f"resume failed: {type(exc).__name__}: {exc}"[:2000]
                inv.finished_at = ctx.clock.now()
        raise
    action_result = next((c["result"] for c in rec.tool_calls if c["name"] == ACTION_TOOL), None)
    with ctx.db.session() as s:
        inv = s.get(Investigation, inv_id)
        assert inv is not None
        inv.messages = _dump_messages(outcome.messages)
        inv.tool_calls = list(inv.tool_calls or []) + _redact(rec.tool_calls)
        usage = {k: prior_usage.get(k, 0) + outcome.usage.get(k, 0) for k in outcome.usage}
        inv.usage = {
            **prior_usage,
            **usage,
            "outcome": text,
            "approved": approved,
            "approval_id": approval_id,
            "action_result": action_result,
            "pending_tool_call_ids": [],
        }
        inv.status = InvestigationStatus.DONE
        inv.finished_at = ctx.clock.now()
        inv.wall_seconds = round((inv.wall_seconds or 0.0) + time.perf_counter() - wall0, 3)
    return str(text)
