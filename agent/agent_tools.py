"""The agent's tools for one run: every registry query tool (recorded with its args, result and time),
`submit_report` (the structured triage report) and `request_action` (the proposed fix: approval-required
and deferred; it only asks the notifier to run the approved action, at most once)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_ai import ModelRetry, RunContext, Tool
from sqlalchemy import select

from firebreak.agent.actions import ProposedFix
from firebreak.agent.notify import get_notifier
from firebreak.agent.offline import ACTION_TOOL, SUBMIT_TOOL
from firebreak.agent.report import TriageReport
from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.statuses import Decision
from firebreak.tools.registry import ToolError, ToolSpec, call_tool, load_tools

MAX_RESULT_CHARS = 20_000
_SCHEMAS: dict[str, dict[str, Any]] = {}  # input JSON schemas, computed once per tool


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
