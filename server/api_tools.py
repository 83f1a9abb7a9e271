"""The tool-use API: every registry tool over HTTP, through `tools.registry.call_tool` like the agent.

One POST route per tool is generated from the registry, so OpenAPI carries each tool's own request
and response schema; a generic route after them answers unknown names with 404. Action tools (those
that change production) are listed but refused here: they run only after a person approves them.
"""

import inspect
import logging
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from firebreak.context import ToolContext
from firebreak.redact import redact_text
from firebreak.server.auth import require_api_token
from firebreak.server.deps import Ctx, get_ctx
from firebreak.tools.registry import REGISTRY, ToolError, ToolSpec, call_tool, get_tool, load_tools

log = logging.getLogger(__name__)


class ToolInfo(BaseModel):
    name: str
    family: str
    kind: Literal["query", "action"]
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ToolList(BaseModel):
    tools: list[ToolInfo]


class ErrorOut(BaseModel):
    detail: str


def _load_web_user(ctx: Ctx, request: Request) -> None:
    """Let a signed-in web user through `require_api_token` (it reads request.state.web_user)."""
    from firebreak.server.web import current_session

    current_session(request, ctx)


def tool_info(spec: ToolSpec) -> ToolInfo:
    return ToolInfo(name=spec.name, family=spec.family, kind=spec.kind, description=spec.description,
                    input_schema=spec.input_schema(), output_schema=spec.output_schema())


def run_tool(ctx: ToolContext, name: str, args: dict[str, Any] | BaseModel) -> JSONResponse:
    """Call one tool and turn its failures into HTTP answers with a `detail` (never a traceback)."""
    try:
        spec = get_tool(name)
    except ToolError as exc:
        raise HTTPException(exc.status, detail=exc.message) from None
    if spec.kind == "action":
        raise HTTPException(403, detail=f"{name} is an action: it runs only after approval, not through the API")
    try:
        out = call_tool(ctx, name, args)
    except ToolError as exc:
        raise HTTPException(exc.status, detail=exc.message) from None
    except ValidationError as exc:  # a tool validating its own sub-inputs
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise HTTPException(422, detail=f"{name}: {loc}: {err['msg']}") from None
    except Exception as exc:  # a backend failure is not the caller's fault: say so, keep the server up
        log.exception("tool %s failed", name)
        raise HTTPException(502, detail=redact_text(f"{name} failed: {type(exc).__name__}: {exc}")) from None
    return JSONResponse(out)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "unknown tool, or an id the tool cannot find"},
    422: {"model": ErrorOut, "description": "bad arguments; `detail` names the field"},
    502: {"model": ErrorOut, "description": "the backend behind the tool failed"},
}


def _endpoint_for(spec: ToolSpec) -> Any:
    """A route function whose body parameter is typed with the tool's input model (for OpenAPI)."""

    def endpoint(ctx: ToolContext, args: BaseModel | None) -> JSONResponse:
        return run_tool(ctx, spec.name, args if args is not None else {})

    required = bool(spec.input_model.model_json_schema().get("required"))
    body_default = Body(...) if required else Body(None)
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, default=Depends(get_ctx), annotation=ToolContext),
        inspect.Parameter("args", inspect.Parameter.KEYWORD_ONLY, default=body_default,
                          annotation=spec.input_model if required else spec.input_model | None),
    ])
    endpoint.__name__ = f"call_{spec.name}"
    return endpoint


def build_router() -> APIRouter:
    """Routes for the tools registered now (the registry is loaded first), then the generic fallback."""
    r = APIRouter(prefix="/api/tools", dependencies=[Depends(_load_web_user), Depends(require_api_token)])

    @r.get("", response_model=ToolList, tags=["tools"], summary="List every tool with its JSON schemas",
           responses={401: _ERRORS[401]})
    def list_tools() -> ToolList:
        load_tools()
        return ToolList(tools=[tool_info(s) for s in sorted(REGISTRY.values(), key=lambda s: s.name)])

    @r.get("/{name}", response_model=ToolInfo, tags=["tools"], summary="One tool with its JSON schemas",
           responses={401: _ERRORS[401], 404: _ERRORS[404]})
    def describe_tool(name: str) -> ToolInfo:
        try:
            return tool_info(get_tool(name))
        except ToolError as exc:
            raise HTTPException(exc.status, detail=exc.message) from None

    for spec in sorted(load_tools().values(), key=lambda s: s.name):
        if spec.kind == "action":
            continue
        first_line = spec.description.splitlines()[0] if spec.description else spec.name
        r.add_api_route(
            f"/{spec.name}", _endpoint_for(spec), methods=["POST"], response_model=spec.output_model,
            tags=["tools", spec.family], summary=first_line[:120], description=spec.description,
            operation_id=f"call_{spec.name}", responses=_ERRORS,
        )

    @r.post("/{name}", tags=["tools"], summary="Run a tool by name (tools registered after start-up)",
            responses=_ERRORS)
    def call_any(ctx: Ctx, name: str, args: dict[str, Any] | None = Body(None)) -> JSONResponse:
        return run_tool(ctx, name, args or {})

    return r


router = build_router()
