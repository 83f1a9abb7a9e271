"""Prometheus adapter against recorded 2.42.0 answers (tests/fixtures/vendor); the real server is in
tests/test_prometheus_real.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.prometheus import PrometheusClient
from firebreak.tools.registry import ToolError, call_tool

PROM = "http://prometheus.test:9090"


def _fixture(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / f"prometheus-2.42.0-{name}.json").read_text())


@pytest.fixture
def pctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"prometheus_url": PROM}), clock=clock)
    yield c
    c.close()


def _mock_meta(metadata: dict[str, str] | None = None, interval: str = "15s") -> None:
    """/api/v1/metadata and /api/v1/targets as Prometheus 2.42 shapes them."""
    meta = {name: [{"type": typ, "help": "", "unit": ""}] for name, typ in (metadata or {}).items()}
    respx.get(f"{PROM}/api/v1/metadata").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": meta})
    )
    targets = {"activeTargets": [{"scrapeInterval": interval, "health": "up"}], "droppedTargets": []}
    respx.get(f"{PROM}/api/v1/targets").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": targets})
    )


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
    _mock_meta({"up": "gauge"})
    route = respx.get(f"{PROM}/api/v1/query_range").mock(
        return_value=httpx.Response(200, json=_fixture(fixtures_dir, "query_range-up"))
    )
    out = call_tool(pctx, "query_metric", {"service": "prometheus", "name": "up"})
    assert route.calls.last.request.url.params["query"] == 'up{service="prometheus"}'
    assert out["source"] == "prometheus" and out["kind"] == "gauge"
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
    _mock_meta()
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
    _mock_meta()
    empty = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    respx.get(f"{PROM}/api/v1/query_range").mock(return_value=httpx.Response(200, json=empty))
    respx.get(f"{PROM}/api/v1/label/service/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": ["api"]})
    )
    respx.get(f"{PROM}/api/v1/label/job/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": ["node"]})
    )
    respx.get(url__regex=rf"{PROM}/api/v1/label/(app|app_kubernetes_io_name|container)/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": []})
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


def _matrix(*series: tuple[dict[str, str], list[float]], start: float = 1795482000.0, step: float = 15.0) -> Any:
    result = [
        {"metric": labels, "values": [[start + i * step, str(v)] for i, v in enumerate(values)]}
        for labels, values in series
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@respx.mock
def test_query_metric_reads_counters_as_rates_and_histograms_as_p99(pctx: ToolContext) -> None:
    _mock_meta({"api_requests": "counter", "api_latency_seconds": "histogram"})
    route = respx.get(f"{PROM}/api/v1/query_range").mock(
        return_value=httpx.Response(200, json=_matrix(({"service": "api", "pod": "api-1"}, [2.0] * 5),
                                                      ({"service": "api", "pod": "api-2"}, [3.0] * 5)))
    )
    out = call_tool(pctx, "query_metric", {"service": "api", "name": "api_requests_total", "step_seconds": 60})
    query = route.calls.last.request.url.params["query"]
    assert query == 'rate({__name__=~"api_requests_total",service="api"}[120000ms])'  # two steps
    assert out["kind"] == "rate" and out["series"] == 2
    assert {v for _, v in out["points"]} == {5.0}  # the two pods' rates add up
    call_tool(pctx, "query_metric", {"service": "api", "name": "api_latency_seconds", "step_seconds": 15})
    query = route.calls.last.request.url.params["query"]
    assert query == ('histogram_quantile(0.99, sum by (le) (rate(api_latency_seconds_bucket{service="api"}'
                     '[60000ms])))')  # four 15 s scrapes


@respx.mock
def test_service_label_order_is_a_setting(settings: Settings, clock: FixedClock) -> None:
    _mock_meta({"up": "gauge"})
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        seen.append(query)
        hit = "app_kubernetes_io_name" in query
        return httpx.Response(200, json=_matrix(({"app_kubernetes_io_name": "web"}, [1.0] * 3)) if hit
                              else _matrix())

    respx.get(f"{PROM}/api/v1/query_range").mock(side_effect=answer)
    custom = settings.model_copy(update={"prometheus_url": PROM, "service_labels": ["team", "app_kubernetes_io_name"]})
    c = ToolContext(settings=custom, clock=clock)
    out = call_tool(c, "query_metric", {"service": "web", "name": "up"})
    c.close()
    assert seen == ['up{team="web"}', 'up{app_kubernetes_io_name="web"}'] and out["points"]
    assert Settings(service_labels="job, app").service_labels == ["job", "app"]  # type: ignore[arg-type]


@respx.mock
def test_a_url_that_is_not_prometheus_is_named(pctx: ToolContext, caplog: pytest.LogCaptureFixture) -> None:
    page = "<html><head><title>Grafana</title></head><body>login</body></html>"
    respx.get(url__regex=rf"{PROM}/.*").mock(
        return_value=httpx.Response(200, text=page, headers={"content-type": "text/html; charset=utf-8"})
    )
    with caplog.at_level("WARNING", logger="firebreak.backends"), pytest.raises(ToolError) as err:
        call_tool(pctx, "query_metric", {"service": "api", "name": "up"})
    assert err.value.status == 502
    assert "does not answer as Prometheus" in err.value.message and "'Grafana'" in err.value.message
    assert "text/html" in err.value.message
    failures = [r for r in caplog.records if "Prometheus call failed" in r.getMessage()]
    assert failures and all("does not answer as Prometheus" in r.getMessage() for r in failures)


@respx.mock
def test_scan_rolls_pods_up_reads_by_type_and_says_what_it_skipped(pctx: ToolContext) -> None:
    _mock_meta({"jobs_done": "counter", "queue_depth": "gauge", "work_seconds": "histogram"})
    names = ["jobs_done_total", "jobs_done_created", "queue_depth", "work_seconds_bucket", "work_seconds_count",
             "work_seconds_sum", "work_seconds_created"]
    respx.get(f"{PROM}/api/v1/label/__name__/values").mock(
        return_value=httpx.Response(200, json={"status": "success", "data": names})
    )
    flat, stepped = [1.0] * 40 + [1.0] * 40, [1.0] * 40 + [9.0] * 40
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        q = request.url.params["query"]
        queries.append(q)
        if q.startswith("queue_depth"):  # a queue stuck on one pod of two: the service average moves
            return httpx.Response(200, json=_matrix(({"pod": "mailer-7d9f8b6c5d-x2x7q"}, stepped),
                                                    ({"pod": "mailer-7d9f8b6c5d-k9z2m"}, flat),
                                                    ({"instance": "10.0.0.9:9100"}, stepped)))
        return httpx.Response(200, json=_matrix(({"job": "mailer", "instance": "a"}, flat)))

    respx.get(f"{PROM}/api/v1/query_range").mock(side_effect=answer)
    out = call_tool(pctx, "metric_anomalies", {})
    assert len(queries) == 4  # jobs_done rate, queue_depth, work_seconds p99 and _count rate
    assert any(q.startswith("rate(") and "jobs_done_total" in q for q in queries)
    assert any(q.startswith("histogram_quantile(0.99, sum without (instance, pod") for q in queries)
    assert not any("_created" in q or "work_seconds_sum" in q for q in queries)
    (a,) = out["anomalies"]
    assert (a["service"], a["name"], a["kind"], a["labels"]) == ("mailer", "queue_depth", "gauge", {})
    assert a["before"] == 1.0 and a["after"] == 5.0  # mean of the two pods
    assert out["series_checked"] == 6
    assert any("1 series carry none of the labels" in s for s in out["skipped"])


def test_types_and_services_from_names_and_labels() -> None:
    from firebreak.tools.prometheus import MetricKind, kind_of, service_of

    meta = {"jobs": "counter", "lat_seconds": "histogram", "rpc": "summary", "queue_total": "gauge"}
    assert kind_of("jobs_total", meta) == (MetricKind.COUNTER, "jobs_total")
    assert kind_of("lat_seconds_bucket", meta) == (MetricKind.HISTOGRAM, "lat_seconds")
    assert kind_of("lat_seconds", meta) == (MetricKind.HISTOGRAM, "lat_seconds")
    assert kind_of("lat_seconds_count", meta) == (MetricKind.COUNTER, "lat_seconds_count")
    assert kind_of("rpc_count", meta) == (MetricKind.COUNTER, "rpc_count")
    assert kind_of("queue_total", meta) == (MetricKind.GAUGE, "queue_total")  # metadata beats the suffix
    assert kind_of("errors_total", {}) == (MetricKind.COUNTER, "errors_total")  # suffix when no metadata
    assert kind_of("active_count", {}) == (MetricKind.GAUGE, "active_count")
    order = ("service", "job")
    assert service_of({"job": "api", "instance": "a:1"}, order) == "api"
    assert service_of({"service": "pay", "job": "kubernetes-pods"}, order) == "pay"
    assert service_of({"pod": "mailer-7d9f8b6c5d-x2x7q"}, order) == "mailer"
    assert service_of({"pod": "kafka-2"}, order) == "kafka" and service_of({"pod": "api-nginx"}, order) == "api-nginx"
    assert service_of({"instance": "10.0.0.1:9100"}, order) is None
