"""Running the pydantic-ai agent: the configured model, usage limits (a model gets budgets; the offline
investigator's fixed plan does not), a coroutine run from sync code, and what a run leaves behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessagesTypeAdapter,
    Tool,
    UsageLimits,
)
from pydantic_ai.messages import ModelMessage, ToolCallPart

from firebreak.agent.agent_tools import RunRecorder, build_tools
from firebreak.agent.offline import ACTION_TOOL
from firebreak.agent.prompts import SYSTEM_PROMPT
from firebreak.context import ToolContext

T = TypeVar("T")
OFFLINE_REQUEST_LIMIT = 25


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
