"""The ranking: a scoring model over the named features, fitted by scripts/fit_ranker.py (scikit-learn)
and stored in a small versioned JSON file (weights.json), so the runtime needs only arithmetic.

Two stored forms: "logistic" (coefficients over standardised features) and "trees" (a gradient-boosted
ensemble of small regression trees, as scikit-learn's GradientBoostingClassifier fits them). Each
hypothesis's evidence says which features weighed most: coefficient x value for the logistic form, the
change of score along each tree's path attributed to the feature split on (Saabas) for trees.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from firebreak.agent.report import Evidence
from firebreak.agent.triage import features
from firebreak.agent.triage.context import Candidate

WEIGHTS_PATH = Path(__file__).with_name("weights.json")
# The model for findings where metrics are all there is (feature `metrics_only`): fitted by
# scripts/fit_ranker.py on the same generated worlds, metrics-only families included, with the N-sigma
# features (features/nsigma.py). Kept apart from weights.json because, measured on the library drills,
# the refit over the new corpus ranked log-rich incidents worse (hit@1 0.71 against 0.82); where logs,
# changes, Sentry or traces exist, weights.json decides, as before.
METRICS_WEIGHTS_PATH = Path(__file__).with_name("weights_metrics.json")


@dataclass(frozen=True)
class Tree:
    """One regression tree in scikit-learn's array form: node i splits on feature[i] <= threshold[i]
    (left) or not (right); leaves have left == -1; value is the node's mean (used for attributions)."""

    feature: list[str | None]
    threshold: list[float]
    left: list[int]
    right: list[int]
    value: list[float]

    def path(self, x: dict[str, float]) -> list[int]:
        node, out = 0, [0]
        while self.left[node] != -1:
            name = self.feature[node]
            node = self.left[node] if x.get(name or "", 0.0) <= self.threshold[node] else self.right[node]
            out.append(node)
        return out


@dataclass(frozen=True)
class Model:
    version: str
    intercept: float
    coef: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    meta: dict[str, Any]
    trees: tuple[Tree, ...] = ()
    learning_rate: float = 1.0

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's share of the score (its sum plus `base()` is the logit)."""
        out = {
            n: w * (x.get(n, 0.0) - self.mean.get(n, 0.0)) / (self.scale.get(n, 1.0) or 1.0)
            for n, w in self.coef.items()
        }
        for t in self.trees:
            p = t.path(x)
            for parent, child in zip(p, p[1:], strict=False):
                name = t.feature[parent] or ""
                out[name] = out.get(name, 0.0) + self.learning_rate * (t.value[child] - t.value[parent])
        return out

    def base(self) -> float:
        return self.intercept + sum(self.learning_rate * t.value[0] for t in self.trees)

    def logit(self, x: dict[str, float]) -> float:
        return self.base() + sum(self.contributions(x).values())


def load(path: Path | None = None) -> Model:
    """The stored model; a feature it does not know weighs 0 (a refit is due), one it names that no longer
    exists is an error: the file and the code disagree."""
    data = json.loads((path or WEIGHTS_PATH).read_text())
    coef = {str(k): float(v) for k, v in (data.get("coef") or {}).items()}
    trees = tuple(
        Tree(
            feature=[str(f) if f is not None else None for f in t["feature"]],
            threshold=[float(v) for v in t["threshold"]],
            left=[int(v) for v in t["left"]],
            right=[int(v) for v in t["right"]],
            value=[float(v) for v in t["value"]],
        )
        for t in data.get("trees") or []
    )
    used = set(coef) | {f for t in trees for f in t.feature if f is not None}
    missing = sorted(used - set(features.names()))
    if missing:
        raise ValueError(f"{path or WEIGHTS_PATH}: coef names unknown features {missing}")
    return Model(
        version=str(data["version"]),
        intercept=float(data["intercept"]),
        coef=coef,
        mean={str(k): float(v) for k, v in (data.get("mean") or {}).items()},
        scale={str(k): float(v) for k, v in (data.get("scale") or {}).items()},
        meta=dict(data.get("meta") or {}),
        trees=trees,
        learning_rate=float(data.get("learning_rate", 1.0)),
    )


@cache
def model() -> Model:
    return load()


@cache
def metrics_model() -> Model | None:
    return load(METRICS_WEIGHTS_PATH) if METRICS_WEIGHTS_PATH.exists() else None


def model_for(x: dict[str, float]) -> Model:
    """The model that weighs these features: the metrics-only one when nothing but metrics was seen."""
    if x.get("metrics_only", 0.0) >= 1.0:
        return metrics_model() or model()
    return model()


def score(cands: list[Candidate], m: Model | None = None) -> list[Candidate]:
    """Probability per candidate, best first (ties by kind and ref, so the order is deterministic)."""
    m = m or (model_for(cands[0].features) if cands else model())
    for c in cands:
        z = max(-30.0, min(30.0, m.logit(c.features)))
        c.score = z
        c.probability = 1.0 / (1.0 + math.exp(-z))
    # Ties (trees give equal scores to near-equal suspects) go to the stronger raw signal.
    return sorted(
        cands,
        key=lambda c: (-round(c.score, 9), -round(c.facts.get("strength", 0.0), 6), c.suspect.kind, c.suspect.ref),
    )


def explain(c: Candidate, m: Model | None = None, top: int = 3) -> Evidence:
    """Which features weighed most for and against this candidate, in words."""
    m = m or model_for(c.features)
    contrib = m.contributions(c.features)
    pro = sorted(((v, n) for n, v in contrib.items() if v > 0.05 and c.features.get(n, 0.0)), reverse=True)[:top]
    con = sorted((v, n) for n, v in contrib.items() if v < -0.05 and c.features.get(n, 0.0))[:2]
    parts = [f"{n.replace('_', ' ')} {c.features[n]:.2f} (+{v:.2f})" for v, n in pro]
    against = [f"{n.replace('_', ' ')} {c.features[n]:.2f} ({v:.2f})" for v, n in con]
    text = "weighed most: " + (", ".join(parts) or "nothing stands out")
    if against:
        text += "; against: " + ", ".join(against)
    return Evidence(tool="rank_suspects", weight=round(c.probability, 3), finding=text, ref=f"model {m.version}")
