"""OTLP/HTTP encodings and bad input: OTLP/JSON (hex ids), gzip, refused bodies, nothing half-written.

The JSON bodies follow the shape of the examples in open-telemetry/opentelemetry-proto
(`examples/trace.json`, `logs.json`, `metrics.json`): lowerCamelCase fields, hex trace/span ids,
64-bit integers as strings, enums as numbers.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.server.app import create_app
from firebreak.tools.log_store import get_log_store
from firebreak.tools.metric_store import get_metric_store
from firebreak.tools.trace_store import trace_store

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(ctx: ToolContext) -> Iterator[TestClient]:
    ctx.settings.otlp_token = SecretStr(TOKEN)
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def _span(trace_id: str, span_id: str, parent: str | None, name: str, start_s: float, end_s: float) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(int(start_s * 1e9)),
        "endTimeUnixNano": str(int(end_s * 1e9)),
        "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def _traces(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"}, "spans": spans}],
            }
        ]
    }


T1 = "5B8EFFF798038103D269B633813FC60C"


def test_otlp_json_traces_are_linked_across_requests(client: TestClient, ctx: ToolContext) -> None:
    child = _traces("db", [_span(T1, "EEE19B7EC3C1B174", "EEE19B7EC3C1B173", "SELECT", 1544712660.1, 1544712660.7)])
    r = client.post("/v1/traces", json=child, headers=AUTH)
    assert r.status_code == 200 and r.json() == {} and r.headers["content-type"] == "application/json"
    parent = _traces("api", [_span(T1, "EEE19B7EC3C1B173", None, "GET /", 1544712660.0, 1544712661.0)])
    r = client.post(
        "/v1/traces",
        content=gzip.compress(json.dumps(parent).encode()),
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    store = trace_store(ctx)
    totals = store.span_totals(EPOCH, FAR)
    assert totals[("api", "GET /")]["self_us"] == 400_000 and totals[("api", "GET /")]["remote_us"] == 600_000
    assert store.edge_totals(EPOCH, FAR) == {("api", "db"): {"calls": 1, "errors": 0, "dur_us": 600_000}}
    spans, total, _ = store.trace(T1.lower())
    assert total == 2 and spans[0].attributes == {"my.span.attr": "some value"}


def test_protobuf_answer_is_protobuf_and_deflate_works(client: TestClient, ctx: ToolContext) -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "cart"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.name = bytes(range(1, 17)), bytes(range(1, 9)), "GET /cart"
    sp.start_time_unix_nano, sp.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_000_250_000_000
    sp.status.code = 2
    r = client.post(
        "/v1/traces",
        content=zlib.compress(req.SerializeToString()),
        headers={**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "deflate"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(r.content)
    assert trace_store(ctx).span_totals(EPOCH, FAR)[("cart", "GET /cart")]["errors"] == 1


def test_otlp_json_logs_and_metrics(client: TestClient, ctx: ToolContext) -> None:
    logs = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "mailer"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "my.library"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1544712660300000000",
                                "observedTimeUnixNano": "1544712660300000000",
                                "severityNumber": 17,
                                "traceId": T1,
                                "spanId": "EEE19B7EC3C1B174",
                                "body": {"stringValue": "Example log record"},
                                "attributes": [{"key": "int.attribute", "value": {"intValue": "10"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    assert client.post("/v1/logs", json=logs, headers=AUTH).status_code == 200
    lines, total, _ = get_log_store(ctx).search(since=EPOCH, until=FAR, service="mailer")
    assert total == 1 and lines[0].level == "ERROR" and lines[0].message == "Example log record"
    assert lines[0].attributes == {"int.attribute": 10, "trace_id": T1.lower(), "span_id": "eee19b7ec3c1b174"}
    assert lines[0].ts == datetime(2018, 12, 13, 14, 51, 0, 300000, tzinfo=UTC)
    metrics = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "my.library"},
                        "metrics": [
                            {
                                "name": "my.counter",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asDouble": 5,
                                            "timeUnixNano": "1544712660300000000",
                                            "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "v"}}],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "queue.total",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": False,
                                    "dataPoints": [{"asInt": "3", "timeUnixNano": "1544712660300000000"}],
                                },
                            },
                            {
                                "name": "my.gauge",
                                "gauge": {"dataPoints": [{"asInt": "10", "timeUnixNano": "1544712660300000000"}]},
                            },
                            {
                                "name": "my.histogram",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "timeUnixNano": "1544712660300000000",
                                            "count": "2",
                                            "sum": 2,
                                            "bucketCounts": ["1", "1"],
                                            "explicitBounds": [1],
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    assert client.post("/v1/metrics", json=metrics, headers=AUTH).status_code == 200
    store = get_metric_store(ctx)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): store.points([s.id], EPOCH, FAR)[0][2]
        for s in store.series(service="cart")
    }
    assert got == {
        ("my_counter_total", (("my_counter_attr", "v"),)): 5.0,
        ("my_gauge", ()): 10.0,
        ("my_histogram_bucket", (("le", "1.0"),)): 1.0,
        ("my_histogram_bucket", (("le", "+Inf"),)): 2.0,
        ("my_histogram_count", ()): 2.0,
        ("my_histogram_sum", ()): 2.0,
        ("queue_total", ()): 3.0,
    }
    kinds = {name: store.metric_kind(name) for name, _ in got}
    assert kinds == {
        "my_counter_total": "counter",
        "my_gauge": "gauge",
        "my_histogram_bucket": "histogram",
        "my_histogram_count": "counter",
        "my_histogram_sum": "counter",
        "queue_total": "gauge",  # its suffix alone would make it a counter
    }


@pytest.mark.parametrize(
    ("headers", "body", "status", "needle"),
    [
        ({"Content-Type": "text/plain"}, b"hello", 415, "application/x-protobuf or application/json"),
        ({}, b"hello", 415, "Content-Type"),
        ({"Content-Type": "application/json"}, b"{not json", 400, "not JSON"),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400, "expected a JSON object"),
        ({"Content-Type": "application/json"}, b'{"resourceLogs": []}', 400, "resourceSpans"),
        ({"Content-Type": "application/json"}, b'{"resourceSpans": [{"scopeSpans": 3}]}', 400, "OTLP/JSON"),
        ({"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff\xff", 400, "not a protobuf"),
        ({"Content-Type": "application/x-protobuf"}, b"this is plain text, not protobuf", 400, "protobuf"),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, b"not gzip", 400, "gzip"),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}, b"x", 415, "zstd"),
    ],
)
def test_bad_bodies_get_one_clear_4xx(
    client: TestClient, ctx: ToolContext, headers: dict[str, str], body: bytes, status: int, needle: str
) -> None:
    r = client.post("/v1/traces", content=body, headers={**AUTH, **headers})
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert trace_store(ctx).count() == 0


def test_one_bad_span_refuses_the_whole_request(client: TestClient, ctx: ToolContext) -> None:
    good = _span(T1, "EEE19B7EC3C1B173", None, "GET /", 1544712660.0, 1544712661.0)
    backwards = _span(T1, "EEE19B7EC3C1B174", "EEE19B7EC3C1B173", "SELECT", 1544712660.9, 1544712660.1)
    r = client.post("/v1/traces", json=_traces("api", [good, backwards]), headers=AUTH)
    assert r.status_code == 400 and "spans[1].endTimeUnixNano" in r.json()["detail"]
    bad_id = _span("XYZ", "EEE19B7EC3C1B174", None, "x", 1.0, 2.0)
    r = client.post("/v1/traces", json=_traces("api", [good, bad_id]), headers=AUTH)
    assert r.status_code == 400 and "spans[1].traceId" in r.json()["detail"]
    assert trace_store(ctx).count() == 0


def test_token_required(ctx: ToolContext) -> None:
    with TestClient(create_app(ctx, start_worker=False)) as c:
        r = c.post(
            "/v1/logs",
            content=ExportLogsServiceRequest().SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", **AUTH},
        )
        assert r.status_code == 401 and "FIREBREAK_OTLP_TOKEN" in r.json()["detail"]
    ctx.settings.otlp_token = SecretStr(TOKEN)
    with TestClient(create_app(ctx, start_worker=False)) as c:
        r = c.post(
            "/v1/logs", content=b"", headers={"Content-Type": "application/x-protobuf", "Authorization": "Bearer wrong"}
        )
        assert r.status_code == 401
        r = c.post("/v1/logs", content=b"", headers={"Content-Type": "application/x-protobuf", **AUTH})
        assert r.status_code == 200  # an empty export is valid OTLP
