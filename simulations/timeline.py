"""Walking a drill's timeline: changes recorded, alerts delivered at their time, triage run when due.

`Progress` is what happened so far; the demo and practice drills walk the same timeline their own way
and reuse `deliver`, `describe_alert` and `run_triage`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from firebreak.context import ToolContext
from firebreak.simulations.drill_env import DrillEnv
from firebreak.simulations.generator import ChangeSpec, World
from firebreak.simulations.render import Delivery, render
from firebreak.simulations.scenario import Scenario
from firebreak.simulations.seeding import record_change
from firebreak.simulations.transport import Transport

log = logging.getLogger("firebreak.drill")


@dataclass
class Progress:
    """What happened so far: deliveries, refusals, incidents, when triage ran."""

    alerts_delivered: int = 0
    deliveries: int = 0
    refused: list[str] = field(default_factory=list)
    triaged_at: datetime | None = None
    triage_error: str | None = None
    triage_seconds: float = 0.0


def count_drill_incidents(ctx: ToolContext) -> int:
    from firebreak.state.incidents import Incident

    with ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Incident).where(Incident.source != "history")) or 0)


def deliver(transport: Transport, deliveries: list[Delivery], progress: Progress) -> bool:
    ok = True
    for d in deliveries:
        status, body = transport.post(d)
        progress.deliveries += 1
        if status >= 300:
            ok = False
            detail = body.get("detail") if isinstance(body, dict) else body
            progress.refused.append(f"{d.path} ({d.resource or d.source}): HTTP {status}: {detail}")
    return ok


def run_triage(ctx: ToolContext, progress: Progress) -> None:
    """Run the investigations that are due now (the worker's job in `firebreak serve`)."""
    progress.triaged_at = ctx.clock.now()
    began = time.perf_counter()
    from firebreak.agent.worker import run_due

    try:
        run_due(ctx)
    except Exception as exc:  # a crash of the investigator is a failed drill, reported, not a traceback
        log.exception("investigation failed")
        progress.triage_error = f"investigation failed: {type(exc).__name__}: {exc}"
    finally:
        progress.triage_seconds += time.perf_counter() - began


def play(
    sc: Scenario,
    world: World,
    env: DrillEnv,
    transport: Transport,
    progress: Progress,
    *,
    sent_at: Callable[[datetime], datetime] | None = None,
    on_step: Callable[[str], None] | None = None,
    triage: bool = True,
) -> None:
    """Walk the timeline: record changes, deliver alerts at their time, triage at `triage_at`."""
    triage_time = sc.start + sc.triage_at if sc.triage_at is not None else None
    base_incidents = count_drill_incidents(env.ctx)

    def maybe_triage_before(at: datetime) -> None:
        if triage and triage_time is not None and progress.triaged_at is None and at > triage_time:
            env.clock.set(triage_time)
            run_triage(env.ctx, progress)

    for step in world.steps:
        maybe_triage_before(step.at)
        env.clock.set(step.at)
        if step.change is not None:
            record_change(env.ctx, step.change)
            if on_step:
                on_step(describe_change(step.change))
        elif step.notice is not None:
            notice = step.notice
            stamp = sent_at(step.at) if sent_at else step.at
            ok = deliver(transport, render(notice, list(sc.dashboards), env.secrets, stamp), progress)
            if ok and notice.status == "firing":
                progress.alerts_delivered += 1
            if on_step:
                on_step(describe_alert(notice.alert.source, notice.alert.name, notice.alert.service,
                                        notice.alert.severity, notice.alert.summary, notice.status))
            if (triage and triage_time is None and progress.triaged_at is None
                    and count_drill_incidents(env.ctx) > base_incidents):
                run_triage(env.ctx, progress)
    if triage and triage_time is not None and progress.triaged_at is None:
        env.clock.set(triage_time)
        run_triage(env.ctx, progress)


def describe_change(c: ChangeSpec) -> str:
    if c.kind == "deploy":
        return f"deploy {c.service} {c.previous_version or '?'} -> {c.version}" + (f" ({c.note})" if c.note else "")
    if c.kind == "config":
        return f"config {c.service} {c.key}: {c.from_value} -> {c.to_value}"
    if c.kind == "flag":
        return f"flag {c.flag} -> {c.variant or c.state}"
    return f"infra {c.service or ''}: {c.note}".strip()


def describe_alert(source: str, name: str, service: str, severity: str | None, summary: str | None,
                    status: str) -> str:
    word = "ALERT" if status == "firing" else "RESOLVED"
    sev = f" [{severity}]" if severity else ""
    return f"{word}{sev} {source}: {name} ({service})" + (f": {summary}" if summary and status == "firing" else "")
