"""Trace evidence, when spans exist: the service whose own (self) time grew, as opposed to callers that
only wait on it, and error operations that are new since the trouble began."""

from __future__ import annotations

import math

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature


def _service(cand: Candidate) -> str:
    return cand.suspect.service or cand.origin or ""


@feature("self_time_growth")
def self_time_growth(cand: Candidate, ctx: Context) -> float:
    """log of the growth of the suspect service's self time (latency_breakdown), /log 10, capped at 1."""
    st = ctx.states.get(_service(cand))
    if st is None or st.self_growth <= 1.0:
        return 0.0
    return min(1.0, math.log(st.self_growth) / math.log(10.0))


@feature("new_error_operations")
def new_error_operations(cand: Candidate, ctx: Context) -> float:
    """Share of the new error operations (trace_errors) that belong to the suspect's service."""
    new = [g for g in ctx.f.trace_errors if g.get("new") or int(g.get("errors_before") or 0) == 0]
    if not new:
        return 0.0
    return sum(1 for g in new if g.get("service") == _service(cand)) / len(new)
