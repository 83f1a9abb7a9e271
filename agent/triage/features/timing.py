"""When a suspect happened relative to the trouble: a cause precedes its effects. Onsets are the
earliest anomaly (log first-seen, metric change point, Sentry first-seen) of the services in trouble."""

from __future__ import annotations

import math
from datetime import datetime

from firebreak.agent.triage.context import AFFECTED, Candidate, Context
from firebreak.agent.triage.features import feature
from firebreak.agent.triage.observe import parse_time

CHANGES = ("deploy", "config", "flag", "infra")
TOLERANCE_MIN = 0.75  # metric change points have scrape resolution: a change this late may still lead


def _target_onset(cand: Candidate, ctx: Context) -> datetime | None:
    if cand.origin and ctx.affected(cand.origin) >= AFFECTED and ctx.onset_of(cand.origin):
        return ctx.onset_of(cand.origin)
    return ctx.earliest_onset or ctx.f.incident_start()


@feature("change_precedes_onset", CHANGES)
def change_precedes_onset(cand: Candidate, ctx: Context) -> float:
    """1 when the change landed before the onset of the service it is linked to (or the first trouble)."""
    gap = ctx.gap_minutes(cand.at, _target_onset(cand, ctx))
    return float(gap is not None and gap >= -TOLERANCE_MIN)


@feature("change_closeness", CHANGES)
def change_closeness(cand: Candidate, ctx: Context) -> float:
    """exp(-minutes/20) from the change to the linked onset: minutes before matter, hours before much less."""
    gap = ctx.gap_minutes(cand.at, _target_onset(cand, ctx))
    if gap is None or gap < -TOLERANCE_MIN:
        return 0.0
    return math.exp(-max(gap, 0.0) / 20.0)


@feature("change_after_first_trouble", CHANGES)
def change_after_first_trouble(cand: Candidate, ctx: Context) -> float:
    """1 when the change landed after the earliest trouble anywhere had begun (it cannot explain it)."""
    gap = ctx.gap_minutes(cand.at, ctx.earliest_onset)
    return float(gap is not None and gap < -TOLERANCE_MIN)


@feature("latest_change_before_onset", CHANGES)
def latest_change_before_onset(cand: Candidate, ctx: Context) -> float:
    """1 for the most recent change before the first trouble (what 'blame the last change' would pick)."""
    onset = ctx.earliest_onset or ctx.f.incident_start()
    times = [t for c in ctx.f.changes if (t := parse_time(c.get("at"))) is not None and t <= onset]
    return float(bool(times) and cand.at is not None and cand.at == max(times))


@feature("changes_before_onset", CHANGES)
def changes_before_onset(cand: Candidate, ctx: Context) -> float:
    """1/n for n changes in the hour before the first trouble: one lone change is likelier than one of many."""
    onset = ctx.earliest_onset or ctx.f.incident_start()
    n = sum(
        1
        for c in ctx.f.changes
        if (t := parse_time(c.get("at"))) is not None and 0 <= (onset - t).total_seconds() <= 3600
    )
    return 1.0 / n if n else 0.0


def _signal_time(cand: Candidate, ctx: Context) -> datetime | None:
    if cand.suspect.kind == "resource" and cand.at is not None:
        return cand.at
    svc = cand.suspect.service if cand.suspect.kind in ("dependency", "resource") else cand.origin
    return ctx.onset_of(svc) or ctx.onset_of(cand.origin)


@feature("signal_first", ("dependency", "resource", "traffic", "certificate", "data"))
def signal_first(cand: Candidate, ctx: Context) -> float:
    """1 when the suspect's own signal began within a minute of the earliest trouble (or before it)."""
    t, first = _signal_time(cand, ctx), ctx.earliest_onset
    if t is None or first is None:
        return 0.0
    return float((t - first).total_seconds() <= 60)


@feature("signal_lead", ("dependency", "resource", "traffic", "certificate", "data"))
def signal_lead(cand: Candidate, ctx: Context) -> float:
    """How far the suspect's signal precedes the alerting services' trouble, squashed (0.5 at 2 minutes)."""
    t = _signal_time(cand, ctx)
    alerts = [o for s in ctx.alert_services if (o := ctx.onset_of(s)) is not None]
    if t is None or not alerts:
        return 0.0
    lead = (min(alerts) - t).total_seconds() / 60.0
    return max(0.0, lead) / (max(0.0, lead) + 2.0)
