"""Trace tools through Tempo and Jaeger, against recorded answers in their documented shapes
(tests/data/tempo, tests/data/jaeger: see the README there for where each shape comes from)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.registry import ToolError, call_tool
from firebreak.tools.tempo import build_traceql

DATA = Path(__file__).parent / "data"
TEMPO = "http://tempo.test:3200"
JAEGER = "http://jaeger.test:16686"
A = "2f3e0cee77ae5dc9c17ade3689eb2e54"
B = "6b4ca1a2f7d4c8e1a3d2c1b0a9f8e7d6"


def _json(path: str) -> object:
    return json.loads((DATA / path).read_text())


@pytest.fixture
def tctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"tempo_url": TEMPO, "jaeger_url": JAEGER}), clock=clock)
    yield c
    c.close()


@pytest.fixture
def jctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"jaeger_url": JAEGER}), clock=clock)
    yield c
    c.close()


def _tempo_routes() -> respx.Route:
    search = respx.get(f"{TEMPO}/api/search").mock(return_value=httpx.Response(200, json=_json("tempo/search.json")))
    for tid in (A, B):
        respx.get(f"{TEMPO}/api/traces/{tid}").mock(
            return_value=httpx.Response(200, json=_json(f"tempo/trace-{tid}.json"))
        )
    return search


def test_build_traceql() -> None:
    assert build_traceql() == "{}"
    assert build_traceql(service='we"ird', operation="GET /", status="error") == (  # type: ignore[arg-type]
        '{ resource.service.name = "we\\"ird" && name = "GET /" && status = error }'
    )


@respx.mock
def test_sample_traces_through_tempo(tctx: ToolContext) -> None:
    search = _tempo_routes()
    out = call_tool(tctx, "sample_traces", {"service": "billing", "status": "error", "since": "2026-03-02T08:00:00Z"})
    params = search.calls.last.request.url.params
    assert params["q"] == '{ resource.service.name = "billing" && status = error }'
    assert params["start"] == "1772438400" and int(params["end"]) >= 1772441100
    assert out["source"] == "tempo"
    first = out["traces"][0]  # newest first: trace A at 08:40
    assert first["trace_id"] == A and first["span_count"] == 4 and first["errors"] == 3
    assert first["root"] == "shop-backend: update-billing" and first["duration_ms"] == 557
    charge = next(s for s in first["spans"] if s["operation"] == "POST /charge")
    assert charge["service"] == "billing" and charge["parent_id"] == "1a2b3c4d5e6f7081"
    assert charge["attributes"] == {"otel.status_description": "payment gateway timeout"}


@respx.mock
def test_service_map_and_breakdown_through_tempo(tctx: ToolContext) -> None:
    _tempo_routes()
    smap = call_tool(tctx, "service_map", {"since": "2026-03-02T08:00:00Z"})
    assert smap["sampled"] and smap["source"] == "tempo"
    assert [(e["caller"], e["callee"], e["calls"], e["errors"]) for e in smap["edges"]] == [
        ("shop-backend", "billing", 2, 1)
    ]
    out = call_tool(tctx, "latency_breakdown", {"since": "2026-03-02T08:00:00Z", "pivot": "2026-03-02T08:35:00Z"})
    rows = {r["service"]: r for r in out["services"]}
    # billing's own time per request: 45 ms before; 520 ms in POST /charge + 20 ms in its own SELECT span after.
    assert rows["billing"]["shift"] == "own_time_grew"
    assert rows["billing"]["self_delta_ms"] == pytest.approx(540 - 45)
    assert rows["shop-backend"]["shift"] == "waiting_on_callees"


@respx.mock
def test_tempo_errors_are_tool_errors(tctx: ToolContext) -> None:
    respx.get(f"{TEMPO}/api/search").mock(
        return_value=httpx.Response(400, text="invalid TraceQL query: parse error at line 1, col 3")
    )
    with pytest.raises(ToolError) as err:
        call_tool(tctx, "sample_traces", {})
    assert err.value.status == 422 and "invalid TraceQL query" in err.value.message
    respx.get(f"{TEMPO}/api/search").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(ToolError) as err:
        call_tool(tctx, "service_map", {})
    assert err.value.status == 502 and "could not be reached" in err.value.message
    deps = call_tool(tctx, "service_dependencies", {})  # falls back on traces, which fail: says so, no error
    assert deps["edges"] == [] and "traces unavailable" in deps["note"] and "FIREBREAK_DEPENDENCIES" in deps["note"]


@respx.mock
def test_jaeger_asks_each_service_and_reads_processes(jctx: ToolContext) -> None:
    respx.get(f"{JAEGER}/api/services").mock(return_value=httpx.Response(200, json=_json("jaeger/services.json")))
    traces = respx.get(f"{JAEGER}/api/traces").mock(return_value=httpx.Response(200, json=_json("jaeger/traces.json")))
    smap = call_tool(jctx, "service_map", {"since": "2026-03-02T08:00:00Z"})
    assert {p["service"] for p in (c.request.url.params for c in traces.calls)} == {"driver", "frontend", "redis"}
    assert smap["source"] == "jaeger"
    edges = {(e["caller"], e["callee"]): e for e in smap["edges"]}
    assert set(edges) == {("frontend", "driver"), ("driver", "redis")}
    assert edges[("driver", "redis")]["errors"] == 1 and edges[("driver", "redis")]["calls"] == 2
    out = call_tool(jctx, "latency_breakdown", {"since": "2026-03-02T08:00:00Z", "pivot": "2026-03-02T08:30:00Z"})
    assert out["services"][0]["service"] == "redis" and out["services"][0]["shift"] == "own_time_grew"
    errs = call_tool(jctx, "trace_errors", {"since": "2026-03-02T08:30:00Z"})
    assert [(g["service"], g["operation"], g["new"], g["first_seen"]) for g in errs["groups"]] == [
        ("redis", "GetDriver", True, "2026-03-02T08:41:00Z")
    ]


@respx.mock
def test_jaeger_status_filter_and_errors(jctx: ToolContext) -> None:
    traces = respx.get(f"{JAEGER}/api/traces").mock(return_value=httpx.Response(200, json=_json("jaeger/traces.json")))
    out = call_tool(jctx, "sample_traces", {"service": "redis", "status": "error", "since": "2026-03-02T08:00:00Z"})
    assert json.loads(traces.calls.last.request.url.params["tags"]) == {"error": "true"}
    assert [t["trace_id"] for t in out["traces"]] == ["3b8f6a3e8e1c0d2a"]  # the other has no failed redis span
    assert out["traces"][0]["spans"][2]["attributes"] == {}  # error/span.kind tags become the status
    respx.get(f"{JAEGER}/api/traces").mock(return_value=httpx.Response(400, json=_json("jaeger/traces-error.json")))
    with pytest.raises(ToolError) as err:
        call_tool(jctx, "sample_traces", {"service": "redis"})
    assert err.value.status == 422 and "unable to parse param" in err.value.message
