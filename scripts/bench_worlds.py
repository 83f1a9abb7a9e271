"""Bench the investigator on freshly generated worlds and print the figures per culprit kind.

    .venv/bin/python scripts/bench_worlds.py --count 60 --seed 101          # a table
    .venv/bin/python scripts/bench_worlds.py --count 60 --seed 101 --json   # one JSON object

The worlds are written to a temporary folder and run with `firebreak drill bench`'s own code, so
the figures are the bench's; this script only groups them by the kind of each world's culprit
(read from the scenario's truth, which is the scorer's side), next to the bench's naive baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firebreak.simulations.cli import bench_dir  # noqa: E402 - after the path fix so a plain checkout runs it
from firebreak.simulations.scenario import load_scenario  # noqa: E402
from firebreak.simulations.worlds import write_worlds  # noqa: E402


def per_kind(results: list[dict[str, Any]], kinds: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """hit@1, hit@3 and right-fix ratios per culprit kind (kinds: scenario id -> kind)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[kinds.get(r["scenario"], "?")].append(r)
    out = {}
    for kind, rs in sorted(groups.items()):
        n = len(rs)
        out[kind] = {
            "worlds": n,
            **{key: round(sum(1 for r in rs if r[key]) / n, 3) for key in ("hit_at_1", "hit_at_3", "mitigation_ok")},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bench the investigator on generated worlds, per culprit kind.")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fb-worlds-") as tmp:
        paths = write_worlds(args.count, args.seed, Path(tmp))
        # Metrics-only worlds (simulations/worlds/quiet.py) are their own rows: "resource/metrics".
        kinds = {
            (sc := load_scenario(p)).id: sc.truth.culprit.kind + ("/metrics" if sc.id.endswith("-metrics") else "")
            for p in paths
        }
        agg = bench_dir(Path(tmp), progress=not args.json)
    table = per_kind(agg["results"], kinds)
    summary = {k: agg[k] for k in ("scenarios", "hit_at_1", "hit_at_3", "mitigation_ok", "median_wall_seconds")}
    if args.json:
        print(json.dumps({**summary, "baselines": agg.get("baselines"), "per_kind": table}))
        return 0
    print(f"{'kind':<12} {'worlds':>6} {'hit@1':>6} {'hit@3':>6} {'fix':>6}")
    for kind, row in table.items():
        ratios = " ".join(f"{row[k]:>6.2f}" for k in ("hit_at_1", "hit_at_3", "mitigation_ok"))
        print(f"{kind:<12} {row['worlds']:>6} {ratios}")
    print(
        f"{'all':<12} {summary['scenarios']:>6} {summary['hit_at_1']:>6.2f} {summary['hit_at_3']:>6.2f} "
        f"{summary['mitigation_ok']:>6.2f}   median wall {summary['median_wall_seconds']:.2f} s"
    )
    for name, base in (agg.get("baselines") or {}).items():
        print(
            f"baseline {name}: hit@1 {base.get('hit_at_1')}  hit@3 {base.get('hit_at_3')}  "
            f"fix {base.get('mitigation_ok')}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
