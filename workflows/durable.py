"""The agent run as a DBOS child workflow whose tool calls, model requests and clock reads are steps.

Why: before, the whole agent run was ONE step, so kill -9 in the middle of an investigation reran every
tool call and every model request. Now `agent_workflow` runs the agent in workflow code with a
`DBOSStepRunner` set through the core seam (`firebreak.steps`): `tools.registry.call_tool` runs each
validated call as a step (the redacted output is what DBOS records), an LLM's `request` is a step
(`DurableModel`), and so is every read of the clock in workflow code (`StepClock`): the offline
investigator derives its tools' time ranges from "now", so a replay must see the same "now" to make the
same calls. On recovery DBOS replays the recorded outputs in order and the run continues live from the
first step it has no record of.

Order is what DBOS matches a replay on, so the run's tool calls are made one at a time
(pydantic-ai's `sequential` mode): parallel calls run in worker threads that reach their steps in no
fixed order. Each step's name carries the tool (or model) name and its output carries a digest of its
inputs; a replay that meets another call than the one recorded fails loudly instead of returning
another call's answer.

A child workflow (not steps inline in the investigation workflow) because the agent's number of steps
depends on the database: a run that finished before the crash is not run again (`investigate` returns
the stored report), and the steps after it in the parent would otherwise shift position.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from dbos import DBOS
from pydantic_ai import Agent, ModelMessagesTypeAdapter
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from sqlalchemy import event
from sqlalchemy.orm import Session

from firebreak.clock import Clock
from firebreak.context import ToolContext
from firebreak.steps import StepKind, canonical_json, digest, use_runner

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepReplayMismatch(RuntimeError):
    """A recovered run asked for another call than the one recorded at this position."""


def in_workflow_code() -> bool:
    """Inside a DBOS workflow's own code (not inside one of its steps, not outside any workflow)."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class DBOSStepRunner:
    """`firebreak.steps.StepRunner` on DBOS: each unit of work is `DBOS.run_step` (or its async twin).

    Counts what ran live and what was replayed, for the log and the tests."""

    def __init__(self) -> None:
        self.ran: dict[str, int] = {}
        self.replayed: dict[str, int] = {}
        self.direct = 0  # work that could not be a step (outside workflow code): ran, not recorded
        self._lock = threading.Lock()  # DBOS numbers steps from a counter shared by the run's threads

    def _note(self, executed: bool, kind: StepKind) -> None:
        book = self.ran if executed else self.replayed
        book[kind] = book.get(kind, 0) + 1

    @staticmethod
    def _check(kind: StepKind, name: str, key: str, recorded: Any) -> Any:
        if not isinstance(recorded, dict) or recorded.get("key") != key:
            got = recorded.get("key") if isinstance(recorded, dict) else type(recorded).__name__
            raise StepReplayMismatch(f"{kind} step {name}: recorded for inputs {got}, asked for {key}")
        return recorded["out"]

    def run(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], T]) -> T:
        if not in_workflow_code() or _loop_running():  # DBOS's sync API refuses a thread with a loop
            self.direct += 1
            return fn()
        key = digest(args_json)
        executed: list[bool] = []

        def step() -> dict[str, Any]:
            executed.append(True)
            return {"key": key, "out": fn()}

        with self._lock:
            recorded = DBOS.run_step({"name": f"firebreak.{kind}.{name}"}, step)
        self._note(bool(executed), kind)
        return self._check(kind, name, key, recorded)  # type: ignore[no-any-return]

    async def arun(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], Awaitable[T]]) -> T:
        if not in_workflow_code():
            self.direct += 1
            return await fn()
        key = digest(args_json)
        executed: list[bool] = []

        async def step() -> dict[str, Any]:
            executed.append(True)
            return {"key": key, "out": await fn()}

        recorded = await DBOS.run_step_async({"name": f"firebreak.{kind}.{name}"}, step)
        self._note(bool(executed), kind)
        return self._check(kind, name, key, recorded)  # type: ignore[no-any-return]

    def wrap_model(self, model: Any) -> Any:
        if isinstance(model, DurableModel):
            return model
        return DurableModel(model, self)


def model_request_key(messages: list[ModelMessage]) -> str:
    """What a model request depends on: each message's parts (kind, tool, call id, args, content).

    Timestamps, run ids and usage are left out: they differ between the first run and a replay even
    when the conversation is the same."""
    keep = ("part_kind", "tool_name", "tool_call_id", "args", "content")
    shape = [
        [m.get("kind"), [{k: p.get(k) for k in keep if k in p} for p in m.get("parts", [])]]
        for m in ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    ]
    return canonical_json(shape)


class DurableModel(WrapperModel):
    """A pydantic-ai model whose every `request` is a step: a recovered run gets the recorded answer.

    Streaming is not wrapped (the investigator calls `agent.run`, which does not stream)."""

    def __init__(self, wrapped: Any, runner: DBOSStepRunner) -> None:
        super().__init__(wrapped)
        self._runner = runner

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        return await self._runner.arun(
            StepKind.MODEL, self.wrapped.model_name, model_request_key(messages),
            lambda: self.wrapped.request(messages, model_settings, model_request_parameters),
        )


_writes = threading.local()  # ids of this thread's sessions holding flushed, uncommitted writes


def _pending(session: Session) -> set[int]:
    ids: set[int] | None = getattr(_writes, "ids", None)
    if ids is None:
        ids = _writes.ids = set()
    return ids


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: Any) -> None:
    _pending(session).add(id(session))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _ended(session: Session) -> None:
    _pending(session).discard(id(session))


def writing_here() -> bool:
    """True while this thread holds a write transaction on a database (flushed, not yet committed)."""
    return bool(getattr(_writes, "ids", None))


class StepClock:
    """A clock whose reads in workflow code are steps (replayed after a crash); elsewhere the base clock.

    Not a step: a read made while this thread holds a write transaction. That read only stamps the write
    (a finish time, a timeline entry), and recording it would need a second writer while the first waits
    for it: SQLite has one writer, so the two would wait on each other forever. Should such a read ever
    feed a tool call, the replay check names the call that differs."""

    def __init__(self, base: Clock, runner: DBOSStepRunner) -> None:
        self.base = base
        self._runner = runner

    def now(self) -> datetime:
        if not in_workflow_code() or writing_here():
            return self.base.now()
        iso = self._runner.run(StepKind.CLOCK, "now", "", lambda: self.base.now().isoformat())
        return datetime.fromisoformat(iso)

    def __getattr__(self, name: str) -> Any:  # FixedClock.set/advance in tests reach the base clock
        return getattr(self.base, name)


def durable_context(ctx: ToolContext, runner: DBOSStepRunner) -> ToolContext:
    """ctx with a step clock; database, stores and their lock are shared with ctx (not reopened)."""
    _ = ctx.db  # open it once here, so the copy shares it
    return dataclasses.replace(ctx, clock=StepClock(ctx.clock, runner))


def run_agent(ctx: ToolContext, investigation_id: str) -> tuple[bool, DBOSStepRunner]:
    """Run the investigator with its work checkpointed (must be called from workflow code)."""
    from firebreak.agent.investigator import investigate

    runner = DBOSStepRunner()
    durable = durable_context(ctx, runner)
    try:
        with use_runner(runner), Agent.parallel_tool_call_execution_mode("sequential"):
            investigate(durable, investigation_id, notify=False)
    except Exception:  # noqa: BLE001 - recorded on the row as failed; a follow-up alert re-queues it
        log.exception("investigation %s failed", investigation_id)
        return False, runner
    finally:
        if runner.replayed:
            log.warning("investigation %s recovered: replayed %s, ran %s", investigation_id, runner.replayed,
                        runner.ran)
    return True, runner
