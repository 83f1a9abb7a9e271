"""One registry of tools: the agent, the HTTP tool API, the MCP server and the CLI all read it.

A tool is one typed function `fn(ctx: ToolContext, args: InModel) -> OutModel` whose docstring tells
a model when to use it. Register it with `@tool("family")`. Errors a caller can act on are raised
as `ToolError`; outputs are redacted before anyone sees them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from firebreak.context import ToolContext
from firebreak.steps import StepKind, canonical_json, current_runner

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)



class ToolError(Exception):
    """A failure the caller can read and act on (bad range, unknown service, backend said no)."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


@dataclass(frozen=True)
class ToolSpec:
    name: str
    family: str
    kind: Literal["query", "action"]
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    fn: Callable[[ToolContext, Any], BaseModel]

    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()


REGISTRY: dict[str, ToolSpec] = {}


def tool(
    family: str, *, kind: Literal["query", "action"] = "query", name: str | None = None
) -> Callable[[Callable[[ToolContext, In], Out]], Callable[[ToolContext, In], Out]]:
    """Register `fn(ctx, args) -> result`; input and output models are read from its type hints."""

    def register(fn: Callable[[ToolContext, In], Out]) -> Callable[[ToolContext, In], Out]:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) != 2:
            raise TypeError(f"tool {fn.__name__} must take (ctx, args)")
        in_model, out_model = hints[params[1]], hints["return"]
        spec = ToolSpec(
            name=name or fn.__name__,
            family=family,
            kind=kind,
            description=inspect.cleandoc(fn.__doc__ or "").strip(),
            input_model=in_model,
            output_model=out_model,
            fn=fn,
        )
        if spec.name in REGISTRY and REGISTRY[spec.name].fn is not fn:
            raise ValueError(f"tool {spec.name} registered twice")
        REGISTRY[spec.name] = spec
        return fn

    return register


def load_tools() -> dict[str, ToolSpec]:
    """Import every tool module once (tools.catalog names them) so the registry is complete."""
    import firebreak.tools.catalog  # noqa: F401  (tool modules import this registry: the catalog cannot be top-level)

    return REGISTRY


def get_tool(name: str) -> ToolSpec:
    load_tools()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ToolError(f"unknown tool {name!r}", status=404) from None


def redact_output(value: Any) -> Any:
    from firebreak.redact import redact_obj

    return redact_obj(value)


def call_tool(ctx: ToolContext, name: str, args: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """Validate, run and redact one tool call: the single code path for agent, API, MCP and CLI.

    Raises ToolError (with status 422 and the field for bad arguments). When a durable run set a step
    runner (`firebreak.steps`), the validated call runs as one step: its redacted output is recorded and,
    after a crash, replayed instead of calling the tool again.
    """
    spec = get_tool(name)
    try:
        parsed = args if isinstance(args, spec.input_model) else spec.input_model.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ToolError(f"{name}: {loc}: {msg}" if loc else f"{name}: {msg}", status=422, field=loc or None) from None
    runner = current_runner()
    if runner is None:
        return _run(ctx, spec, parsed)

    def step() -> dict[str, Any]:
        # A ToolError is an answer to record and replay like any output (the model saw it); it crosses
        # the step as data, already redacted.
        try:
            return {"ok": _run(ctx, spec, parsed)}
        except ToolError as exc:
            return {"error": {"message": exc.message, "status": exc.status, "field": exc.field}}

    recorded = runner.run(StepKind.TOOL, name, canonical_json(parsed.model_dump(mode="json")), step)
    if "error" in recorded:
        err = recorded["error"]
        raise ToolError(err["message"], status=err["status"], field=err["field"])
    return recorded["ok"]  # type: ignore[no-any-return]


def _run(ctx: ToolContext, spec: ToolSpec, parsed: BaseModel) -> dict[str, Any]:
    """Run one validated call and redact its output (and its error text)."""
    started = time.perf_counter()
    try:
        result = spec.fn(ctx, parsed)
    except ToolError as exc:  # backend errors quote URLs and answers: redact them like outputs
        from firebreak.redact import redact_text

        safe = redact_text(exc.message)
        if safe == exc.message:
            raise
        raise ToolError(safe, status=exc.status, field=exc.field) from None
    out = result.model_dump(mode="json")
    out = redact_output(out)
    _ = time.perf_counter() - started
    return out  # type: ignore[no-any-return]
