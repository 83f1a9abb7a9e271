"""Loki adapter against recorded answers in Loki's documented format (tests/data/loki)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.loki import build_logql
from firebreak.tools.registry import ToolError, call_tool

DATA = Path(__file__).parent / "data" / "loki"
LOKI = "http://loki.test:3100"
STREAMS = json.loads((DATA / "query_range-streams.json").read_text())


@pytest.fixture
def lctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"loki_url": LOKI}), clock=clock)
    yield c
    c.close()


def _windowed(request: httpx.Request) -> httpx.Response:
    """Answer like Loki would: only the recorded lines inside [start, end), capped at limit."""
    start, end = int(request.url.params["start"]), int(request.url.params["end"])
    limit = int(request.url.params["limit"])
    result = []
    for stream in STREAMS["data"]["result"]:
        values = [v for v in stream["values"] if start <= int(v[0]) < end][:limit]
        if values:
            result.append({"stream": stream["stream"], "values": values})
    return httpx.Response(200, json={"status": "success", "data": {"resultType": "streams", "result": result}})


def test_build_logql_quotes_and_filters() -> None:
    assert build_logql(service="mailer", level=None, text='say "hi"') == '{service="mailer"} |= "say \\"hi\\""'
    assert build_logql(service=None, level="error", text="time.*out", regex=True) == (
        '{service=~".+"} |~ "time.*out" | level=~"(?i)(error|err)"'
    )


@respx.mock
def test_search_logs_through_loki(lctx: ToolContext) -> None:
    route = respx.get(f"{LOKI}/loki/api/v1/query_range").mock(return_value=httpx.Response(200, json=STREAMS))
    out = call_tool(
        lctx,
        "search_logs",
        {"service": "mailer", "text": "timeout", "since": "2026-03-02T07:45:00Z", "limit": 3},
    )
    params = route.calls.last.request.url.params
    assert params["query"] == '{service="mailer"} |= "timeout"'
    assert params["start"] == str(int(datetime(2026, 3, 2, 7, 45, tzinfo=UTC).timestamp()) * 10**9)
    assert params["end"] == str(int(datetime(2026, 3, 2, 8, 45, tzinfo=UTC).timestamp()) * 10**9)
    assert params["direction"] == "backward" and params["limit"] == "4"
    assert out["source"] == "loki"
    assert [ln["ts"] for ln in out["lines"]] == [
        "2026-03-02T08:12:00Z",
        "2026-03-02T08:11:30Z",
        "2026-03-02T08:11:00Z",
    ]
    assert out["lines"][0]["level"] == "ERROR" and out["lines"][0]["service"] == "mailer"
    assert out["lines"][0]["attributes"] == {"namespace": "prod"}
    assert out["truncated"] is True


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(400, text=(DATA / "query_range-error-parse.txt").read_text()),
        httpx.Response(400, json=json.loads((DATA / "query_range-error-parse-v3.json").read_text())),
    ],
    ids=["loki2-text", "loki3-json"],
)
@respx.mock
def test_logql_error_is_a_tool_error(lctx: ToolContext, response: httpx.Response) -> None:
    respx.get(f"{LOKI}/loki/api/v1/query_range").mock(return_value=response)
    with pytest.raises(ToolError) as err:
        call_tool(lctx, "search_logs", {"service": "mailer"})
    assert err.value.status == 422
    assert "parse error at line 1, col 11" in err.value.message
    assert err.value.message.startswith("Loki rejected the query")


@respx.mock
def test_unknown_service_in_loki(lctx: ToolContext) -> None:
    empty = {"status": "success", "data": {"resultType": "streams", "result": []}}
    respx.get(f"{LOKI}/loki/api/v1/query_range").mock(return_value=httpx.Response(200, json=empty))
    respx.get(f"{LOKI}/loki/api/v1/label/service/values").mock(
        return_value=httpx.Response(200, json=json.loads((DATA / "label-service-values.json").read_text()))
    )
    with pytest.raises(ToolError) as err:
        call_tool(lctx, "search_logs", {"service": "checkout"})
    assert err.value.status == 404 and "api, mailer, postgres" in err.value.message
    # A known service with no lines in the range is an empty answer, not an error.
    out = call_tool(lctx, "search_logs", {"service": "api"})
    assert out["lines"] == [] and out["total"] == 0


@respx.mock
def test_unreachable_loki(lctx: ToolContext) -> None:
    respx.get(f"{LOKI}/loki/api/v1/query_range").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ToolError) as err:
        call_tool(lctx, "search_logs", {})
    assert err.value.status == 502 and "could not be reached" in err.value.message


@respx.mock
def test_non_stream_answer_is_refused(lctx: ToolContext) -> None:
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    respx.get(f"{LOKI}/loki/api/v1/query_range").mock(return_value=httpx.Response(200, json=matrix))
    with pytest.raises(ToolError, match="not log streams"):
        call_tool(lctx, "search_logs", {})


@respx.mock
def test_log_patterns_through_loki(lctx: ToolContext) -> None:
    route = respx.get(f"{LOKI}/loki/api/v1/query_range").mock(side_effect=_windowed)
    out = call_tool(lctx, "log_patterns", {"pivot": "2026-03-02T08:05:00Z", "service": "mailer"})
    assert route.call_count == 2
    assert all(c.request.url.params["direction"] == "forward" for c in route.calls)
    assert out["source"] == "loki"
    first = out["patterns"][0]
    assert first["new"] and first["level"] == "ERROR"
    assert first["count_after"] == 2 and first["first_seen"] == "2026-03-02T08:11:00Z"
    info = out["patterns"][1]
    assert (info["count_before"], info["count_after"], info["new"]) == (1, 1, False)
