"""Benchmark of OTLP/HTTP intake against issue 16's targets; prints figures.

    python scripts/bench_otlp.py                        # 100,000 spans and 250,000 log records
    python scripts/bench_otlp.py --spans 20000 --logs 50000 --gzip
    python scripts/bench_otlp.py --redaction           # only: redaction lines/s, one by one and batched

Starts a real `firebreak serve` on a free 127.0.0.1 port, builds export requests with the
OpenTelemetry SDK and its own OTLP encoder (batches of 512, the SDK's and Collector's default batch
size), then posts them over loopback from `--senders` threads, as many exporters would. Building
the requests is not timed (a sender's CPU is not Firebreak's); the timed part is HTTP in, parse,
convert and stored. Afterwards the stores are counted: every span and record sent must be there.
Targets: >= 20,000 spans/s and >= 50,000 log records/s, 0 lost.

The machine may be shared: besides wall-clock rates the script prints the server process's CPU time
per span and per record (from /proc), which load from other processes changes far less; 1e6 divided
by it is what one otherwise idle core could take. `--resend N` posts N log requests a second time,
as an exporter's retries would: they must not be stored twice.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from firebreak.tools.log_store import LogStore  # noqa: E402
from firebreak.tools.trace_store import TraceStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
BATCH = 512
SERVICES = ["front-end", "orders", "carts", "catalogue", "payment", "user"]


def span_bodies(n: int, compress: bool) -> list[bytes]:
    """Export requests of BATCH spans each: traces of 6 spans across SERVICES (one provider per service)."""
    memory = InMemorySpanExporter()
    providers = []
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(p)
    tracers = [p.get_tracer("bench") for p in providers]
    for i in range(n // len(SERVICES)):
        with tracers[0].start_as_current_span("GET /orders") as root:
            root.set_attribute("http.route", "/orders")
            ctx = trace.set_span_in_context(root)
            for t in tracers[1:]:
                with t.start_as_current_span("handle", context=ctx) as s:
                    s.set_attribute("request.n", i)
    spans = list(memory.get_finished_spans())
    bodies = [encode_spans(spans[i : i + BATCH]).SerializeToString() for i in range(0, len(spans), BATCH)]
    return [gzip.compress(b) for b in bodies] if compress else bodies


def log_bodies(n: int, compress: bool) -> list[bytes]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "mailer"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = logging.getLogger("bench_otlp")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    for i in range(n):
        logger.info("sent batch %d of mails to relay smtp-%d in %d ms", i, i % 3, i % 250)
    logger.removeHandler(handler)
    records = list(memory.get_finished_logs())
    bodies = [encode_logs(records[i : i + BATCH]).SerializeToString() for i in range(0, len(records), BATCH)]
    return [gzip.compress(b) for b in bodies] if compress else bodies


def post_all(url: str, bodies: list[bytes], senders: int, compress: bool) -> tuple[float, int]:
    """Post every body from `senders` threads; (seconds, failed requests)."""
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failed = 0

    def work() -> None:
        nonlocal failed
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                r = client.post(url, content=body, headers=headers)
                if r.status_code != 200:
                    with lock:
                        failed += 1
                    print(f"  HTTP {r.status_code}: {r.text[:200]}", file=sys.stderr)

    threads = [threading.Thread(target=work) for _ in range(senders)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t, failed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redaction_lines(n: int, seed: int = 7) -> list[str]:
    """Log lines for the redaction micro-benchmark: 60% plain, the rest with URLs, e-mail addresses,
    URL escapes, JSON, key words and a password pair; each distinct (numbers vary), as real logs are."""
    rnd = random.Random(seed)
    shapes = [
        (0.60, "sent batch {i} of mails to relay smtp-{a} in {b} ms"),
        (0.70, "GET http://orders.internal:8080/api/v1/orders/{i} returned 503 after {b} ms"),
        (0.75, "notified user{i}@example.com about order {i}"),
        (0.80, "cache miss for session key {i:08x}, refreshing token store"),
        (0.85, "path /search?q=caf%C3%A9&page={i} took {b} ms"),
        (0.90, '{{"level":"info","msg":"request done","status":200,"dur_ms":{b},"route":"/api/items/{i}"}}'),
        (0.95, "retry {i}: upstream catalogue returned HTTP 500 Internal Server Error (attempt {a})"),
        (1.00, "login failed password=Hunter{i}xyz for admin from 10.0.{a}.{b}"),
    ]
    out = []
    for i in range(n):
        r = rnd.random()
        out.append(next(fmt for p, fmt in shapes if r < p).format(i=i, a=i % 3, b=i % 250))
    return out


def bench_redaction(n: int) -> None:
    """Lines/s of redact_text one by one and of redact_many in batches of 512, CPU time, best of 3."""
    from firebreak import redact
    from firebreak.redact_batch import redact_many

    mixed = redaction_lines(n)
    plain = [f"sent batch {i} of mails to relay smtp-{i % 3} in {i % 250} ms" for i in range(n)]
    assert redact_many(mixed) == [redact.redact_text(t) for t in mixed]

    def rate(fn: Callable[[list[str]], None], lines: list[str]) -> float:
        best = float("inf")
        for _ in range(3):
            redact._redact_cached.cache_clear()
            t = time.process_time()
            fn(lines)
            best = min(best, time.process_time() - t)
        return len(lines) / best

    def one_by_one(lines: list[str]) -> None:
        for t in lines:
            redact.redact_text(t)

    def batched(lines: list[str]) -> None:
        for i in range(0, len(lines), BATCH):
            redact_many(lines[i : i + BATCH])

    for name, lines in (("mixed", mixed), ("plain", plain)):
        print(
            f"redaction, {name} lines ({n:,}): redact_text one by one {rate(one_by_one, lines):,.0f} lines/s, "
            f"redact_many by {BATCH} {rate(batched, lines):,.0f} lines/s (CPU time)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--logs", type=int, default=250_000)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--gzip", action="store_true", help="compress bodies as the Collector does by default")
    ap.add_argument("--resend", type=int, default=0, help="post this many log requests again (retries)")
    ap.add_argument("--redaction", action="store_true", help="only the redaction micro-benchmark")
    args = ap.parse_args()
    if args.redaction:
        bench_redaction(100_000)
        return
    print("building export requests with the OpenTelemetry SDK encoder ...", file=sys.stderr)
    spans = span_bodies(args.spans, args.gzip)
    logs = log_bodies(args.logs, args.gzip)
    n_spans = (args.spans // len(SERVICES)) * len(SERVICES)
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
        env.update(FIREBREAK_DATA_DIR=f"{tmp}/data", FIREBREAK_OTLP_TOKEN=TOKEN, PYTHONPATH=str(REPO))
        cmd = [
            sys.executable,
            "-m",
            "firebreak.cli",
            "serve",
            "--port",
            str(port),
            "--no-worker",
            "--log-level",
            "warning",
        ]
        proc = subprocess.Popen(cmd, cwd=tmp, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("firebreak serve did not start") from None
                    time.sleep(0.2)
            cpu = cpu_seconds(proc.pid)
            dt, failed = post_all(f"{base}/v1/traces", spans, args.senders, args.gzip)
            cpu_us = (cpu_seconds(proc.pid) - cpu) / n_spans * 1e6
            store = TraceStore(Path(tmp) / "data" / "traces.sqlite3")
            stored = store.count()
            store.close()
            print(
                f"traces: {n_spans:,} spans in {len(spans)} requests in {dt:.2f} s = {n_spans / dt:,.0f} spans/s; "
                f"stored {stored:,}, lost {n_spans - stored:,}, failed requests {failed} "
                f"({'gzip' if args.gzip else 'uncompressed'}, {args.senders} senders); target >= 20,000 spans/s; "
                f"server CPU {cpu_us:.1f} us/span"
            )
            cpu = cpu_seconds(proc.pid)
            dt, failed = post_all(f"{base}/v1/logs", logs, args.senders, args.gzip)
            cpu_us = (cpu_seconds(proc.pid) - cpu) / args.logs * 1e6
            _, refailed = post_all(f"{base}/v1/logs", logs[: args.resend], args.senders, args.gzip)
            lstore = LogStore(Path(tmp) / "data" / "logs.sqlite3")
            (stored,) = lstore._conn().execute("SELECT COUNT(*) FROM log_lines").fetchone()
            lstore.close()
            resent = f"; {min(args.resend, len(logs))} requests re-sent, failed {refailed}" if args.resend else ""
            print(
                f"logs: {args.logs:,} records in {len(logs)} requests in {dt:.2f} s = {args.logs / dt:,.0f} "
                f"records/s; stored {stored:,}, lost {max(0, args.logs - stored):,}, "
                f"duplicated {max(0, stored - args.logs):,}, failed requests {failed}{resent}; "
                f"target >= 50,000 records/s; server CPU {cpu_us:.1f} us/record"
            )
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
