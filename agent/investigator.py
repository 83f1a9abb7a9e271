"""The investigator: one pydantic-ai agent run per incident, offline by default, any OpenAI-compatible LLM.

The agent (deps = ToolContext) sees every registry query tool with its name, docstring and input
schema, plus two of its own: `submit_report` (the structured triage report) and `request_action`
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
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessagesTypeAdapter,
    ModelRetry,
    RunContext,
    Tool,
    ToolDenied,
    UsageLimits,
)
from pydantic_ai.messages import ModelMessage, ToolCallPart
from sqlalchemy import select, update

from firebreak.agent.actions import ProposedFix
from firebreak.agent.notify import get_notifier
from firebreak.agent.offline import ACTION_TOOL, SUBMIT_TOOL, OfflineInvestigator
from firebreak.agent.prompts import SYSTEM_PROMPT, user_prompt
from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from firebreak.statuses import ApprovalStatus, Decision, InvestigationStatus
from firebreak.tools.registry import ToolError, ToolSpec, call_tool, load_tools

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RESULT_CHARS = 20_000
OFFLINE_REQUEST_LIMIT = 25
_SCHEMAS: dict[str, dict[str, Any]] = {}  # input JSON schemas, computed once per tool


class InvestigationError(RuntimeError):
    """An investigation that could not run (unknown id, nothing to resume...), naming what is wrong."""


@dataclass
class RunRecorder:
    """Per-run state shared by the tool closures: timings, results, the submitted report."""

    investigation_id: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    report: TriageReport | None = None
    phase: str = "investigate"

    def add(
        self,
        name: str,
        call_id: str | None,
        args: dict[str, Any],
        result: Any,
        started: float,
        error: str | None = None,
    ) -> None:
        text = json.dumps(result, default=str)
        self.tool_calls.append(
            {
                "id": call_id,
                "name": name,
                "args": args,
                "phase": self.phase,
                "result": result
                if len(text) <= MAX_RESULT_CHARS
                else {"truncated": True, "preview": text[:MAX_RESULT_CHARS]},
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "error": error,
            }
        )


class SubmitReportArgs(BaseModel):
    """The structured triage report (what the agent concluded)."""

    report: TriageReport


# ----------------------------------------------------------------------------------------------
# Tools


def _query_tool(spec: ToolSpec, rec: RunRecorder) -> Tool[ToolContext]:
    def run(rc: RunContext[ToolContext], **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            result = call_tool(rc.deps, spec.name, kwargs)
        except ToolError as exc:
            out = {"error": exc.message}
            rec.add(spec.name, rc.tool_call_id, kwargs, out, started, error=exc.message)
            return out
        except Exception as exc:  # noqa: BLE001 - a broken backend must not end the investigation
            msg = f"{type(exc).__name__}: {exc}"[:500]
            out = {"error": f"tool failed: {msg}"}
            rec.add(spec.name, rc.tool_call_id, kwargs, out, started, error=msg)
            return out
        rec.add(spec.name, rc.tool_call_id, kwargs, result, started)
        return result

    schema = _SCHEMAS.get(spec.name)
    if schema is None:
        schema = _SCHEMAS[spec.name] = spec.input_schema()
    return Tool.from_schema(
        run, name=spec.name, description=spec.description or spec.name, json_schema=schema, takes_ctx=True
    )


def _fix_from_args(args: dict[str, Any]) -> ProposedFix:
    data = args.get("fix", args) if isinstance(args, dict) else args
    fix = ProposedFix.model_validate(data)
    fix.validate_catalog()
    return fix


def build_tools(rec: RunRecorder) -> list[Tool[ToolContext]]:
    """Registry query tools plus submit_report and the approval-required request_action."""
    tools: list[Tool[ToolContext]] = [
        _query_tool(spec, rec) for spec in sorted(load_tools().values(), key=lambda s: s.name) if spec.kind == "query"
    ]

    def submit_report(rc: RunContext[ToolContext], report: TriageReport) -> dict[str, Any]:
        """Submit the triage report once the evidence is gathered: summary, severity and why, user impact,
        symptoms, ranked hypotheses with suspects {kind, service, ref} and evidence, and one proposed_fix
        from the action catalog. Then call request_action with the same fix."""
        started = time.perf_counter()
        if report.proposed_fix is not None:
            try:
                report.proposed_fix.validate_catalog()
            except ValueError as exc:
                raise ModelRetry(f"proposed_fix: {exc}") from None
        rec.report = report
        out = {
            "status": "accepted",
            "next": "call request_action with the proposed fix" if report.proposed_fix else "finish",
        }
        rec.add(SUBMIT_TOOL, rc.tool_call_id, {"report": report.model_dump(mode="json")}, out, started)
        return out

    def check_fix(rc: RunContext[ToolContext], fix: ProposedFix) -> None:
        try:
            fix.validate_catalog()
        except ValueError as exc:
            raise ModelRetry(str(exc)) from None

    def request_action(rc: RunContext[ToolContext], fix: ProposedFix) -> dict[str, Any]:
        """Ask a person to approve the proposed fix (one action from the catalog with its parameters,
        rationale, risk and undo). The run pauses here; the action runs only after an approval."""
        started = time.perf_counter()
        out = _execute_approved(rc.deps, rec.investigation_id, rc.tool_call_id)
        rec.add(ACTION_TOOL, rc.tool_call_id, fix.model_dump(mode="json"), out, started)
        return out

    from firebreak.agent.triage.tool import rank_suspects_tool

    tools.append(rank_suspects_tool(rec))  # the evidence table: suspects, features, fitted ranking
    tools.append(Tool(submit_report, max_retries=2))
    tools.append(Tool(request_action, requires_approval=True, args_validator=check_fix, max_retries=2))
    return tools


def _execute_approved(ctx: ToolContext, investigation_id: str, tool_call_id: str | None) -> dict[str, Any]:
    """Runs only after approval: find the Approval row for this call and have it executed (once)."""
    with ctx.db.session() as s:
        row = s.scalars(
            select(Approval).where(Approval.investigation_id == investigation_id, Approval.tool_call_id == tool_call_id)
        ).first()
        approval_id = row.id if row else None
        status = row.status if row else None
        decision = row.decision if row else None
    if approval_id is None:
        return {"status": "failed", "detail": "no approval record for this action; nothing executed"}
    if decision != Decision.APPROVE:
        return {"status": "refused", "detail": f"approval {approval_id} is {status}; nothing executed"}
    return get_notifier().run_approved(ctx, approval_id)


# ----------------------------------------------------------------------------------------------
# Models and running


def make_llm(ctx: ToolContext) -> Any:
    """The configured LLM: `openai:<name>` uses the real openai client, honouring the base URL."""
    name = ctx.settings.model
    if name.startswith("openai:"):
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        key = ctx.settings.openai_api_key.get_secret_value() if ctx.settings.openai_api_key else None
        provider = OpenAIProvider(base_url=ctx.settings.openai_base_url, api_key=key or "not-set")
        return OpenAIChatModel(name.split(":", 1)[1], provider=provider)
    return name  # any other pydantic-ai model string


def _run_coro(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="firebreak-agent")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _agent(model: Any, tools: list[Tool[ToolContext]]) -> Agent[ToolContext, Any]:
    return Agent(
        model,
        deps_type=ToolContext,
        tools=tools,
        instructions=SYSTEM_PROMPT,
        output_type=[str, DeferredToolRequests],
        retries=2,
    )


@dataclass
class RunOutcome:
    output: Any
    messages: list[ModelMessage]
    usage: dict[str, Any]


def _run_agent(
    ctx: ToolContext,
    model: Any,
    rec: RunRecorder,
    *,
    prompt: str | None,
    history: list[ModelMessage] | None = None,
    deferred: DeferredToolResults | None = None,
    llm: bool,
) -> RunOutcome:
    s = ctx.settings
    if llm:
        limits = UsageLimits(
            request_limit=s.max_tool_calls + 10, tool_calls_limit=s.max_tool_calls, total_tokens_limit=s.max_tokens
        )
    else:
        # The offline investigator's plan is fixed and small; budgets are for models that can wander.
        limits = UsageLimits(request_limit=OFFLINE_REQUEST_LIMIT, tool_calls_limit=None)
    agent = _agent(model, build_tools(rec))

    async def go() -> Any:
        run = agent.run(prompt, deps=ctx, message_history=history, deferred_tool_results=deferred, usage_limits=limits)
        # The wall-time budget bounds a model; the offline fallback must finish even on a loaded machine.
        return await asyncio.wait_for(run, timeout=s.max_wall_seconds) if llm else await run

    result = _run_coro(go)
    u = result.usage
    usage = {
        "requests": u.requests,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "tool_calls": u.tool_calls,
    }
    return RunOutcome(result.output, list(result.all_messages()), usage)


def _dump_messages(messages: list[ModelMessage]) -> list[Any]:
    data = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return _redact(data)  # type: ignore[no-any-return]


def _redact(value: Any) -> Any:
    from firebreak.redact import redact_obj

    return redact_obj(value)


def _approval_calls(output: Any) -> list[ToolCallPart]:
    if isinstance(output, DeferredToolRequests):
        return [c for c in output.approvals if c.tool_name == ACTION_TOOL]
    return []


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
