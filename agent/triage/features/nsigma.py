"""The size of each service's own anomaly, from the series the investigator read (agent/triage/rises.py):
when only metrics exist, the culprit is the service whose own resource moved most in its own noise,
and moved first; a service whose latency rose while something it calls moved more is waiting on it.

These features speak only when metrics are all there is (`metrics_only`): where logs, Sentry, traces
or changes exist, a resource that moved most is as often a victim (a caller's deploy floods a
database) as a cause, and the other features already weigh that; measured on the library drills, the
N-sigma view let loose there put victims first."""

from __future__ import annotations

import math

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature
from firebreak.agent.triage.rises import MOVED

SERVICES = ("dependency", "resource", "traffic", "certificate", "data")


def _svc(cand: Candidate) -> str | None:
    if cand.suspect.kind == "dependency":
        return cand.suspect.service or cand.suspect.ref
    return cand.suspect.service or cand.origin


def _share(own: float, top: float) -> float:
    return max(0.0, own) / top if top >= MOVED else 0.0


def _quiet(ctx: Context) -> bool:
    f = ctx.f
    return bool(f.series or f.anomalies) and not (ctx.bads or f.sentry or f.trace_errors or f.changes)


@feature("metrics_only")
def metrics_only(cand: Candidate, ctx: Context) -> float:
    """1 when metrics are all there is: no new or surged log lines, no Sentry issues, no trace errors, no
    recorded changes (the N-sigma features then carry the case; elsewhere they are one voice among many)."""
    return float(_quiet(ctx))


@feature("resource_nsigma", ("resource",))
def resource_nsigma(cand: Candidate, ctx: Context) -> float:
    """How far the suspect resource stands above its own history, log-scaled to 0..1 (1 at 100 sigma)."""
    if not _quiet(ctx):
        return 0.0
    z = ctx.rises.of(cand.suspect.service, cand.suspect.ref)
    return min(1.0, math.log1p(max(z, 0.0)) / math.log1p(100.0))


@feature("resource_nsigma_share", ("resource",))
def resource_nsigma_share(cand: Candidate, ctx: Context) -> float:
    """The suspect resource's rise relative to the largest resource rise of any service (1: the largest)."""
    if not _quiet(ctx):
        return 0.0
    return _share(ctx.rises.of(cand.suspect.service, cand.suspect.ref), ctx.rises.top("resource"))


@feature("resource_nsigma_top", ("resource",))
def resource_nsigma_top(cand: Candidate, ctx: Context) -> float:
    """1 when no other service's resource rose as far as the suspect resource (and it did move)."""
    if not _quiet(ctx):
        return 0.0
    own = ctx.rises.of(cand.suspect.service, cand.suspect.ref)
    return float(own >= MOVED and own >= ctx.rises.top("resource", exclude=cand.suspect.service))


@feature("service_nsigma_share", SERVICES)
def service_nsigma_share(cand: Candidate, ctx: Context) -> float:
    """The suspect service's largest rise (any series) relative to the largest rise of any service."""
    if not _quiet(ctx):
        return 0.0
    svc = _svc(cand)
    return _share(ctx.rises.best(svc), ctx.rises.top())


@feature("latency_nsigma_share", SERVICES)
def latency_nsigma_share(cand: Candidate, ctx: Context) -> float:
    """The suspect service's latency rise relative to the largest latency rise of any service."""
    if not _quiet(ctx):
        return 0.0
    svc = _svc(cand)
    return _share(ctx.rises.best(svc, "latency"), ctx.rises.top("latency"))


@feature("callee_moved_more", SERVICES)
def callee_moved_more(cand: Candidate, ctx: Context) -> float:
    """1 when a service the suspect's service calls (directly or not) moved further in its own noise:
    the suspect's trouble is likelier inherited (it waits on that callee)."""
    if not _quiet(ctx):
        return 0.0
    svc = _svc(cand)
    if not svc:
        return 0.0
    own = ctx.rises.best(svc)
    todo, seen = [svc], set()
    while todo:
        for d in ctx.graph.deps.get(todo.pop(), set()):
            if d not in seen and d != svc:
                seen.add(d)
                todo.append(d)
    return float(any(ctx.rises.best(d) >= max(MOVED, own) for d in seen))


@feature("callers_slowed_share", SERVICES)
def callers_slowed_share(cand: Candidate, ctx: Context) -> float:
    """Share of the suspect service's callers (with a latency series read) whose latency moved."""
    if not _quiet(ctx):
        return 0.0
    svc = _svc(cand)
    callers = [
        c
        for c in ctx.graph.callers.get(svc or "", set())
        if any(r.service == c and r.cls == "latency" for r in ctx.rises.series)
    ]
    if not callers:
        return 0.0
    return sum(1 for c in callers if ctx.rises.best(c, "latency") >= MOVED) / len(callers)


@feature("nsigma_moved_first", SERVICES)
def nsigma_moved_first(cand: Candidate, ctx: Context) -> float:
    """1 when the suspect service's series crossed MOVED sigmas no later than any other service's."""
    if not _quiet(ctx):
        return 0.0
    first, own = ctx.rises.earliest(), ctx.rises.first_onset(_svc(cand))
    return float(first is not None and own is not None and own <= first)
