"""Durable steps seam: tool calls and model requests can be checkpointed by whoever runs the agent.

Why a seam in the core: `tools.registry.call_tool` (every tool call of the agent, the HTTP API, the CLI
and MCP) and the agent's model live below `workflows/`, which owns the durable engine (DBOS). A layer
may not import upward, so the engine installs a `StepRunner` in a ContextVar for the duration of one
durable agent run, and the lower layers ask this module to run their work through it. With no runner
set (HTTP, CLI, MCP, drills in process), nothing changes: the work runs directly.

A ContextVar rather than a global because one process runs several investigations at once, each in
its own workflow; asyncio tasks and the worker threads pydantic-ai runs sync tools in (anyio's
`to_thread.run_sync`) copy the caller's context, so the runner set by a workflow reaches its tools.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class StepKind(StrEnum):
    """What a step wraps; part of its recorded name, so a replay that meets another kind fails loudly."""

    TOOL = "tool"
    MODEL = "model"
    CLOCK = "clock"


class StepRunner(Protocol):
    """Runs one unit of outside work so that it is recorded once and replayed after a crash.

    `args_json` is the canonical JSON of the step's inputs: a runner records it (or its digest) with the
    output and refuses to replay an output recorded for other inputs."""

    def run(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], T]) -> T: ...

    async def arun(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], Awaitable[T]]) -> T: ...

    def wrap_model(self, model: Any) -> Any: ...


_runner: ContextVar[StepRunner | None] = ContextVar("firebreak_step_runner", default=None)


def current_runner() -> StepRunner | None:
    return _runner.get()


@contextmanager
def use_runner(runner: StepRunner | None) -> Iterator[None]:
    """Run the enclosed code (one agent run) with `runner` checkpointing its tool calls and model requests."""
    token = _runner.set(runner)
    try:
        yield
    finally:
        _runner.reset(token)


def canonical_json(value: Any) -> str:
    """Stable JSON of a step's inputs (sorted keys, no spaces): the same call gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(args_json: str) -> str:
    return hashlib.sha256(args_json.encode()).hexdigest()[:16]


def run_step(kind: StepKind, name: str, args_json: str, fn: Callable[[], T]) -> T:
    """`fn()` through the current runner, or directly when there is none."""
    runner = _runner.get()
    if runner is None:
        return fn()
    return runner.run(kind, name, args_json, fn)


def wrap_model(model: Any) -> Any:
    """The agent's model, wrapped so that each request is a step when a runner is set (else unchanged).

    The agent calls this on the model it builds (`make_llm`); the runner decides how (for DBOS, a
    pydantic-ai WrapperModel whose `request` is a DBOS step)."""
    runner = _runner.get()
    if runner is None:
        return model
    return runner.wrap_model(model)
