"""The investigation service: which investigations are due, starting one once, and re-queueing after alerts.

An `Investigation` row is the durable intent (intake writes it in the same transaction as the alert);
`workflows.engine` turns due rows into DBOS workflows, `agent.worker.run_due` runs them in process for
drills. Both start a run through `start`, so its status moves `queued -> running` exactly once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation
from firebreak.statuses import InvestigationStatus
from firebreak.tools.executors import rows_changed

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where a (possibly recovered) workflow picks an investigation up."""

    RUN = "run"  # the agent has to run (first time, or the process died while it ran)
    AWAIT = "await"  # the report is stored; a decision on its fix is awaited or was taken
    FINISHED = "finished"  # done or failed: nothing to do


def due_ids(ctx: ToolContext) -> list[str]:
    """Queued investigations whose `not_before` has passed, oldest first."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        rows = s.execute(
            select(Investigation.id, Investigation.not_before)
            .where(Investigation.status == InvestigationStatus.QUEUED)
            .order_by(Investigation.queued_at, Investigation.id)
        ).all()
    return [r.id for r in rows if r.not_before is None or r.not_before <= now]


def start(ctx: ToolContext, investigation_id: str) -> Phase:
    """Claim a queued run (`queued -> running`); a run left `running` by a dead process is run again."""
    with ctx.db.session() as s:
        rows_changed(s.execute(
            update(Investigation)
            .where(Investigation.id == investigation_id, Investigation.status == InvestigationStatus.QUEUED)
            .values(status=InvestigationStatus.RUNNING, started_at=ctx.clock.now())
            .execution_options(synchronize_session=False)
        ))
        inv = s.get(Investigation, investigation_id)
        if inv is None:
            return Phase.FINISHED
        if inv.status == InvestigationStatus.RUNNING:
            return Phase.RUN
        if inv.status in (InvestigationStatus.AWAITING_APPROVAL, InvestigationStatus.RESUMING):
            return Phase.AWAIT
        return Phase.FINISHED


def requeue_followups(ctx: ToolContext) -> list[str]:
    """Queue a fresh investigation for open incidents whose last one failed or finished long ago and that
    got an alert since (debounced: at most one per incident per FIREBREAK_FOLLOWUP_DEBOUNCE_SECONDS).

    The new row's id is derived from the previous one, so two replicas doing this at once insert it once.
    """
    now = ctx.clock.now()
    stale = now - timedelta(minutes=ctx.settings.reinvestigate_minutes)
    debounce = now - timedelta(seconds=ctx.settings.followup_debounce_seconds)
    latest_q = (select(Investigation.incident_id, func.max(Investigation.queued_at).label("at"))
                .group_by(Investigation.incident_id).subquery())
    queued: list[str] = []
    with ctx.db.session() as s:
        rows = s.execute(
            select(Investigation, Incident.id)
            .join(latest_q, (latest_q.c.incident_id == Investigation.incident_id)
                  & (latest_q.c.at == Investigation.queued_at))
            .join(Incident, Incident.id == Investigation.incident_id)
            .where(Incident.status == "open", Investigation.queued_at <= debounce)
        ).all()
        candidates: list[tuple[Investigation, datetime]] = []
        for inv, _ in rows:
            if inv.status == InvestigationStatus.FAILED:
                since = inv.finished_at or inv.queued_at
            elif inv.status == InvestigationStatus.DONE and inv.finished_at is not None and inv.finished_at <= stale:
                since = inv.finished_at
            else:
                continue
            candidates.append((inv, since))
        for inv, since in candidates:
            newer = s.scalar(select(func.count()).select_from(Alert).where(
                Alert.incident_id == inv.incident_id, Alert.last_received_at > since))
            if newer:
                queued.append(_queue_followup(ctx, inv, now))
    return [q for q in queued if q]


def _queue_followup(ctx: ToolContext, previous: Investigation, now: datetime) -> str:
    new_id = uuid.uuid5(uuid.NAMESPACE_OID, f"followup:{previous.id}").hex
    why = ("the previous one failed" if previous.status == InvestigationStatus.FAILED
           else f"the previous one finished at {previous.finished_at:%Y-%m-%d %H:%M} UTC")
    try:
        with ctx.db.session() as s:
            s.add(Investigation(
                id=new_id, incident_id=previous.incident_id, status=InvestigationStatus.QUEUED,
                model=ctx.settings.model, queued_at=now,
                not_before=now + timedelta(seconds=ctx.settings.group_wait_seconds),
                messages=[], tool_calls=[], usage={"follow_up_of": previous.id},
            ))
            s.flush()
            incident = s.get(Incident, previous.incident_id)
            if incident is not None:
                incident_log.record(s, incident, at=now, actor="firebreak", kind="investigation",
                                    text=f"New alerts since the last investigation ({why}): investigating again "
                                         f"({new_id}).", new={"investigation_id": new_id})
    except IntegrityError:
        return ""  # another replica queued it first
    log.info("follow-up investigation %s queued for %s", new_id, previous.incident_id)
    return new_id
