"""Benchmark the offline investigator: wall time with 50,000 log lines in the stores, and drill scores.

    python scripts/bench_agent.py                      # 50k lines, 5 runs
    python scripts/bench_agent.py --lines 100000 --runs 3
    python scripts/bench_agent.py --drills simulations/scenarios   # also hit@1/hit@3/fix rate

Prints one JSON object: lines written, wall seconds from "incident open" (queue + run_due) to a
finished report (first run and median), tool calls, the top suspect, and, with --drills, the figures
of `firebreak drill bench DIR --json`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SERVICES = {
    "mailer": ["sent batch {n} of {n} mails in {ms}ms", "scheduler tick picked {n} jobs"],
    "api": ["GET /v1/campaigns/{id} 200 {ms}ms", "POST /v1/contacts 201 {ms}ms"],
    "checkout": ["POST /checkout/{id} 200 {ms}ms", "cart {id} priced in {ms}ms"],
    "search": ["query {id} answered {n} hits in {ms}ms"],
    "auth": ["token issued for user u{n} in {ms}ms"],
    "billing": ["invoice {id} issued in {ms}ms"],
}


def _fill(template: str, rnd: random.Random) -> str:
    return (
        template.replace("{n}", str(rnd.randint(1, 500)))
        .replace("{ms}", str(rnd.randint(5, 400)))
        .replace("{id}", f"{rnd.getrandbits(32):08x}")
    )


def build_world(ctx: Any, n_lines: int) -> str:
    """Telemetry for one incident (mailer 4.6.2 retry loop) plus red herrings; returns the incident id."""
    from firebreak.memory.incident_log import open_incident
    from firebreak.state.alerts import Alert
    from firebreak.tools.changes import ChangeIn, record_change
    from firebreak.tools.log_store import LogLine, get_log_store
    from firebreak.tools.metric_store import MetricPoint, get_metric_store

    rnd = random.Random(7)
    minutes = 50
    lines: list[LogLine] = []
    per_service = max(1, (n_lines - 6000) // len(SERVICES))
    for svc, templates in SERVICES.items():
        for i in range(per_service):
            ts = START + timedelta(seconds=minutes * 60 * i / per_service)
            level = "WARN" if i % 50 == 0 else "INFO"
            lines.append(LogLine(ts, svc, level, _fill(rnd.choice(templates), rnd)))
    for i in range(n_lines - len(lines)):  # the incident: retries from minute 12
        ts = START + timedelta(minutes=12) + timedelta(seconds=(minutes - 13) * 60 * i / 6000)
        lines.append(
            LogLine(
                ts,
                "mailer",
                "ERROR",
                f"retry attempt {rnd.randint(6, 90)} for job j{rnd.getrandbits(24):06x}: smtp timeout",
            )
        )
    lines.sort(key=lambda ln: ln.ts)
    get_log_store(ctx).ingest(lines)
    points = []
    for step in range(minutes * 4):
        ts = START + timedelta(seconds=15 * step)
        mem = 4e8 if step < 60 else 4e8 + (step - 60) * 2.5e7
        points.append(MetricPoint(ts, "mailer", "process_resident_memory_bytes", mem * rnd.uniform(0.98, 1.02)))
        for svc in SERVICES:
            points.append(MetricPoint(ts, svc, "http_request_error_ratio", 0.002 * rnd.uniform(0.7, 1.3)))
    get_metric_store(ctx).ingest(points)
    with ctx.db.session() as s:
        record_change(
            s,
            ChangeIn.model_validate(
                {
                    "kind": "deploy",
                    "service": "mailer",
                    "version": "4.6.2",
                    "previous_version": "4.6.1",
                    "note": "retry policy rewrite",
                    "at": START + timedelta(minutes=10),
                }
            ),
            source="bench",
        )
        record_change(
            s,
            ChangeIn.model_validate(
                {
                    "kind": "deploy",
                    "service": "api",
                    "version": "2.31.1",
                    "previous_version": "2.31.0",
                    "note": "copy changes",
                    "at": START + timedelta(minutes=14),
                }
            ),
            source="bench",
        )
        inc = open_incident(
            s,
            title="Mailer memory high",
            services=["mailer"],
            severity="major",
            at=ctx.clock.now(),
            actor="bench",
            source="bench",
        )
        s.add(
            Alert(
                source="grafana",
                fingerprint="bench-1",
                status="firing",
                service="mailer",
                severity="critical",
                title="MailerMemoryHigh",
                summary="Mailer memory above 90%",
                started_at=START + timedelta(minutes=41),
                labels={},
                links=[],
                raw={},
                received_at=ctx.clock.now(),
                last_received_at=ctx.clock.now(),
                incident_id=inc.id,
            )
        )
        return inc.id


def bench_wall(n_lines: int, runs: int, *, cold: bool = False) -> dict[str, Any]:
    from firebreak.agent.investigator import queue_investigation
    from firebreak.agent.worker import run_due, warm_up
    from firebreak.clock import FixedClock
    from firebreak.context import ToolContext
    from firebreak.settings import Settings
    from firebreak.state.investigations import Investigation

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        ctx = ToolContext(settings=settings, clock=FixedClock(START + timedelta(minutes=45)))
        t_seed = time.perf_counter()
        incident_id = build_world(ctx, n_lines)
        seed_s = time.perf_counter() - t_seed
        # `firebreak serve` warms up when its worker starts, before any alert; --cold measures without.
        warm_s = 0.0 if cold else warm_up(ctx)
        walls: list[float] = []
        report: dict[str, Any] = {}
        tool_calls = 0
        for _ in range(runs):
            t0 = time.perf_counter()
            inv_id = queue_investigation(ctx, incident_id)
            run_due(ctx)
            walls.append(time.perf_counter() - t0)
            with ctx.db.session() as s:
                inv = s.get(Investigation, inv_id)
                assert inv is not None
                report = inv.report or {}
                tool_calls = len(inv.tool_calls or [])
        ctx.close()
    top = (report.get("hypotheses") or [{}])[0].get("suspect")
    return {
        "log_lines": n_lines,
        "seed_seconds": round(seed_s, 2),
        "warm_up_seconds": round(warm_s, 2),
        "cold": cold,
        "runs": runs,
        "wall_seconds_first": round(walls[0], 3),
        "wall_seconds_median": round(statistics.median(walls), 3),
        "wall_seconds_max": round(max(walls), 3),
        "tool_calls": tool_calls,
        "top_suspect": top,
        "proposed_fix": report.get("proposed_fix"),
    }


def bench_drills(directory: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "firebreak.cli", "drill", "bench", directory, "--json"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    data = json.loads(proc.stdout)
    misses = [
        {"scenario": r.get("scenario"), "rank": r.get("rank")} for r in data.get("results", []) if r.get("rank") != 1
    ]
    return {k: data.get(k) for k in ("scenarios", "hit_at_1", "hit_at_3", "mitigation_ok", "median_wall_seconds")} | {
        "misses": misses
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--drills", help="a folder of drill scenarios to score (firebreak drill bench)")
    parser.add_argument("--cold", action="store_true", help="no warm-up: the first run pays library loading")
    args = parser.parse_args()
    out: dict[str, Any] = {"investigator": "offline", "wall": bench_wall(args.lines, args.runs, cold=args.cold)}
    if args.drills:
        out["drills"] = bench_drills(args.drills)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
