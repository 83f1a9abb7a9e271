"""End to end with real servers: a Prometheus rule fires, a real Alertmanager (Debian
`prometheus-alertmanager` 0.25) routes it with a bearer token to a real `firebreak serve`, which opens an
incident; when the rule stops firing the resolution arrives and the incident is mitigated. A delivery
with a wrong token is refused with 401 and one log line saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_prometheus_real import free_port, start_prometheus, stop, wait_for_series

pytestmark = pytest.mark.slow

WEBHOOK_TOKEN = "am-webhook-token-1234567890"
API_TOKEN = "api-token-1234567890"


@dataclass
class Stack:
    firebreak: str
    serve_log: Path
    set_depth: Callable[[float], None]


def _wait(what: str, check: Callable[[], Any], timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if alertmanager is None:
        pytest.skip("alertmanager is not installed (Debian: apt-get install -y prometheus-alertmanager)")
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    tmp = tmp_path_factory.mktemp("alerting")
    registry = CollectorRegistry()
    depth = Gauge("shop_queue_depth", "Jobs waiting", ["service"], registry=registry)
    depth.labels(service="mailer").set(50)
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)

    # firebreak serve, as a team runs it.
    fb_port = free_port()
    env = {**os.environ, "FIREBREAK_DATA_DIR": str(tmp / "data"), "FIREBREAK_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
           "FIREBREAK_API_TOKEN": API_TOKEN, "FIREBREAK_GROUP_WAIT_SECONDS": "3600"}
    env.pop("FIREBREAK_DATABASE_URL", None)
    serve_log = tmp / "serve.log"
    firebreak = Path(sys.executable).with_name("firebreak")
    with serve_log.open("w") as out:
        serve = subprocess.Popen([str(firebreak), "serve", "--port", str(fb_port), "--no-worker"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    fb_url = f"http://127.0.0.1:{fb_port}"

    # Alertmanager routing everything to it with the bearer token.
    am_port = free_port()
    (tmp / "alertmanager.yml").write_text(
        "route:\n  receiver: firebreak\n  group_by: [alertname, service]\n"
        "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        "receivers:\n  - name: firebreak\n    webhook_configs:\n"
        f"      - url: {fb_url}/webhooks/alertmanager\n        send_resolved: true\n"
        f"        http_config:\n          authorization:\n            type: Bearer\n"
        f"            credentials: {WEBHOOK_TOKEN}\n"
    )
    am_log = tmp / "alertmanager.log"
    with am_log.open("w") as out:
        am = subprocess.Popen(
            [alertmanager, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    (tmp / "rules.yml").write_text(
        "groups:\n  - name: shop\n    rules:\n      - alert: QueueBacklog\n"
        "        expr: shop_queue_depth > 10\n        labels:\n          severity: critical\n"
        "        annotations:\n          summary: 'queue backlog on {{ $labels.service }}'\n"
    )
    prom, prom_url = start_prometheus(
        tmp,
        f"  - job_name: shop\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
        f"rule_files: ['{tmp / 'rules.yml'}']\n"
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n",
        ["--rules.alert.resend-delay=1s"],
    )
    try:
        wait_for_series(prom, prom_url, "shop_queue_depth", tmp)
        yield Stack(fb_url, serve_log, lambda v: depth.labels(service="mailer").set(v))
    finally:
        for proc in (prom, am, serve):
            stop(proc)
        server.shutdown()
        thread.join(timeout=5)


def _incidents(stack: Stack) -> list[dict[str, Any]]:
    try:
        r = httpx.get(f"{stack.firebreak}/api/incidents", headers={"Authorization": f"Bearer {API_TOKEN}"})
    except httpx.HTTPError:  # still starting
        return []
    return list(r.json()["incidents"]) if r.status_code == 200 else []


def test_alert_opens_an_incident_and_its_resolution_mitigates_it(stack: Stack) -> None:
    logs = [stack.serve_log]
    (inc,) = _wait("an incident from Alertmanager", lambda: _incidents(stack), 60, logs)
    assert inc["status"] == "open" and inc["severity"] == "critical" and "mailer" in inc["services"]
    detail = httpx.get(f"{stack.firebreak}/api/incidents/{inc['id']}",
                       headers={"Authorization": f"Bearer {API_TOKEN}"}).json()
    (alert,) = detail["alerts"]
    assert alert["source"] == "alertmanager" and alert["status"] == "firing"
    stack.set_depth(0)  # the queue drains: the rule stops firing, Alertmanager sends the resolution
    done = _wait("the incident to be mitigated",
                 lambda: [i for i in _incidents(stack) if i["id"] == inc["id"] and i["status"] == "mitigated"],
                 60, logs)
    assert done[0]["mitigated_at"] is not None
    assert len(_incidents(stack)) == 1  # repeats were deduplicated into the one incident


def test_wrong_token_is_refused_and_logged(stack: Stack) -> None:
    r = httpx.post(f"{stack.firebreak}/webhooks/alertmanager", json={"alerts": []},
                   headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 401
    line = _wait("the refusal in the server log",
                 lambda: [x for x in stack.serve_log.read_text().splitlines() if "refused alertmanager" in x],
                 10, [stack.serve_log])
    assert len(line) == 1 and "401" in line[0]
