"""OTLP intake end to end: the real opentelemetry-sdk exporters send to a real `firebreak serve`.

Traces, logs and metrics go through `opentelemetry-exporter-otlp-proto-http` (protobuf, gzip and
plain) to a uvicorn process on a free 127.0.0.1 port; what they sent must come back out of the
stores and the trace tools (via the tool API), with the service from `service.name`.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from firebreak.tools.log_store import LogStore
from firebreak.tools.metric_store import MetricStore
from firebreak.tools.trace_store import TraceStore

REPO = Path(__file__).resolve().parent.parent
TOKEN = "otlp-test-token"
API_TOKEN = "api-test-token"


@dataclass
class Server:
    base: str
    data: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("otlp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(FIREBREAK_DATA_DIR=str(tmp / "data"), FIREBREAK_OTLP_TOKEN=TOKEN, FIREBREAK_API_TOKEN=API_TOKEN)
    cmd = [sys.executable, "-m", "firebreak.cli", "serve", "--port", str(port), "--no-worker", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "serve exited") from None
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield Server(base, tmp / "data")
    finally:
        proc.terminate()
        proc.wait(15)


def _tracer(server: Server, service: str, compression: Compression, token: str = TOKEN) -> TracerProvider:
    exporter = OTLPSpanExporter(
        endpoint=f"{server.base}/v1/traces", headers={"Authorization": f"Bearer {token}"}, compression=compression
    )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_sdk_span_exporter_to_service_map(server: Server) -> None:
    shop = _tracer(server, "shop", Compression.Gzip)
    payments = _tracer(server, "payments", Compression.NoCompression)
    for i in range(6):
        with shop.get_tracer("t").start_as_current_span("POST /checkout") as root:
            ctx = trace.set_span_in_context(root)
            with payments.get_tracer("t").start_as_current_span("charge", context=ctx) as charge:
                charge.set_attribute("amount", 12.5)
                if i % 3 == 0:
                    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    shop.shutdown()
    payments.shutdown()

    store = TraceStore(server.data / "traces.sqlite3")
    try:
        assert store.count() == 12
    finally:
        store.close()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    smap = httpx.post(f"{server.base}/api/tools/service_map", json={"since": "2000-01-01T00:00:00Z"}, headers=auth)
    assert smap.status_code == 200, smap.text
    edges = smap.json()["edges"]
    assert [(e["caller"], e["callee"], e["calls"], e["errors"]) for e in edges] == [("shop", "payments", 6, 2)]
    errs = httpx.post(
        f"{server.base}/api/tools/sample_traces",
        json={"since": "2000-01-01T00:00:00Z", "service": "payments", "status": "error", "limit": 5},
        headers=auth,
    ).json()["traces"]
    assert len(errs) == 2
    charge = next(s for s in errs[0]["spans"] if s["service"] == "payments")
    assert charge["attributes"]["otel.status_description"] == "card declined"
    assert charge["attributes"]["amount"] == 12.5


def test_wrong_token_is_refused_and_nothing_stored(server: Server) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "intruder"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    spans = memory.get_finished_spans()
    assert len(spans) == 1
    wrong = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", headers={"Authorization": "Bearer nope"})
    assert wrong.export(spans) == SpanExportResult.FAILURE
    r = httpx.post(f"{server.base}/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 401 and "bearer" in r.json()["detail"]
    right = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"})
    store = TraceStore(server.data / "traces.sqlite3")
    try:
        assert "intruder" not in store.services()
        assert right.export(spans) == SpanExportResult.SUCCESS
        assert right.export(spans) == SpanExportResult.SUCCESS  # a retried export is not counted twice
        assert "intruder" in store.services()
        assert store.find_trace_ids(since=_epoch(), until=_far(), service="intruder", limit=10) == [
            format(spans[0].context.trace_id, "032x")
        ]
    finally:
        store.close()


def test_sdk_log_exporter(server: Server) -> None:
    exporter = OTLPLogExporter(
        endpoint=f"{server.base}/v1/logs", headers={"Authorization": f"Bearer {TOKEN}"}, compression=Compression.Gzip
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "mailer"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("test_otlp_mailer")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.warning("queue depth %d over limit", 900)
        logger.error("smtp relay refused connection", extra={"relay": "smtp-1"})
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    store = LogStore(server.data / "logs.sqlite3")
    try:
        lines, total, _ = store.search(since=_epoch(), until=_far(), service="mailer")
    finally:
        store.close()
    assert total == 2
    by_level = {ln.level: ln for ln in lines}
    assert by_level["WARN"].message == "queue depth 900 over limit"
    assert by_level["ERROR"].attributes["relay"] == "smtp-1"


def test_sdk_metric_exporter(server: Server) -> None:
    exporter = OTLPMetricExporter(endpoint=f"{server.base}/v1/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "cart"}), metric_readers=[reader])
    meter = provider.get_meter("t")
    requests = meter.create_counter("http.server.requests")
    latency = meter.create_histogram("http.server.duration", unit="ms")
    requests.add(5, {"route": "/cart"})
    requests.add(2, {"route": "/cart"})
    for v in (3.0, 7.0, 400.0):
        latency.record(v, {"route": "/cart"})
    provider.force_flush()
    provider.shutdown()
    store = MetricStore(server.data / "metrics.sqlite3")
    try:
        names = set(store.names("cart"))
        assert {
            "http_server_requests_total",
            "http_server_duration_bucket",
            "http_server_duration_count",
            "http_server_duration_sum",
        } <= names
        (counter,) = store.series(service="cart", name="http_server_requests_total")
        assert counter.labels == {"route": "/cart"}
        values = [v for _, _, v in store.points([counter.id], _epoch(), _far())]
        assert values[-1] == 7.0
        (count,) = store.series(service="cart", name="http_server_duration_count")
        assert [v for _, _, v in store.points([count.id], _epoch(), _far())][-1] == 3.0
    finally:
        store.close()


def _epoch() -> datetime:
    return datetime(2000, 1, 1, tzinfo=UTC)


def _far() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)
