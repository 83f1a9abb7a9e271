"""Prometheus adapter: recorded 2.42.0 answers (tests/fixtures/vendor) and a real Prometheus server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from firebreak.clock import FixedClock, SystemClock
from firebreak.settings import Settings
from tools.context import ToolContext
from tools.prometheus import PrometheusClient
from tools.registry import ToolError, call_tool

PROM = "http://prometheus.test:9090"


def _fixture(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / f"prometheus-2.42.0-{name}.json").read_text())


@pytest.fixture
def pctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"prometheus_url": PROM}), clock=clock)
    yield c
    c.close()


# --- recorded answers -----------------------------------------------------------------------------


@respx.mock
def test_query_range_parses_recorded_matrix(fixtures_dir: Path) -> None:
    route = respx.get(f"{PROM}/api/v1/query_range").mock(
        return_value=httpx.Response(200, json=_fixture(fixtures_dir, "query_range-rate-by-code-handler"))
    )
    start = datetime(2026, 11, 24, 13, 13, tzinfo=UTC)
    series = PrometheusClient(PROM).query_range(
        "rate(prometheus_http_requests_total[1m])", start=start, end=start + timedelta(minutes=5), step_seconds=4
    )
    params = route.calls.last.request.url.params
    assert params["step"] == "4" and float(params["end"]) - float(params["start"]) == 300
    assert [s.metric["handler"] for s in series] == ["/-/ready", "/api/v1/query_range", "/metrics"]
    assert series[2].values[0] == (1795482779.0, pytest.approx(0.4756666666666667))


@respx.mock
def test_query_metric_through_prometheus(pctx: ToolContext, fixtures_dir: Path) -> None:
    route = respx.get(f"{PROM}/api/v1/query_range").mock(
        return_value=httpx.Response(200, json=_fixture(fixtures_dir, "query_range-up"))
    )
    out = call_tool(pctx, "query_metric", {"service": "prometheus", "name": "up"})
    assert route.calls.last.request.url.params["query"] == 'avg(up{service="prometheus"})'
    assert out["source"] == "prometheus"
    assert [v for _, v in out["points"]] == [1.0] * 5
    assert out["points"][0][0] == datetime.fromtimestamp(1795482776, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("query_range-error-parse", "1:4: parse error: unexpected end of input inside braces"),
        ("query_range-error-bad-range", 'invalid parameter "end": end timestamp must not be before start time'),
    ],
)
@respx.mock
def test_prometheus_errors_become_tool_errors(pctx: ToolContext, fixtures_dir: Path, name: str, needle: str) -> None:
    respx.get(f"{PROM}/api/v1/query_range").mock(return_value=httpx.Response(400, json=_fixture(fixtures_dir, name)))
    with pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "api", "name": "up"})
    assert err.value.status == 422
    assert needle in err.value.message and err.value.message.startswith("Prometheus rejected the query")


def test_bad_metric_name_is_refused_before_asking(pctx: ToolContext) -> None:
    with pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "api", "name": "up{"})
    assert err.value.field == "name" and err.value.status == 422


@respx.mock
def test_unknown_service_and_unreachable(pctx: ToolContext) -> None:
    empty = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    respx.get(f"{PROM}/api/v1/query_range").mock(return_value=httpx.Response(200, json=empty))
    respx.get(f"{PROM}/api/v1/label/service/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": ["api"]})
    )
    respx.get(f"{PROM}/api/v1/label/job/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": ["node"]})
    )
    with pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "checkout", "name": "up"})
    assert err.value.status == 404 and "api, node" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "api", "name": "nope_total"})
    assert err.value.field == "name" and "no samples of metric 'nope_total'" in err.value.message
    respx.get(f"{PROM}/api/v1/query_range").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "api", "name": "up"})
    assert err.value.status == 502


# --- a real Prometheus ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RealProm:
    url: str
    exporter_port: int


@pytest.fixture(scope="module")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealProm]:
    """Our own Prometheus on 127.0.0.1 (never the distribution's service), scraping a tiny exporter."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install -y prometheus)")
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("firebreak_test_queue_depth", "Jobs waiting", ["service"], registry=registry)
    gauge.labels(service="mailer").set(42)
    gauge.labels(service="api").set(7)
    exporter_port = _free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)

    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    port = _free_port()
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(
                    f"{url}/api/v1/query", params={"query": "count_over_time(firebreak_test_queue_depth[1m])"}
                )
                result = r.json()["data"]["result"] if r.status_code == 200 else []
                if result and min(float(s["value"][1]) for s in result) >= 2:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if not ready:
            proc.terminate()
            log.close()
            pytest.fail(
                "Prometheus did not scrape the exporter in 30 s:\n" + (tmp / "prometheus.log").read_text()[-2000:]
            )
        yield RealProm(url, exporter_port)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def real_ctx(settings: Settings, real_prometheus: RealProm) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"prometheus_url": real_prometheus.url}), clock=SystemClock())
    yield c
    c.close()


def test_real_prometheus_query_range(real_prometheus: RealProm) -> None:
    client = PrometheusClient(real_prometheus.url)
    now = datetime.now(UTC)
    series = client.query_range(
        'firebreak_test_queue_depth{service="mailer"}', start=now - timedelta(minutes=1), end=now, step_seconds=1
    )
    assert len(series) == 1
    assert series[0].metric["job"] == "exporter" and series[0].metric["service"] == "mailer"
    assert len(series[0].values) >= 2 and {v for _, v in series[0].values} == {42.0}
    with pytest.raises(ToolError) as err:
        client.query_range("sum(firebreak_test_queue_depth", start=now - timedelta(minutes=1), end=now, step_seconds=1)
    assert err.value.status == 422 and "parse error" in err.value.message
    client.close()


def test_real_prometheus_tools(real_ctx: ToolContext) -> None:
    out = call_tool(
        real_ctx, "query_metric", {"service": "mailer", "name": "firebreak_test_queue_depth", "step_seconds": 1}
    )
    assert out["source"] == "prometheus" and out["points"] and {v for _, v in out["points"]} == {42.0}
    with pytest.raises(ToolError) as err:
        call_tool(real_ctx, "query_metric", {"service": "checkout", "name": "firebreak_test_queue_depth"})
    assert err.value.status == 404 and "api" in err.value.message and "mailer" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(real_ctx, "query_metric", {"service": "mailer", "name": "no_such_metric"})
    assert err.value.field == "name"
    anomalies = call_tool(
        real_ctx,
        "metric_anomalies",
        {"service": "mailer", "since": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()},
    )
    assert anomalies["source"] == "prometheus" and anomalies["series_checked"] >= 1
    assert anomalies["anomalies"] == []  # a flat gauge has no change
