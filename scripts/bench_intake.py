"""Alert-storm benchmark: batched Alertmanager and Grafana deliveries to a real uvicorn server.

Starts `firebreak`'s app (no investigation worker) under uvicorn on 127.0.0.1 in a subprocess over
a fresh data dir (and, with `--database-url`, a fresh PostgreSQL database), posts `--alerts` alerts
in deliveries of `--batch`, `--concurrency` senders at a time, signed as the vendors sign them
(Alertmanager: bearer token; Grafana: timestamped HMAC), then counts the rows in the state database.
Prints throughput, per-delivery latency percentiles, the server's CPU per alert and losses (alerts
acknowledged with 202 but not in the database), one server per concurrency level.

    python scripts/bench_intake.py                          # 20,000 alerts, batches of 100, 1, 2 and 4 senders
    python scripts/bench_intake.py --concurrency 4 --alerts 50000 --batch 200
    python scripts/bench_intake.py --database-url postgresql://fb@127.0.0.1:5432/postgres

Targets (issue 14): >= 8,000 alerts/s and p99 < 100 ms per delivery with 1, 2 and 4 senders, zero
alerts lost. Exit status 1 when an acknowledged alert is lost or a delivery is not answered 202.
The CPU is shared with the senders (and whatever else runs): the load average is printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-webhook-token"
GRAFANA_SECRET = "bench-grafana-secret"


def serve(port: int, data_dir: Path, database_url: str | None = None) -> None:
    """The server side: the real app, real uvicorn, loopback only."""
    sys.path.insert(0, str(REPO))
    import uvicorn
    from pydantic import SecretStr

    from firebreak.context import ToolContext
    from firebreak.server.app import create_app
    from firebreak.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, database_url=database_url, webhook_token=SecretStr(TOKEN),
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


def _fresh_postgres(url: str, name: str) -> str:
    """A new empty database next to the one `url` names; its URL."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _drop_postgres(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _counts(db_url: str) -> tuple[int, int, int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return tuple(int(conn.execute(text(q)).scalar_one()) for q in (  # type: ignore[return-value]
                "SELECT count(*) FROM alerts", "SELECT count(*) FROM alerts WHERE incident_id IS NULL",
                "SELECT count(*) FROM incidents", "SELECT count(*) FROM investigations"))
    finally:
        engine.dispose()


def run_once(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    """One server, one storm at `concurrency` senders; the figures."""
    import httpx

    data_dir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    db_name = f"firebreak_bench_{os.getpid()}_{concurrency}"
    db_url = _fresh_postgres(args.database_url, db_name) if args.database_url else None
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", str(data_dir)]
    server = subprocess.Popen([*command, *(["--database-url", db_url] if db_url else [])], cwd=str(data_dir), env=env)
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
                raise SystemExit("server did not start")
            time.sleep(0.2)

        warmup = _deliveries(4 * args.batch, args.batch, args.services, "warmup")
        _, warm_statuses, _ = asyncio.run(_send(port, warmup, 1))
        deliveries = _deliveries(args.alerts, args.batch, args.services, "storm")
        cpu0 = _cpu_seconds(server.pid)
        latencies, statuses, wall = asyncio.run(_send(port, deliveries, concurrency))
        cpu = _cpu_seconds(server.pid) - cpu0
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        server.terminate()
        server.wait(timeout=30)
    try:
        stored, unassigned, incidents, investigations = _counts(
            db_url or f"sqlite:///{data_dir / 'firebreak.db'}")
    finally:
        if args.database_url:
            _drop_postgres(args.database_url, db_name)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    # Every alert of a delivery answered 202 must be stored (fingerprints are unique per run).
    acknowledged = (statuses.get(202, 0) + warm_statuses.get(202, 0)) * args.batch
    return {
        "concurrency": concurrency, "deliveries": len(deliveries), "statuses": dict(sorted(statuses.items())),
        "wall": wall, "rate": args.alerts / wall, "latencies": latencies, "cpu": cpu,
        "lost": max(0, acknowledged - stored), "stored": stored, "acknowledged": acknowledged,
        "unassigned": unassigned, "incidents": incidents, "investigations": investigations,
        "data_dir": str(data_dir),
        "refused": [line for line in metrics.splitlines() if line.startswith("firebreak_webhook_refused_total")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", default="1,2,4", help="senders; a comma list runs one server each")
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--database-url", help="postgresql://... (a fresh database is made next to it per run)")
    parser.add_argument("--keep", action="store_true", help="keep each run's data dir (printed) to inspect")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.data_dir, args.database_url)
        return 0

    ok = True
    summary = []
    for concurrency in (int(c) for c in str(args.concurrency).split(",")):
        r = run_once(args, concurrency)
        p50, p95, p99 = (_pct(r["latencies"], q) * 1000 for q in (0.5, 0.95, 0.99))
        cpu_per_alert = r["cpu"] / args.alerts * 1000
        print(f"deliveries        {r['deliveries']} x {args.batch} alerts, {concurrency} concurrent senders, "
              f"{args.services} services, {'PostgreSQL' if args.database_url else 'SQLite'}")
        print(f"answers           {r['statuses']}")
        print(f"wall              {r['wall']:.2f} s")
        print(f"throughput        {r['rate']:,.0f} alerts/s   (target >= 8,000)")
        print(f"latency/delivery  p50 {p50:.1f} ms   p95 {p95:.1f} ms   p99 {p99:.1f} ms   max "
              f"{max(r['latencies']) * 1000:.1f} ms   (target p99 < 100 ms)")
        print(f"server CPU        {r['cpu']:.2f} s = {cpu_per_alert:.3f} ms per alert, "
              f"{args.alerts / r['cpu']:,.0f} alerts per CPU-second; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs")
        print(f"stored            {r['stored']} of {r['acknowledged']} acknowledged (lost {r['lost']}); "
              f"without incident {r['unassigned']}")
        print(f"incidents         {r['incidents']}   investigations {r['investigations']}"
              + (f"   data dir {r['data_dir']}" if args.keep else ""))
        print(f"refused (metrics) {r['refused'] or 'none'}")
        passed = r["statuses"].get(202, 0) == r["deliveries"] and r["lost"] == 0
        ok = ok and passed
        met = passed and r["rate"] >= 8000 and p99 < 100
        print("RESULT            " + ("PASS" if met else "FAIL") + "\n")
        summary.append(f"{concurrency:>7} {r['rate']:>9,.0f} {p50:>7.1f} {p99:>7.1f} {r['lost']:>5} "
                       f"{cpu_per_alert:>12.3f}  " + ("PASS" if met else "FAIL"))
    print("senders  alerts/s  p50 ms  p99 ms  lost  CPU ms/alert")
    print("\n".join(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
