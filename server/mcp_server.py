"""`firebreak mcp`: the registry's query tools over the Model Context Protocol (stdio).

Other agents get the same tools, schemas and redaction as Firebreak's own investigator: every call
goes through `tools.registry.call_tool`. Action tools are not offered: production changes only run
after a person approves them.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer

from firebreak.context import ToolContext

log = logging.getLogger(__name__)

SERVER_NAME = "firebreak"
INSTRUCTIONS = (
    "Firebreak's incident-investigation tools: logs, metrics, recent changes, feature flags, Sentry issues, "
    "the incident log and memory of past incidents. Read-only; times are ISO 8601 UTC."
)


def build_server(ctx: ToolContext) -> Any:
    """A low-level MCP Server whose tools are the registry's query tools, with their JSON schemas."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from firebreak import __version__
    from firebreak.redact import redact_text
    from firebreak.tools.registry import ToolError, call_tool, get_tool, load_tools

    def query_tools() -> list[Any]:
        return sorted((s for s in load_tools().values() if s.kind == "query"), key=lambda s: s.name)

    async def list_tools(_rctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=s.name, description=s.description, input_schema=s.input_schema(),
                       output_schema=s.output_schema())
            for s in query_tools()
        ])

    def error(text: str) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)

    async def call(_rctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        try:
            spec = get_tool(name)
        except ToolError as exc:
            return error(exc.message)
        if spec.kind != "query":
            return error(f"{name} is an action: it runs only after a person approves it in Firebreak")
        try:
            out = await anyio.to_thread.run_sync(call_tool, ctx, name, dict(params.arguments or {}))
        except ToolError as exc:
            return error(exc.message)
        except Exception as exc:  # a backend failure: tell the calling agent, keep serving
            log.exception("tool %s failed", name)
            return error(redact_text(f"{name} failed: {type(exc).__name__}: {exc}"))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(out, ensure_ascii=False))],
            structured_content=out,
        )

    return Server(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call)


async def serve_stdio(ctx: ToolContext) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(ctx)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def mcp() -> None:
    """Serve Firebreak's query tools to other agents over MCP on stdin/stdout."""
    import anyio

    from firebreak.context import default_context

    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ctx = default_context()
    try:
        anyio.run(serve_stdio, ctx)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        ctx.close()
