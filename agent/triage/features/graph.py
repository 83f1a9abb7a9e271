"""Where the suspect sits: how affected its service is, how many of the services in trouble it can
explain through the dependency graph (itself and every transitive caller), whether its own trouble only
follows another service's, whether it is the alerting service."""

from __future__ import annotations

from firebreak.agent.triage.context import AFFECTED, Candidate, Context
from firebreak.agent.triage.features import feature

CHANGES = ("deploy", "config", "flag", "infra")


def _service(cand: Candidate) -> str | None:
    if cand.suspect.kind in CHANGES:
        return cand.suspect.service or cand.origin
    if cand.suspect.kind in ("dependency", "resource"):
        return cand.suspect.service
    return cand.origin or cand.suspect.service


@feature("service_affected")
def service_affected(cand: Candidate, ctx: Context) -> float:
    """How affected the suspect's service is, relative to the worst hit (changes: their linked service)."""
    if cand.suspect.kind in CHANGES:
        return cand.facts.get("link", 0.0)
    return ctx.affected(_service(cand)) / ctx.max_affected


@feature("explains_share")
def explains_share(cand: Candidate, ctx: Context) -> float:
    """Share of the services in trouble that are the suspect's service or (transitively) call it."""
    svc = _service(cand)
    if not svc or not ctx.anomalous:
        return 0.0
    reach = {svc} | ctx.graph.downstream_of(svc)
    if cand.suspect.kind in CHANGES and cand.origin:
        reach |= {cand.origin} | ctx.graph.downstream_of(cand.origin)
    return sum(1 for s in ctx.anomalous if s in reach) / len(ctx.anomalous)


@feature("upstream_of_alerting")
def upstream_of_alerting(cand: Candidate, ctx: Context) -> float:
    """1 when every alerting service is the suspect's service or calls it (directly or not)."""
    svc = _service(cand)
    if not svc or not ctx.alert_services:
        return 0.0
    reach = {svc} | ctx.graph.downstream_of(svc)
    return float(all(a in reach for a in ctx.alert_services))


@feature("follows_other_failure")
def follows_other_failure(cand: Candidate, ctx: Context) -> float:
    """1 when the suspect's service's trouble follows an earlier failing dependency (a victim, not a cause)."""
    if cand.suspect.kind in CHANGES:
        return cand.facts.get("linked_victim", 0.0)
    svc = _service(cand)
    return float(bool(svc) and svc in ctx.hurt)


@feature("is_alerting_service")
def is_alerting_service(cand: Candidate, ctx: Context) -> float:
    """1 when an alert names the suspect's service (the 'blame the alerting service' baseline)."""
    return float(_service(cand) in ctx.alert_services)


@feature("change_unlinked", CHANGES)
def change_unlinked(cand: Candidate, ctx: Context) -> float:
    """1 when nothing ties the change to any service in trouble (no service, key or note names one)."""
    return float(cand.facts.get("unlinked", 0.0) > 0 or cand.facts.get("link", 0.0) < 0.05)


@feature("service_in_trouble")
def service_in_trouble(cand: Candidate, ctx: Context) -> float:
    """1 when the suspect's own service shows trouble of its own."""
    return float(ctx.affected(_service(cand)) >= AFFECTED)


@feature("change_on_caller_of_first_failure", CHANGES)
def change_on_caller_of_first_failure(cand: Candidate, ctx: Context) -> float:
    """1 when the changed service calls the service whose trouble began first, and the change came before
    that trouble (a caller's change that floods or misuses a shared dependency)."""
    svc, first = cand.suspect.service, ctx.earliest_onset
    if not svc or first is None or cand.at is None or cand.at > first:
        return 0.0
    firsts = [s for s in ctx.anomalous if ctx.onset_of(s) == first]
    return float(any(s in ctx.graph.deps.get(svc, set()) for s in firsts))
