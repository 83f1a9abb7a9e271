"""Alert-storm benchmark: batched Alertmanager and Grafana deliveries to a real uvicorn server.

Starts `firebreak`'s app (no investigation worker) under uvicorn on 127.0.0.1 in a subprocess over
a fresh data dir, posts `--alerts` alerts in deliveries of `--batch`, `--concurrency` at a time,
signed as the vendors sign them (Alertmanager: bearer token; Grafana: timestamped HMAC), then counts
the rows in the state database. Prints throughput, per-delivery latency percentiles and losses.

    python scripts/bench_intake.py                      # 20,000 alerts, batches of 100, 2 senders
    python scripts/bench_intake.py --alerts 50000 --batch 200 --concurrency 8

Targets (issue 3): >= 2,000 alerts/s, p99 < 100 ms per delivery, zero alerts lost. Exit status 1
when an alert is lost or a delivery is not answered 202.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-webhook-token"
GRAFANA_SECRET = "bench-grafana-secret"


def serve(port: int, data_dir: Path) -> None:
    """The server side: the real app, real uvicorn, loopback only."""
    sys.path.insert(0, str(REPO))
    import uvicorn
    from pydantic import SecretStr

    from firebreak.context import ToolContext
    from firebreak.server.app import create_app
    from firebreak.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, webhook_token=SecretStr(TOKEN),
        grafana_hmac_secret=SecretStr(GRAFANA_SECRET), public_metrics=True,  # scraped below without a token
    )
    ctx = ToolContext(settings=settings)
    app = create_app(ctx, start_worker=False)
    if not any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        from firebreak.server.observability import router

        app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deliveries(total: int, batch: int, services: int, run: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Pre-rendered (path, body, headers): rendering is not what is measured."""
    out = []
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for start in range(0, total, batch):
        grafana = (start // batch) % 2 == 1
        alerts = []
        for i in range(start, min(start + batch, total)):
            service = f"svc-{i % services:03d}"
            labels = {"alertname": "HighErrorRate", "service": service, "instance": f"{service}-{i}:8080",
                      "severity": "critical" if i % 7 == 0 else "warning"}
            alert: dict[str, Any] = {
                "status": "firing", "labels": labels,
                "annotations": {"summary": f"5xx ratio above 5% for {service}",
                                "runbook_url": "https://runbooks.example.internal/high-error-rate"},
                "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.internal:9090/graph?g0.expr=up",
                "fingerprint": hashlib.sha256(f"{run}-{i}".encode()).hexdigest()[:16],
            }
            if grafana:
                alert.update({"silenceURL": "", "dashboardURL": "", "panelURL": "", "values": {"B": 1.0}})
            alerts.append(alert)
        payload = {"receiver": "firebreak", "status": "firing", "alerts": alerts, "groupLabels": {},
                   "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am.example.internal",
                   "version": "1" if grafana else "4", "groupKey": "{}:{}", "truncatedAlerts": 0}
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if grafana:
            stamp = str(int(time.time()))
            headers["X-Grafana-Alerting-Timestamp"] = stamp
            headers["X-Grafana-Alerting-Signature"] = hmac.new(
                GRAFANA_SECRET.encode(), stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
            out.append(("/webhooks/grafana", body, headers))
        else:
            headers["Authorization"] = f"Bearer {TOKEN}"
            out.append(("/webhooks/alertmanager", body, headers))
    return out


async def _send(port: int, deliveries: list[tuple[str, bytes, dict[str, str]]], concurrency: int
                ) -> tuple[list[float], dict[int, int], float]:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a client this thin leaves the CPU to the server."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    requests = []
    for path, body, headers in deliveries:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests.append(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    pending = list(reversed(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while pending:
                request = pending.pop()
                t0 = time.perf_counter()
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux), to tell the server's cost from a busy machine's noise."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.data_dir)
        return 0

    import httpx

    data_dir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=str(data_dir), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print("server did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)

        warmup = _deliveries(4 * args.batch, args.batch, args.services, "warmup")
        asyncio.run(_send(port, warmup, 1))
        deliveries = _deliveries(args.alerts, args.batch, args.services, "storm")
        cpu0 = _cpu_seconds(server.pid)
        latencies, statuses, wall = asyncio.run(_send(port, deliveries, args.concurrency))
        cpu = _cpu_seconds(server.pid) - cpu0
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        server.terminate()
        server.wait(timeout=30)

    sent = args.alerts + len(warmup) * args.batch
    with sqlite3.connect(data_dir / "firebreak.db") as db:
        stored = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        unassigned = db.execute("SELECT count(*) FROM alerts WHERE incident_id IS NULL").fetchone()[0]
        incidents = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
        investigations = db.execute("SELECT count(*) FROM investigations").fetchone()[0]
    rate = args.alerts / wall
    p50, p95, p99 = (_pct(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
    ok = statuses.get(202, 0) == len(deliveries)
    lost = sent - stored
    refused = [line for line in metrics.splitlines() if line.startswith("firebreak_webhook_refused_total")]
    print(f"deliveries        {len(deliveries)} x {args.batch} alerts, {args.concurrency} concurrent senders, "
          f"{args.services} services")
    print(f"answers           {dict(sorted(statuses.items()))}")
    print(f"wall              {wall:.2f} s")
    print(f"throughput        {rate:,.0f} alerts/s   (target >= 2,000)")
    print(f"latency/delivery  p50 {p50:.1f} ms   p95 {p95:.1f} ms   p99 {p99:.1f} ms   max "
          f"{max(latencies) * 1000:.1f} ms   (target p99 < 100 ms)")
    print(f"server CPU        {cpu:.2f} s = {cpu / len(deliveries) * 1000:.1f} ms per delivery, "
          f"{args.alerts / cpu:,.0f} alerts per CPU-second; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"stored            {stored} of {sent} sent (lost {lost}); without incident {unassigned}")
    print(f"incidents         {incidents}   investigations {investigations}")
    print(f"refused (metrics) {refused or 'none'}")
    passed = ok and lost == 0 and rate >= 2000 and p99 < 100
    print("RESULT            " + ("PASS" if passed else "FAIL"))
    return 0 if ok and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
