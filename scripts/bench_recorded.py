"""Measure recorded-incident replay, and optionally a whole recorded bench.

    .venv/bin/python scripts/bench_recorded.py                  # replay of a generated 50 MB logs+traces folder
    .venv/bin/python scripts/bench_recorded.py --mb 50 --gzip   # the same files gzip-compressed
    .venv/bin/python scripts/bench_recorded.py --bench ../shared/recorded/sockshop   # + a whole bench, timed

The generated incident is synthetic on purpose (the project's real recordings have no licence to be
copied): a small shop of services with INFO/WARN/ERROR lines, three-span traces frontend -> service ->
database, a latency step at the onset. `--mb` counts the uncompressed bytes of logs.jsonl plus
traces.csv. Replay means: read and check every file, then write into fresh embedded stores (what
`firebreak drill run FOLDER` does before the investigator runs); the drill with the investigator is
timed separately.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SERVICES = ["frontend", "cart", "checkout", "catalog", "payments", "shipping", "users", "search"]
T0 = datetime(2025, 6, 3, 9, 0, tzinfo=UTC)
ONSET = T0 + timedelta(minutes=50)
TRIAGE = T0 + timedelta(minutes=58)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _open(path: Path, gz: bool) -> IO[str]:
    if gz:
        return gzip.open(path.with_name(path.name + ".gz"), "wt", encoding="utf-8", compresslevel=1)
    return path.open("w", encoding="utf-8")


def generate(folder: Path, mb: float, gz: bool, seed: int = 1) -> dict[str, int]:
    """Write a recorded-incident folder whose logs+traces hold about `mb` megabytes of text."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    span_s = (TRIAGE - T0).total_seconds()
    budget = int(mb * 1_000_000)
    log_budget, trace_budget = budget * 3 // 5, budget * 2 // 5
    counts = {"log_lines": 0, "spans": 0, "log_bytes": 0, "trace_bytes": 0}
    with _open(folder / "logs.jsonl", gz) as fh:
        while counts["log_bytes"] < log_budget:
            t = T0 + timedelta(seconds=rnd.random() * span_s)
            svc = rnd.choice(SERVICES)
            bad = t >= ONSET and svc == "checkout" and rnd.random() < 0.3
            level = "ERROR" if bad else rnd.choice(["INFO"] * 8 + ["WARN", "DEBUG"])
            msg = (f"payment call failed after {rnd.randint(900, 3000)}ms: pool exhausted" if bad
                   else f"request {rnd.getrandbits(48):012x} {rnd.choice(['GET', 'POST'])} /api/{svc}/"
                        f"{rnd.randint(1, 9999)} answered 200 in {rnd.randint(3, 90)}ms")
            line = json.dumps({"ts": iso(t), "service": svc, "level": level, "message": msg,
                               "attributes": {"pod": f"{svc}-{rnd.randint(1, 3)}", "region": "eu-west-1"}}) + "\n"
            fh.write(line)
            counts["log_lines"] += 1
            counts["log_bytes"] += len(line)
    with _open(folder / "traces.csv", gz) as fh:
        fh.write("trace_id,span_id,parent_id,service,operation,start,end,status\n")
        while counts["trace_bytes"] < trace_budget:
            t = T0 + timedelta(seconds=rnd.random() * (span_s - 10))
            svc = rnd.choice(SERVICES[1:])
            slow = t >= ONSET and svc == "checkout"
            tid = f"{rnd.getrandbits(128):032x}"
            ids = [f"{rnd.getrandbits(64):016x}" for _ in range(3)]
            inner = timedelta(milliseconds=rnd.uniform(1, 20) + (900 if slow else 0))
            s2, e2 = t + timedelta(milliseconds=2), t + timedelta(milliseconds=2) + inner
            rows = [(ids[0], "", "frontend", f"GET /{svc}", t, e2 + timedelta(milliseconds=3), "ok"),
                    (ids[1], ids[0], svc, f"handle {svc}", t + timedelta(milliseconds=1),
                     e2 + timedelta(milliseconds=1), "error" if slow and rnd.random() < 0.2 else "ok"),
                    (ids[2], ids[1], f"{svc}-db", "SELECT", s2, e2, "")]
            for sid, parent, service, op, start, end, status in rows:
                line = f"{tid},{sid},{parent},{service},{op},{iso(start)},{iso(end)},{status}\n"
                fh.write(line)
                counts["spans"] += 1
                counts["trace_bytes"] += len(line)
    with _open(folder / "metrics.csv", gz) as fh:
        fh.write("ts,service,name,value\n")
        t = T0
        while t <= TRIAGE:
            for svc in SERVICES:
                lat = 0.05 + rnd.random() * 0.01 + (0.9 if svc == "checkout" and t >= ONSET else 0.0)
                fh.write(f"{int(t.timestamp() * 1000)},{svc},latency_p99_seconds,{lat:.4f}\n")
            t += timedelta(seconds=15)
    alert_at = iso(ONSET + timedelta(minutes=3))
    deps = "".join(f"  - {{service: frontend, depends_on: {s}}}\n  - {{service: {s}, depends_on: {s}-db}}\n"
                   for s in SERVICES[1:])
    (folder / "incident.yaml").write_text(f"""version: 1
kind: recorded-incident
id: generated-checkout-pool
source: "scripts/bench_recorded.py, seed {seed}"
window: {{since: {iso(T0)}, until: {iso(TRIAGE)}}}
onset: {iso(ONSET)}
triage_at: {iso(TRIAGE)}
dependencies:
{deps}alerts:
  - {{service: frontend, title: "frontend P99 latency above 1s", severity: major, at: {alert_at}}}
truth:
  level: service
  culprit: {{kind: resource, service: checkout, ref: connections}}
  fault: generated
""")
    return counts


def measure_replay(folder: Path) -> dict[str, float]:
    from firebreak.db import forget_database
    from firebreak.simulations.recorded.model import load_incident
    from firebreak.simulations.recorded.readers import read_folder
    from firebreak.simulations.recorded.replay import check_changes, replay
    from firebreak.simulations.recorded.run import make_recorded_env

    began = time.perf_counter()
    cpu0, kids0 = time.process_time(), _children_cpu()
    inc = load_incident(folder)
    tel = read_folder(folder, inc.triage_at)
    changes = check_changes(tel)
    read_s = time.perf_counter() - began
    env = make_recorded_env(inc)
    try:
        t = time.perf_counter()
        counts = replay(env.ctx, tel, changes)
        write_s = time.perf_counter() - t
    finally:
        env.close()
        forget_database(env.settings)
    # CPU seconds say what the wall time would be on two free cores when the machine is shared.
    cpu, kids = time.process_time() - cpu0, _children_cpu() - kids0
    return {"read_s": round(read_s, 2), "write_s": round(write_s, 2), "replay_s": round(read_s + write_s, 2),
            "cpu_s": round(cpu, 2), "span_writer_cpu_s": round(kids, 2),
            **{k: float(v) for k, v in counts.items()}}


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=50.0, help="uncompressed MB of logs + traces (default 50)")
    ap.add_argument("--gzip", action="store_true", help="write logs.jsonl.gz and traces.csv.gz")
    ap.add_argument("--drill", action="store_true", help="also run the whole drill (replay + intake + investigator)")
    ap.add_argument("--bench", type=Path, help="also bench every recorded folder below this one and time it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="firebreak-bench-recorded-") as tmp:
        folder = Path(tmp) / "generated"
        t = time.perf_counter()
        counts = generate(folder, args.mb, args.gzip)
        on_disk = sum(p.stat().st_size for p in folder.iterdir())
        print(f"generated {counts['log_lines']:,} log lines ({counts['log_bytes'] / 1e6:.1f} MB) and "
              f"{counts['spans']:,} spans ({counts['trace_bytes'] / 1e6:.1f} MB), {on_disk / 1e6:.1f} MB on disk "
              f"({'gzip' if args.gzip else 'plain'}) in {time.perf_counter() - t:.1f} s")
        res = measure_replay(folder)
        print(f"replay: read+check {res['read_s']:.2f} s, write into the stores {res['write_s']:.2f} s, "
              f"total {res['replay_s']:.2f} s (target <= 10 s); {int(res['log_lines']):,} lines, "
              f"{int(res['spans']):,} spans, {int(res['metric_points']):,} metric points")
        print(f"cpu: {res['cpu_s']:.2f} s in this process, {res['span_writer_cpu_s']:.2f} s in the span writer "
              f"(on two free cores the replay takes about the larger; load average now "
              f"{os.getloadavg()[0]:.1f}); peak memory {_peak_mb():.0f} MB")
        if args.drill:
            from firebreak.simulations.recorded.run import run_recorded
            from firebreak.simulations.runner import preload

            preload()
            result = run_recorded(folder)
            print(f"whole drill: {result.wall_seconds:.2f} s wall, timings {result.details.get('timings')}")
    if args.bench:
        from firebreak.simulations.bench import summary_lines
        from firebreak.simulations.cli import bench_dir

        t, cpu = time.perf_counter(), time.process_time()
        agg = bench_dir(args.bench, progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"bench {args.bench}: {agg['scenarios']} drills in {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(target <= 120 s; load average now {os.getloadavg()[0]:.1f})")
        for line in summary_lines(agg):
            print(line)


if __name__ == "__main__":
    main()
