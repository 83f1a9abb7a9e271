"""`rank_suspects`: the triage stages as one tool for the LLM path, so a model starts from the evidence
table (suspects, fitted probability, the features that weighed most, the policy's fix) rather than from
raw logs. It gathers the evidence with the offline investigator's plan through the same registry tools
(validated and redacted by `tools.registry.call_tool`), then ranks."""

from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from pydantic_ai import RunContext, Tool
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo

from firebreak.agent.triage.observe import Findings, findings_from
from firebreak.agent.triage.pipeline import blind_spots, rank_suspects, table
from firebreak.context import ToolContext
from firebreak.tools.registry import ToolError, call_tool, load_tools

TOOL_NAME = "rank_suspects"
MAX_ROUNDS = 8


def gather(ctx: ToolContext, incident_id: str, now: datetime) -> Findings:
    """Run the offline plan's query tools (no report, no action) and fold their answers into Findings."""
    from firebreak.agent.offline import OfflineInvestigator, collect

    names = [s.name for s in load_tools().values() if s.kind == "query"]
    info = cast(AgentInfo, SimpleNamespace(function_tools=[SimpleNamespace(name=n) for n in names]))
    planner = OfflineInvestigator(incident_id, now)
    messages: list[ModelMessage] = []
    for _ in range(MAX_ROUNDS):
        resp = planner(messages, info)
        calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
        if not calls:
            break
        messages.append(resp)
        returns = []
        for p in calls:
            try:
                out: Any = call_tool(ctx, p.tool_name, p.args_as_dict())
            except ToolError as exc:
                out = {"error": exc.message}
            returns.append(ToolReturnPart(p.tool_name, out, tool_call_id=p.tool_call_id))
        messages.append(ModelRequest(parts=returns))
    return findings_from(collect(messages), now)


def rank_for(ctx: ToolContext, incident_id: str) -> dict[str, Any]:
    f = gather(ctx, incident_id, ctx.clock.now())
    tctx, ranked = rank_suspects(f)
    return {"suspects": table(tctx, ranked), "could_not_see": blind_spots(tctx)}


def rank_suspects_tool(rec: Any) -> Tool[ToolContext]:
    """The tool as the investigator registers it; `rec` records the call in the transcript."""

    def rank_suspects(rc: RunContext[ToolContext], incident_id: str) -> dict[str, Any]:
        """Start here. Gathers changes, metric anomalies, new log templates, Sentry issues, flags,
        dependencies and traces for the incident, and returns the ranked suspects: each with kind,
        service and ref, a fitted probability, the evidence features that weighed most, what the tools
        showed, and the fix the policy proposes. Also says what could not be seen."""
        started = time.perf_counter()
        try:
            out = rank_for(rc.deps, incident_id)
        except ToolError as exc:
            out = {"error": exc.message}
        rec.add(TOOL_NAME, rc.tool_call_id, {"incident_id": incident_id}, out, started)
        return out

    return Tool(rank_suspects, name=TOOL_NAME, max_retries=1)
