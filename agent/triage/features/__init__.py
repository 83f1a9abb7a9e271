"""Named evidence features: each a small function (candidate, context) -> float, registered by name.

Features read only the findings (tool outputs) through the context; a feature that does not apply to
a suspect's kind returns 0. The ranking weighs them with fitted coefficients (agent/triage/weights.json);
the order of `names()` is the column order of the fitted model. Modules in this package register their
features on import; adding one is a new function here and a refit, nothing else.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from firebreak.agent.triage.context import Candidate, Context

FeatureFn = Callable[[Candidate, Context], float]


@dataclass(frozen=True)
class Feature:
    name: str
    fn: FeatureFn
    kinds: frozenset[str] | None  # None: every kind
    doc: str


_REGISTRY: dict[str, Feature] = {}


def feature(name: str, kinds: tuple[str, ...] | None = None) -> Callable[[FeatureFn], FeatureFn]:
    """Register `fn` as the feature `name`, computed for `kinds` (all when None)."""

    def wrap(fn: FeatureFn) -> FeatureFn:
        if name in _REGISTRY:
            raise ValueError(f"feature {name!r} registered twice")
        _REGISTRY[name] = Feature(name, fn, frozenset(kinds) if kinds else None, (fn.__doc__ or "").strip())
        return fn

    return wrap


@cache
def registry() -> dict[str, Feature]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def names() -> list[str]:
    return list(registry())


def compute(cand: Candidate, ctx: Context) -> dict[str, float]:
    """Every feature of one candidate (0.0 where a feature does not apply); never NaN."""
    out: dict[str, float] = {}
    for name, feat in registry().items():
        if feat.kinds is not None and cand.suspect.kind not in feat.kinds:
            out[name] = 0.0
            continue
        value = float(feat.fn(cand, ctx))
        out[name] = value if math.isfinite(value) else 0.0
    cand.features = out
    return out


def squash(x: float, scale: float) -> float:
    """0..1, x/(x+scale) for x >= 0: diminishing returns on counts and ratios."""
    return max(0.0, x) / (max(0.0, x) + scale)
