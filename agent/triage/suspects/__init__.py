"""Candidate generation: one module per suspect kind, found by name (no central chain of ifs).

Each module in this package (names starting with `_` are shared helpers) defines:

- `KIND`: the suspect kind it proposes (agent.report.SuspectKind);
- `READS`: the tool outputs it reads, for people and for the "what could not be seen" note;
- `generate(ctx) -> list[Candidate]`: every suspect of that kind the findings allow, with raw facts;
- `fixes(candidate, ctx) -> list[ProposedFix]`: the catalog actions for that suspect, best first.

Adding a suspect kind is a new module here plus its features in `agent.triage.features`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Protocol, cast

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage.context import Candidate, Context


class SuspectModule(Protocol):
    KIND: str
    READS: tuple[str, ...]

    def generate(self, ctx: Context) -> list[Candidate]: ...

    def fixes(self, cand: Candidate, ctx: Context) -> list[ProposedFix]: ...


@dataclass(frozen=True)
class Source:
    kind: str
    reads: tuple[str, ...]
    module: SuspectModule


@cache
def sources() -> dict[str, Source]:
    """Every suspect module of this package, by kind."""
    out: dict[str, Source] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = cast(SuspectModule, importlib.import_module(f"{__name__}.{info.name}"))
        out[mod.KIND] = Source(mod.KIND, tuple(mod.READS), mod)
    return out


def generate(ctx: Context) -> list[Candidate]:
    """All candidates of every kind, one per suspect (the strongest generator record wins, evidence merged)."""
    merged: dict[tuple[str, str, str], Candidate] = {}
    for src in sources().values():
        for cand in src.module.generate(ctx):
            k = cand.key()
            old = merged.get(k)
            if old is None:
                merged[k] = cand
                continue
            keep, other = (
                (cand, old) if cand.facts.get("strength", 0.0) > old.facts.get("strength", 0.0) else (old, cand)
            )
            for name, value in other.facts.items():
                keep.facts[name] = max(keep.facts.get(name, value), value)
            keep.facts["sources"] = keep.facts.get("sources", 1.0) + 1.0
            keep.evidence.extend(e for e in other.evidence if e not in keep.evidence)
            merged[k] = keep
    return sorted(merged.values(), key=lambda c: c.key())


def fixes_for(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    src = sources().get(cand.suspect.kind)
    return src.module.fixes(cand, ctx) if src is not None else []
