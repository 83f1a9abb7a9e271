"""The suspect's kind as one-hot features: the fitted prior of each kind before any evidence."""

from __future__ import annotations

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature

KINDS = ("deploy", "config", "flag", "dependency", "resource", "traffic", "certificate", "data", "infra")


def _one_hot(kind: str) -> None:
    def fn(cand: Candidate, ctx: Context) -> float:
        return float(cand.suspect.kind == kind)

    fn.__doc__ = f"1 when the suspect is a {kind}."
    feature(f"kind_{kind}")(fn)


for _k in KINDS:
    _one_hot(_k)
