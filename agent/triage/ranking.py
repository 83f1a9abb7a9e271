"""The ranking: a logistic model over the named features, its coefficients fitted by
scripts/fit_ranker.py and stored in a small versioned JSON file (weights.json), so the runtime needs
only arithmetic. Each hypothesis's evidence says which features weighed most (coefficient x value)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agent.report import Evidence
from agent.triage import features
from agent.triage.context import Candidate

WEIGHTS_PATH = Path(__file__).with_name("weights.json")


@dataclass(frozen=True)
class Model:
    version: str
    intercept: float
    coef: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    meta: dict[str, Any]

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        return {
            n: w * (x.get(n, 0.0) - self.mean.get(n, 0.0)) / (self.scale.get(n, 1.0) or 1.0)
            for n, w in self.coef.items()
        }

    def logit(self, x: dict[str, float]) -> float:
        return self.intercept + sum(self.contributions(x).values())


def load(path: Path | None = None) -> Model:
    """The stored model; a feature it does not know weighs 0 (a refit is due), one it names that no longer
    exists is an error: the file and the code disagree."""
    data = json.loads((path or WEIGHTS_PATH).read_text())
    coef = {str(k): float(v) for k, v in data["coef"].items()}
    missing = sorted(set(coef) - set(features.names()))
    if missing:
        raise ValueError(f"{path or WEIGHTS_PATH}: coef names unknown features {missing}")
    return Model(
        version=str(data["version"]),
        intercept=float(data["intercept"]),
        coef=coef,
        mean={str(k): float(v) for k, v in (data.get("mean") or {}).items()},
        scale={str(k): float(v) for k, v in (data.get("scale") or {}).items()},
        meta=dict(data.get("meta") or {}),
    )


@cache
def model() -> Model:
    return load()


def score(cands: list[Candidate], m: Model | None = None) -> list[Candidate]:
    """Probability per candidate, best first (ties by kind and ref, so the order is deterministic)."""
    m = m or model()
    for c in cands:
        z = max(-30.0, min(30.0, m.logit(c.features)))
        c.score = z
        c.probability = 1.0 / (1.0 + math.exp(-z))
    return sorted(cands, key=lambda c: (-round(c.score, 9), c.suspect.kind, c.suspect.ref))


def explain(c: Candidate, m: Model | None = None, top: int = 3) -> Evidence:
    """Which features weighed most for and against this candidate, in words."""
    m = m or model()
    contrib = m.contributions(c.features)
    pro = sorted(((v, n) for n, v in contrib.items() if v > 0.05 and c.features.get(n, 0.0)), reverse=True)[:top]
    con = sorted((v, n) for n, v in contrib.items() if v < -0.05 and c.features.get(n, 0.0))[:2]
    parts = [f"{n.replace('_', ' ')} {c.features[n]:.2f} (+{v:.2f})" for v, n in pro]
    against = [f"{n.replace('_', ' ')} {c.features[n]:.2f} ({v:.2f})" for v, n in con]
    text = "weighed most: " + (", ".join(parts) or "nothing stands out")
    if against:
        text += "; against: " + ", ".join(against)
    return Evidence(tool="rank_suspects", weight=round(c.probability, 3), finding=text, ref=f"model {m.version}")
