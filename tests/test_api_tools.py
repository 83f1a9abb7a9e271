"""The tool-use API: listing, calling through the registry, errors and the OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, SecretStr

import firebreak.server.api_tools as api_tools
from firebreak.context import ToolContext
from firebreak.tools.registry import REGISTRY, ToolError, tool

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class EchoIn(BaseModel):
    service: str = Field(description="service name")
    n: int = Field(3, ge=1, le=10)
    since: datetime | None = None


class EchoOut(BaseModel):
    service: str
    n: int
    now: datetime
    secret_line: str
    truncated: bool = False


class NoArgsIn(BaseModel):
    pass


class NoArgsOut(BaseModel):
    ok: bool


def _echo(ctx: ToolContext, args: EchoIn) -> EchoOut:
    """Echo a service back (test tool)."""
    if args.service == "unknown":
        raise ToolError("unknown service 'unknown'; list services first", status=404, field="service")
    if args.service == "boom":
        raise RuntimeError("backend down")
    return EchoOut(service=args.service, n=args.n, now=ctx.clock.now(),
                   secret_line="password=hunter2 api_key=sk-abcdefabcdefabcdefabcdef")


def _noargs(ctx: ToolContext, args: NoArgsIn) -> NoArgsOut:
    """Takes nothing (test tool)."""
    return NoArgsOut(ok=True)


def _act(ctx: ToolContext, args: EchoIn) -> EchoOut:
    """Changes production (test action tool)."""
    raise AssertionError("an action must never run through the API")


@pytest.fixture
def test_tools(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    names = ("web_test_echo", "web_test_noargs", "web_test_action")
    tool("test", name="web_test_echo")(_echo)
    tool("test", name="web_test_noargs")(_noargs)
    tool("test", kind="action", name="web_test_action")(_act)
    monkeypatch.setattr(api_tools, "router", api_tools.build_router())
    yield
    for n in names:
        REGISTRY.pop(n, None)


@pytest.fixture
def client(ctx: ToolContext, test_tools: None) -> Iterator[TestClient]:
    from firebreak.server.app import create_app

    ctx.settings.api_token = SecretStr(TOKEN)
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def test_token_required(client: TestClient, ctx: ToolContext) -> None:
    assert client.get("/api/tools").status_code == 401
    assert client.get("/api/tools", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.post("/api/tools/web_test_echo", json={"service": "mailer"})
    assert r.status_code == 401 and r.json()["detail"]


def test_list_tools_with_schemas(client: TestClient) -> None:
    r = client.get("/api/tools", headers=AUTH)
    assert r.status_code == 200
    tools = {t["name"]: t for t in r.json()["tools"]}
    echo = tools["web_test_echo"]
    assert echo["family"] == "test" and echo["kind"] == "query"
    assert echo["description"].startswith("Echo a service back")
    assert echo["input_schema"]["required"] == ["service"]
    assert "secret_line" in echo["output_schema"]["properties"]
    assert tools["web_test_action"]["kind"] == "action"
    assert client.get("/api/tools/web_test_echo", headers=AUTH).json()["name"] == "web_test_echo"
    assert client.get("/api/tools/nope", headers=AUTH).status_code == 404


def test_call_tool_goes_through_registry(client: TestClient) -> None:
    r = client.post("/api/tools/web_test_echo", json={"service": "mailer", "n": 5}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"] == "mailer" and body["n"] == 5
    assert body["now"].startswith("2026-03-02T08:45:00")  # the context's clock, not wall time
    assert "hunter2" not in body["secret_line"]  # redacted by call_tool
    assert client.post("/api/tools/web_test_noargs", headers=AUTH).json() == {"ok": True}
    assert client.post("/api/tools/web_test_noargs", json={}, headers=AUTH).json() == {"ok": True}


def test_errors(client: TestClient) -> None:
    r = client.post("/api/tools/nope", json={}, headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.post("/api/tools/web_test_echo", json={"n": 2}, headers=AUTH)
    assert r.status_code == 422 and "service" in r.json()["detail"]
    r = client.post("/api/tools/web_test_echo", json={"service": "x", "n": 99}, headers=AUTH)
    assert r.status_code == 422 and "n" in r.json()["detail"]
    r = client.post("/api/tools/web_test_echo", json={"service": "x", "since": "yesterday"}, headers=AUTH)
    assert r.status_code == 422 and "since" in r.json()["detail"]
    r = client.post("/api/tools/web_test_echo", content=b"{not json", headers={**AUTH, "content-type":
                                                                                  "application/json"})
    assert r.status_code == 422
    r = client.post("/api/tools/web_test_echo", json={"service": "unknown"}, headers=AUTH)
    assert r.status_code == 404 and "unknown service" in r.json()["detail"]
    r = client.post("/api/tools/web_test_echo", json={"service": "boom"}, headers=AUTH)
    assert r.status_code == 502 and "backend down" in r.json()["detail"]
    r = client.post("/api/tools/web_test_action", json={"service": "x"}, headers=AUTH)
    assert r.status_code == 403 and "approval" in r.json()["detail"]


def test_openapi_describes_every_query_tool(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 401  # behind the token unless FIREBREAK_PUBLIC_DOCS
    spec = client.get("/openapi.json", headers=AUTH).json()
    from firebreak.tools.registry import load_tools

    for name, t in load_tools().items():
        path = f"/api/tools/{name}"
        if t.kind == "action":
            continue
        op = spec["paths"][path]["post"]
        assert op["operationId"] == f"call_{name}"
        body = op["requestBody"]["content"]["application/json"]["schema"]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert body and ok, name
        assert {"401", "404", "422"} <= set(op["responses"]), name
    echo = spec["paths"]["/api/tools/web_test_echo"]["post"]
    assert echo["requestBody"]["required"] is True
    ref = echo["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "service" in spec["components"]["schemas"][ref]["properties"]
    assert "/api/tools" in spec["paths"] and "get" in spec["paths"]["/api/tools"]


def test_real_registry_tool_runs(client: TestClient, ctx: ToolContext) -> None:
    """A real tool from the registry answers through the API (flags: no backend needed)."""
    from firebreak.tools.registry import load_tools

    assert "list_flags" in load_tools()  # the catalog imports every tool module: a missing one is a failure
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    ctx.settings.resolved_flags_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.settings.resolved_flags_file.write_text(json.dumps({"flags": {"new-checkout": flag}}))
    r = client.post("/api/tools/list_flags", json={}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert [f["key"] for f in r.json()["flags"]] == ["new-checkout"]
