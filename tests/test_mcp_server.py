"""`firebreak mcp`: the registry's tools over MCP, in process and over stdio with the mcp client."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from firebreak.context import ToolContext
from firebreak.server.mcp_server import build_server
from firebreak.tools.registry import REGISTRY, load_tools, tool
from tests.test_api_tools import _act, _echo

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def test_tools() -> Iterator[None]:
    tool("test", name="mcp_test_echo")(_echo)
    tool("test", kind="action", name="mcp_test_action")(_act)
    yield
    REGISTRY.pop("mcp_test_echo", None)
    REGISTRY.pop("mcp_test_action", None)


def test_in_process_list_and_call(ctx: ToolContext, test_tools: None) -> None:
    from mcp import Client

    async def main() -> None:
        async with Client(build_server(ctx)) as client:
            listed = await client.list_tools()
            tools = {t.name: t for t in listed.tools}
            assert "mcp_test_echo" in tools and "mcp_test_action" not in tools
            for name, spec in load_tools().items():
                if spec.kind == "query":
                    assert name in tools
            echo = tools["mcp_test_echo"]
            assert echo.input_schema["required"] == ["service"]
            assert echo.description and echo.description.startswith("Echo a service back")

            ok = await client.call_tool("mcp_test_echo", {"service": "mailer", "n": 2})
            assert not ok.is_error
            assert ok.structured_content is not None and ok.structured_content["n"] == 2
            assert "hunter2" not in json.dumps(ok.structured_content)  # redacted like every tool output

            bad = await client.call_tool("mcp_test_echo", {"n": 2})
            assert bad.is_error and "service" in bad.content[0].text  # type: ignore[union-attr]
            missing = await client.call_tool("mcp_test_echo", {"service": "unknown"})
            assert missing.is_error and "unknown service" in missing.content[0].text  # type: ignore[union-attr]
            broken = await client.call_tool("mcp_test_echo", {"service": "boom"})
            assert broken.is_error and "backend down" in broken.content[0].text  # type: ignore[union-attr]
            action = await client.call_tool("mcp_test_action", {"service": "x"})
            assert action.is_error and "approves" in action.content[0].text  # type: ignore[union-attr]
            nope = await client.call_tool("nope", {})
            assert nope.is_error

    anyio.run(main)


def test_stdio_subprocess(tmp_path: Path) -> None:
    """The real command over stdio, as another agent would start it."""
    from mcp import Client, StdioServerParameters

    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env["FIREBREAK_DATA_DIR"] = str(tmp_path / "data")
    params = StdioServerParameters(command=sys.executable, args=["-m", "firebreak.cli", "mcp"], env=env,
                                   cwd=str(REPO))

    async def main() -> None:
        with anyio.fail_after(60):
            async with Client(params) as client:
                listed = await client.list_tools()
                names = {t.name for t in listed.tools}
                expected = {n for n, s in load_tools().items() if s.kind == "query"}
                assert expected <= names
                if "list_flags" in names:
                    res = await client.call_tool("list_flags", {})
                    assert not res.is_error, res.content
                    assert res.structured_content is not None and "flags" in res.structured_content
                if "recent_changes" in names:
                    res = await client.call_tool("recent_changes", {"since": "not a time"})
                    assert res.is_error and "since" in res.content[0].text  # type: ignore[union-attr]

    anyio.run(main)
