"""Fit the investigator's ranking on generated training worlds (never on the library or held-out drills).

    python scripts/fit_ranker.py collect --count 600 --seed 1 --jobs 2   # run worlds, keep tool outputs
    python scripts/fit_ranker.py fit                                       # features, fit, weights.json
    python scripts/fit_ranker.py fit --out agent/triage/weights_metrics.json   # the metrics-only model

`collect` runs every world through the real drill runner (intake, stores, tools, the offline
investigator's plan) and keeps what the tools returned (the Findings) with the world's truth, so
`fit` can recompute the features with the current code without rerunning drills. `fit` labels every
suspect of every world (does it match the truth, as the scorer decides), fits a gradient-boosted
ensemble of small trees (scikit-learn GradientBoostingClassifier; `--model lr` for a logistic
regression), reports grouped cross-validated hit@1 per culprit kind for both, and writes
agent/triage/weights.json with the trees (or coefficients), and how it was fitted. The ranking uses
agent/triage/weights_metrics.json instead where metrics are all the findings hold (see ranking.py).
Metrics-only worlds are reported as their own rows ("resource/metrics"). scikit-learn is needed here
only (not a runtime dependency): `pip install --target DIR scikit-learn` and PYTHONPATH=DIR works.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".firebreak" / "fit_ranker"  # ignored by git


def _collect_range(args: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Run worlds [start, stop) of the seed; returns one record per world: findings, truth, kind."""
    import logging

    logging.disable(logging.CRITICAL)
    from firebreak.agent.triage import pipeline
    from firebreak.simulations.runner import run_drill
    from firebreak.simulations.scenario import parse_scenario
    from firebreak.simulations.worlds import generate_world

    start, stop, seed = args
    out = []
    for i in range(start, stop):
        world = generate_world(i, seed)
        sc = parse_scenario(world, f"world {world['id']}")
        seen: list[Any] = []
        pipeline.RECORDER = seen.append
        try:
            run_drill(sc)
        finally:
            pipeline.RECORDER = None
        if not seen:
            print(f"\n{world['id']}: no investigation ran", file=sys.stderr)
        else:
            out.append({"id": world["id"], "kind": sc.truth.culprit.kind, "findings": seen[-1], "truth": sc.truth})
    return out


def collect(count: int, seed: int, jobs: int, path: Path) -> None:
    began = time.perf_counter()
    step = max(1, min(25, count // max(1, jobs * 4)))
    chunks = [(s, min(s + step, count), seed) for s in range(0, count, step)]
    records: list[dict[str, Any]] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(_collect_range, chunks):
            records += part
            print(f"\r{len(records)}/{count} worlds", end="", file=sys.stderr, flush=True)
            # Written after every chunk: an interrupted collection keeps what it has.
            path.write_bytes(pickle.dumps({"seed": seed, "count": count, "records": records}))
    print(f"\n{len(records)} worlds collected in {time.perf_counter() - began:.0f} s -> {path}", file=sys.stderr)


def _current(f: Any) -> Any:
    """Findings pickled before a field was added get that field's empty default."""
    import dataclasses

    for fld in dataclasses.fields(f):
        if not hasattr(f, fld.name) and fld.default_factory is not dataclasses.MISSING:
            setattr(f, fld.name, fld.default_factory())
    return f


def table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[float]], list[int], list[int], list[str]]:
    """Feature rows of every suspect of every world, its label, its world index and the world's kind."""
    from firebreak.agent.triage import features, suspects
    from firebreak.agent.triage.context import Context
    from firebreak.simulations.scorer import SuspectIn, matches_truth

    names = features.names()
    rows, labels, groups, kinds = [], [], [], []
    for gi, rec in enumerate(records):
        ctx = Context(_current(rec["findings"]))
        for c in suspects.generate(ctx):
            x = features.compute(c, ctx)
            rows.append([x[n] for n in names])
            s = SuspectIn(kind=c.suspect.kind, service=c.suspect.service, ref=c.suspect.ref)
            labels.append(int(matches_truth(s, rec["truth"])))
            groups.append(gi)
            # Metrics-only worlds (simulations/worlds/quiet.py) are reported as their own rows.
            kinds.append(rec["kind"] + ("/metrics" if str(rec.get("id", "")).endswith("-metrics") else ""))
    return names, rows, labels, groups, kinds


def table_parallel(
    records: list[dict[str, Any]], jobs: int
) -> tuple[list[str], list[list[float]], list[int], list[int], list[str]]:
    """`table` over `jobs` processes (the semantic relevance feature runs the embedder per suspect)."""
    if jobs <= 1 or len(records) < 50:
        return table(records)
    size = -(-len(records) // (jobs * 4))
    parts = [records[i : i + size] for i in range(0, len(records), size)]
    names: list[str] = []
    rows: list[list[float]] = []
    labels: list[int] = []
    groups: list[int] = []
    kinds: list[str] = []
    offset = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part, (n, r, y, g, k) in zip(parts, pool.map(table, parts), strict=True):
            names = n
            rows += r
            labels += y
            groups += [offset + gi for gi in g]
            kinds += k
            offset += len(part)
    return names, rows, labels, groups, kinds


def hit_at_1(scores: Any, labels: Any, groups: Any, kinds: list[str]) -> dict[str, float]:
    """Share of worlds whose best-scored suspect is a right one, overall and per culprit kind."""
    best: dict[int, tuple[float, int, str]] = {}
    for s, y, g, k in zip(scores, labels, groups, kinds, strict=True):
        if g not in best or s > best[g][0]:
            best[g] = (float(s), int(y), k)
    per: dict[str, list[int]] = defaultdict(list)
    for _, y, k in best.values():
        per[k].append(y)
        per["all"].append(y)
    return {k: round(statistics.mean(v), 3) for k, v in sorted(per.items())}


def _gb() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=120, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=0)


def _lr(c_value: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c_value, max_iter=3000))


def cross_validated(make: Any, x: Any, y: Any, g: Any, kinds: list[str]) -> dict[str, float]:
    import numpy as np
    from sklearn.model_selection import GroupKFold

    scores = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=5).split(x, y, g):
        scores[test] = make().fit(x[train], y[train]).decision_function(x[test])
    return hit_at_1(scores, y, g, kinds)


def export_trees(gb: Any, names: list[str], x0: Any) -> dict[str, Any]:
    """The fitted ensemble as plain arrays: init log-odds, learning rate, one dict per tree."""
    trees = []
    for est in gb.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "feature": [names[f] if f >= 0 else None for f in t.feature],
                "threshold": [round(float(v), 6) for v in t.threshold],
                "left": [int(v) for v in t.children_left],
                "right": [int(v) for v in t.children_right],
                "value": [round(float(v), 6) for v in t.value[:, 0, 0]],
            }
        )
    raw = float(gb.decision_function(x0[:1])[0])
    summed = sum(float(est.predict(x0[:1])[0]) for est in gb.estimators_[:, 0])
    return {"intercept": round(raw - gb.learning_rate * summed, 6), "learning_rate": gb.learning_rate, "trees": trees}


def fit(path: Path, c_value: float, out: Path, model: str, jobs: int = 1) -> None:
    import numpy as np

    data = pickle.loads(path.read_bytes())
    records = data["records"]
    names, rows, labels, groups, kinds = table_parallel(records, jobs)
    x, y, g = np.asarray(rows, dtype=float), np.asarray(labels), np.asarray(groups)
    print(f"{len(records)} worlds, {len(y)} suspects, {int(y.sum())} right ones", file=sys.stderr)
    cv = {"gb": cross_validated(_gb, x, y, g, kinds), "lr": cross_validated(lambda: _lr(c_value), x, y, g, kinds)}
    meta: dict[str, Any] = {
        "fitted_on": f"{len(records)} generated worlds (simulations.worlds, seed {data['seed']})",
        "suspects": len(y),
        "cv_hit_at_1_by_kind": cv,
    }
    if model == "gb":
        gb = _gb().fit(x, y)
        body: dict[str, Any] = {"coef": {}, **export_trees(gb, names, x)}
        meta["model"] = "sklearn GradientBoostingClassifier (120 trees, depth 3), exported as arrays"
        meta["train_hit_at_1_by_kind"] = hit_at_1(gb.decision_function(x), y, g, kinds)
    else:
        pipe = _lr(c_value).fit(x, y)
        scaler, lr = pipe[0], pipe[1]
        body = {
            "intercept": round(float(lr.intercept_[0]), 6),
            "coef": {n: round(float(w), 6) for n, w in zip(names, lr.coef_[0], strict=True)},
            "mean": {n: round(float(m), 6) for n, m in zip(names, scaler.mean_, strict=True)},
            "scale": {n: round(float(s) or 1.0, 6) for n, s in zip(names, scaler.scale_, strict=True)},
        }
        meta["model"] = f"sklearn LogisticRegression (C={c_value}) on standardised features"
        meta["train_hit_at_1_by_kind"] = hit_at_1(pipe.decision_function(x), y, g, kinds)
    weights = {"version": f"{model}-{datetime.now(UTC):%Y%m%d%H%M}", **body, "meta": meta}
    out.write_text(json.dumps(weights, sort_keys=True, separators=(",", ":")) + "\n")
    print(json.dumps({"worlds": len(records), **meta}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="run generated worlds and keep their tool outputs")
    c.add_argument("--count", type=int, default=600)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--jobs", type=int, default=2)
    c.add_argument("--cache", type=Path, default=None)
    f = sub.add_parser("fit", help="compute features, fit, write the weights")
    f.add_argument("--cache", type=Path, nargs="+", default=None)
    f.add_argument("--C", type=float, default=0.5, dest="c_value")
    f.add_argument("--model", choices=("gb", "lr"), default="gb")
    f.add_argument("--out", type=Path, default=ROOT / "agent" / "triage" / "weights.json")
    f.add_argument("--jobs", type=int, default=2, help="processes computing the features")
    a = ap.parse_args()
    if a.cmd == "collect":
        collect(a.count, a.seed, a.jobs, a.cache or CACHE / f"worlds-{a.seed}-{a.count}.pkl")
    else:
        paths = a.cache or sorted(CACHE.glob("worlds-*.pkl"))
        if not paths:
            sys.exit("fit_ranker: no collected worlds; run `python scripts/fit_ranker.py collect` first")
        merged: dict[str, Any] = {"seed": [], "count": 0, "records": []}
        for p in paths:
            d = pickle.loads(Path(p).read_bytes())
            merged["seed"].append(d["seed"])
            merged["records"] += d["records"]
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / "merged.pkl"
        tmp.write_bytes(pickle.dumps({**merged, "seed": ",".join(map(str, merged["seed"]))}))
        fit(tmp, a.c_value, a.out, a.model, a.jobs)


if __name__ == "__main__":
    main()
