"""The metrics tools against a real Prometheus (Debian `prometheus` 2.42) scraping itself and a small
exporter that steps a gauge, ramps a counter's rate and shifts a histogram, while another counter
grows at a steady rate: the anomaly scan must rank the three changes first and never report normal
counter growth."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from firebreak.clock import SystemClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.prometheus import PrometheusClient
from firebreak.tools.registry import ToolError, call_tool

pytestmark = pytest.mark.slow

SCRAPE_MS = 500
BASELINE = 12.0  # seconds of steady behaviour before the change
AFTER = 10.0  # seconds after it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prometheus(
    tmp: Path, scrape_configs: str, extra_args: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Our own Prometheus on a free 127.0.0.1 port (never the distribution's service)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install -y prometheus)")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_MS}ms\n  evaluation_interval: {SCRAPE_MS}ms\n"
        "scrape_configs:\n  - job_name: prometheus\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n" + scrape_configs
    )
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *(extra_args or [])],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def wait_for_series(proc: subprocess.Popen[bytes], url: str, query: str, tmp: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            r = httpx.get(f"{url}/api/v1/query", params={"query": query})
            if r.status_code == 200 and r.json()["data"]["result"]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(proc)
    pytest.fail(f"Prometheus never answered {query!r}:\n" + (tmp / "prometheus.log").read_text()[-2000:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class World:
    url: str
    changed_at: datetime


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

    registry = CollectorRegistry()
    depth = Gauge("shop_queue_depth", "Jobs waiting", ["service"], registry=registry)
    orders = Counter("shop_orders", "Orders taken", ["service"], registry=registry)
    emails = Counter("shop_emails_sent", "Mail sent at a steady pace", ["service"], registry=registry)
    latency = Histogram("shop_request_seconds", "Request time", ["service"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.1, 1.0, 2.5, 5.0))
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    state = {"changed": False, "since": 0.0}
    done = threading.Event()
    rnd = random.Random(7)

    def drive() -> None:
        """Counters advance with the wall clock, not with ticks: a starved thread must not change a rate."""
        last = time.monotonic()
        while not done.wait(0.05):
            now = time.monotonic()
            dt, last = now - last, now
            changed = state["changed"]
            ramp = min(1.0, (now - state["since"]) / 4) if changed else 0.0
            depth.labels(service="worker").set(5000 if changed else 5)
            orders.labels(service="checkout").inc((10 + 1990 * ramp) * dt)  # 10/s ramping to 2000/s
            emails.labels(service="mailer").inc(40 * dt)  # 40/s throughout: normal growth
            for _ in range(max(1, round(100 * dt))):
                latency.labels(service="api").observe(rnd.uniform(2, 4) if changed else rnd.uniform(0.001, 0.004))

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    tmp = tmp_path_factory.mktemp("prometheus")
    proc, url = start_prometheus(
        tmp, f"  - job_name: shop\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    try:
        wait_for_series(proc, url, "shop_queue_depth", tmp)
        time.sleep(BASELINE)
        changed_at = datetime.now(UTC)
        state["since"], state["changed"] = time.monotonic(), True
        time.sleep(AFTER)
        yield World(url, changed_at)
    finally:
        done.set()
        stop(proc)
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def ctx(settings: Settings, world: World) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings.model_copy(update={"prometheus_url": world.url}), clock=SystemClock())
    yield c
    c.close()


def test_scan_finds_the_three_changes_and_no_counter_growth(ctx: ToolContext, world: World) -> None:
    since = world.changed_at - timedelta(seconds=BASELINE - 2)
    out = call_tool(ctx, "metric_anomalies", {"since": since.isoformat(), "limit": 3})
    assert out["source"] == "prometheus" and out["series_checked"] > 100  # Prometheus' own series too
    everything = call_tool(ctx, "metric_anomalies", {"since": since.isoformat(), "limit": 200})["anomalies"]
    ranked = out["anomalies"]
    top = {(a["service"], a["name"], a["kind"]) for a in ranked}
    assert top == {
        ("worker", "shop_queue_depth", "gauge"),
        ("checkout", "shop_orders_total", "rate"),
        ("api", "shop_request_seconds", "p99"),
    }, [(a["service"], a["name"], a["kind"], a["before"], a["after"], a["score"]) for a in everything]
    for a in ranked[:3]:
        onset = datetime.fromisoformat(a["onset"])
        assert abs((onset - world.changed_at).total_seconds()) <= 3, (a["name"], a["onset"])
        assert a["direction"] == "up"
    orders = next(a for a in ranked if a["name"] == "shop_orders_total")
    assert orders["before"] == pytest.approx(10, rel=0.3) and orders["after"] == pytest.approx(2000, rel=0.3)
    # No counter growing at its usual pace is a change: a counter is only ever reported by its rate.
    assert not [a for a in everything if a["name"] == "shop_emails_sent_total"]
    assert all(a["kind"] == "rate" for a in everything if a["name"].endswith("_total"))


def test_query_metric_reads_each_type(ctx: ToolContext, world: World) -> None:
    since = (world.changed_at - timedelta(seconds=8)).isoformat()
    emails = call_tool(ctx, "query_metric", {"service": "mailer", "name": "shop_emails_sent_total",
                                             "since": since, "step_seconds": 1})
    assert emails["kind"] == "rate" and emails["series"] == 1
    rates = sorted(v for _, v in emails["points"])
    assert rates[len(rates) // 2] == pytest.approx(40, rel=0.15)  # the counter's pace, not its growing level
    p99 = call_tool(ctx, "query_metric", {"service": "api", "name": "shop_request_seconds", "since": since,
                                          "step_seconds": 1})
    assert p99["kind"] == "p99" and p99["points"][0][1] <= 0.005 and p99["points"][-1][1] >= 2
    with pytest.raises(ToolError) as err:
        call_tool(ctx, "query_metric", {"service": "nowhere", "name": "up"})
    assert err.value.status == 404 and "worker" in err.value.message


def test_one_service_scan_and_plain_errors(ctx: ToolContext, world: World) -> None:
    since = world.changed_at - timedelta(seconds=BASELINE - 2)
    out = call_tool(ctx, "metric_anomalies", {"service": "worker", "since": since.isoformat()})
    assert [(a["name"], a["kind"]) for a in out["anomalies"]] == [("shop_queue_depth", "gauge")]
    with pytest.raises(ToolError) as err:
        call_tool(ctx, "metric_anomalies", {"service": "nowhere"})
    assert err.value.status == 404 and "FIREBREAK_SERVICE_LABELS" in err.value.message
    client = PrometheusClient(world.url)
    with pytest.raises(ToolError) as err:
        client.query_range("sum(up", start=since, end=datetime.now(UTC), step_seconds=1)
    assert err.value.status == 422 and "parse error" in err.value.message
    client.close()
