"""Drill figures: wall time from file to score for a 90-minute, 50,000-line drill, and bench results.

Usage: python scripts/bench_drill.py [--runs 3] [--skip-bench]

Prints (1) the time of one drill of 90 simulated minutes with 50,000 log lines: a fresh
`firebreak drill run` process (imports included), the first drill in a process, and warm drills,
with the time per phase; (2) hit@1, hit@3, right-fix rate and median wall time of the offline
investigator on the library (simulations/scenarios) and on ../shared/scenarios.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firebreak.simulations.scenario import _ScenarioLoader, parse_scenario  # noqa: E402
from firebreak.simulations.units import parse_duration, parse_rate  # noqa: E402

TARGET_LINES = 50_000


def fifty_thousand_lines(path: Path) -> Path:
    """The mailer retry loop (90 simulated minutes), every rate scaled so it expects 50,000 lines."""
    data = yaml.load((ROOT / "simulations/scenarios/mailer-retry-loop.yaml").read_text(), Loader=_ScenarioLoader)  # noqa: S506
    sc = parse_scenario(copy.deepcopy(data))
    duration = sc.duration.total_seconds()
    expected = sum(s.logs.rate * duration for s in sc.services if s.logs)
    for ev in sc.timeline:
        if ev.logs is not None:
            end = min(duration, (ev.at + ev.logs.for_).total_seconds()) if ev.logs.for_ else duration
            expected += ev.logs.rate * (end - ev.at.total_seconds())
    factor = TARGET_LINES / expected

    def scale(rate: str) -> str:
        return f"{parse_rate(rate) * factor * 3600:.3f}/h"

    for svc in data["services"]:
        if "logs" in svc:
            svc["logs"]["rate"] = scale(svc["logs"]["rate"])
    for ev in data["timeline"]:
        if "logs" in ev:
            ev["logs"]["rate"] = scale(ev["logs"]["rate"])
    data["id"] = "perf-50k-lines"
    assert parse_duration(data["duration"]).total_seconds() == 90 * 60
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def perf(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = fifty_thousand_lines(Path(tmp) / "perf.yaml")
        t = time.perf_counter()
        proc = subprocess.run([str(ROOT / ".venv/bin/firebreak"), "drill", "run", str(file), "--json"],
                              capture_output=True, text=True, cwd=tmp, check=False)
        cli_wall = time.perf_counter() - t
        cli = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
        print(f"drill of 90 simulated minutes, ~{TARGET_LINES:,} log lines")
        print(f"  fresh CLI process:   {cli_wall:.2f} s process wall, {cli.get('wall_seconds', float('nan')):.2f} s "
              f"drill wall (rank {cli.get('rank')})")
        from firebreak.simulations.runner import run_drill

        walls = []
        for i in range(runs + 1):
            res = run_drill(file)
            label = "first in process" if i == 0 else f"warm run {i}"
            lines = res.details.get("log_lines")
            print(f"  {label:<19} {res.wall_seconds:.2f} s  ({lines:,} lines)  phases: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in res.details.get("timings", {}).items()))
            if i:
                walls.append(res.wall_seconds)
        print(f"  warm median:         {statistics.median(walls):.2f} s (target: at most 5 s)")


def bench(directory: Path) -> None:
    from firebreak.simulations.cli import bench_dir

    t = time.perf_counter()
    agg = bench_dir(directory, progress=False)
    took = time.perf_counter() - t
    print(f"{directory}: scenarios {agg['scenarios']}  hit@1 {agg['hit_at_1']:.3f}  hit@3 {agg['hit_at_3']:.3f}  "
          f"right fix {agg['mitigation_ok']:.3f}  median wall {agg['median_wall_seconds']:.2f} s  "
          f"(whole bench {took:.1f} s)")
    for r in agg["results"]:
        top = r["hypotheses"][0]["suspect"] if r["hypotheses"] else None
        print(f"    {r['scenario']:<36} rank {str(r['rank']):<5} fix {'ok ' if r['mitigation_ok'] else 'no '} "
              f"{r['wall_seconds']:5.2f} s  top {top}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="warm runs of the 50,000-line drill")
    parser.add_argument("--skip-bench", action="store_true", help="only the 50,000-line timing")
    args = parser.parse_args()
    perf(args.runs)
    if not args.skip_bench:
        bench(ROOT / "simulations" / "scenarios")
        bench(ROOT.parent / "shared" / "scenarios")


if __name__ == "__main__":
    main()
