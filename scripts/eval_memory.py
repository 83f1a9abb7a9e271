"""Retrieval quality of `similar_incidents`: dense-only, lexical-only and hybrid on a labelled set.

The set (tests/data/memory/eval_incidents.yaml) holds past incidents grouped in families (one failure
pattern each, on different services and in different words) and queries phrased as an on-call
engineer describes a new incident; a query's known similar incidents are its family. The incidents go
through the real incident log into a fresh data dir, the index syncs from it as in production.

Prints recall@5 (share of a query's known similar incidents in the top 5, averaged), hit@5 (at least
one in the top 5) and MRR (first relevant rank, top 10). Usage:
    python scripts/eval_memory.py [--data FILE] [--json] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firebreak.clock import FixedClock  # noqa: E402
from firebreak.context import ToolContext  # noqa: E402
from firebreak.memory import incident_log as il  # noqa: E402
from firebreak.memory.index import MemoryIndex  # noqa: E402
from firebreak.settings import Settings  # noqa: E402

DEFAULT_DATA = REPO / "tests" / "data" / "memory" / "eval_incidents.yaml"
DEFAULT_HELDOUT = REPO / "tests" / "data" / "memory" / "eval_heldout.yaml"
MODES = ("dense", "lexical", "hybrid")
K = 5
MRR_DEPTH = 10


Query = tuple[str, set[str]]


def load(path: Path, heldout: Path | None = None) -> tuple[list[dict[str, Any]], list[Query], list[Query]]:
    """Incidents (with generated ids and dates), dev queries and held-out queries with their relevant ids."""
    families = yaml.safe_load(path.read_text())["families"]
    incidents: list[dict[str, Any]] = []
    queries: list[Query] = []
    by_family: dict[str, set[str]] = {}
    start = datetime(2023, 1, 9, 9, 0, tzinfo=UTC)
    n = 0
    for name, fam in families.items():
        ids: set[str] = set()
        for inc in fam["incidents"]:
            n += 1
            at = start + timedelta(days=7 * n, hours=n % 11)
            inc_id = f"INC-{at.year}-{n:03d}"
            incidents.append({**inc, "id": inc_id, "at": at, "family": name})
            ids.add(inc_id)
        by_family[name] = ids
        for q in fam.get("queries", []):
            queries.append((q, ids))
    held: list[Query] = []
    if heldout is not None and heldout.exists():
        for i, q in enumerate(yaml.safe_load(heldout.read_text())["queries"]):
            if q["family"] not in by_family:
                raise SystemExit(f"{heldout}: queries[{i}].family: unknown family {q['family']!r}")
            held.append((q["text"], by_family[q["family"]]))
    return incidents, queries, held


def populate(ctx: ToolContext, incidents: list[dict[str, Any]]) -> None:
    with ctx.db.session() as s:
        for inc in incidents:
            at = inc["at"]
            row = il.open_incident(
                s, title=inc["title"], services=[inc["service"]], severity="major", at=at, actor="eval",
                started_at=at, symptoms=inc.get("symptoms", ""), incident_id=inc["id"],
            )
            end = at + timedelta(hours=2)
            il.update_incident(s, row, {"root_cause": inc.get("root_cause", "")}, at=end, actor="eval")
            for what in str(inc.get("countermeasures", "")).split(";"):
                if what.strip():
                    il.add_countermeasure(s, row, what=what.strip(), by="eval", at=end, worked=True)
            il.set_status(s, row, "resolved", at=end, actor="eval")


def evaluate(index: MemoryIndex, queries: list[Query], mode: str) -> dict[str, Any]:
    recall = hit = rr = 0.0
    misses: list[dict[str, Any]] = []
    latencies: list[float] = []
    for text, relevant in queries:
        t0 = time.perf_counter()
        hits = index.search(text, k=MRR_DEPTH, mode=mode)  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - t0)
        ranked = [h.id for h in hits]
        top = set(ranked[:K])
        found = len(top & relevant)
        recall += found / len(relevant)
        hit += 1.0 if found else 0.0
        first = next((i for i, rid in enumerate(ranked, 1) if rid in relevant), None)
        rr += 1.0 / first if first else 0.0
        if found < len(relevant):
            misses.append({"query": text, "missing": sorted(relevant - top), "top5": ranked[:K]})
    n = len(queries)
    latencies.sort()
    return {
        "mode": mode,
        "recall_at_5": round(recall / n, 4),
        "hit_at_5": round(hit / n, 4),
        "mrr": round(rr / n, 4),
        "median_ms": round(latencies[n // 2] * 1000, 1),
        "misses": misses,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--show-misses", action="store_true", help="list queries whose similar incidents were missed")
    args = ap.parse_args()
    incidents, dev, held = load(args.data, args.heldout)
    sets = {"dev": dev, "held-out": held, "all": dev + held}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", _env_file=None)  # type: ignore[call-arg]
        ctx = ToolContext(settings=settings, clock=FixedClock(datetime(2026, 3, 2, tzinfo=UTC)))
        populate(ctx, incidents)
        index = MemoryIndex(settings)
        t0 = time.perf_counter()
        stats = index.sync_incidents(ctx.db)
        index_seconds = time.perf_counter() - t0
        results = {name: [evaluate(index, qs, mode) for mode in MODES] for name, qs in sets.items() if qs}
        ctx.close()
    summary: dict[str, Any] = {
        "incidents": len(incidents),
        "queries": {name: len(qs) for name, qs in sets.items()},
        "indexed": stats.added,
        "index_seconds": round(index_seconds, 2),
        "embedder": index.embedder.name,
        "results": {name: [{k: v for k, v in r.items() if k != "misses"} for r in rs] for name, rs in results.items()},
    }
    hybrid = results["all"][-1]
    summary["target_recall_at_5"] = 0.9
    summary["pass"] = hybrid["recall_at_5"] >= 0.9
    if args.json:
        if args.show_misses:
            summary["misses"] = {r["mode"]: r["misses"] for r in results["all"]}
        print(json.dumps(summary, indent=2))
    else:
        print(f"memory eval: {len(incidents)} incidents, {len(dev)} dev + {len(held)} held-out queries, "
              f"embedder {summary['embedder']}, indexed in {summary['index_seconds']}s")
        print(f"{'set':<9} {'mode':<8} {'recall@5':>9} {'hit@5':>7} {'MRR':>7} {'median ms':>10}")
        for name, rs in results.items():
            for r in rs:
                print(f"{name:<9} {r['mode']:<8} {r['recall_at_5']:>9.3f} {r['hit_at_5']:>7.3f} {r['mrr']:>7.3f} "
                      f"{r['median_ms']:>10.1f}")
        verdict = "PASS" if summary["pass"] else "FAIL"
        print(f"hybrid recall@5 on all queries {hybrid['recall_at_5']:.3f} (target 0.9): {verdict}")
        if args.show_misses:
            for r in results["all"]:
                for m in r["misses"]:
                    print(f"  [{r['mode']}] {m['query']!r}: missing {m['missing']}, top5 {m['top5']}")
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
