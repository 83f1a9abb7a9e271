"""What the durable engine is doing, for `firebreak status` and `/healthz?detail=1` (behind the token).

Counts come from the state database (DBOS's `workflow_status` table sits in it), so any process can
answer, including a CLI on a machine where no server runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, inspect, select, text

from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.investigations import Investigation
from firebreak.state.replicas import Replica
from firebreak.statuses import ApprovalStatus, InvestigationStatus

DEAD_AFTER_SECONDS = 10.0


class ReplicaView(BaseModel):
    executor_id: str
    last_seen: datetime
    alive: bool
    recovered_by: str | None = None


class EngineStatus(BaseModel):
    """Workflows pending (running or waiting), recovering, waiting for approval; queue depth; oldest wait."""

    replicas: list[ReplicaView]
    workflows_pending: int
    workflows_enqueued: int
    workflows_recovering: int
    waiting_for_approval: int
    outcome_unknown: list[str]
    queue_depth: int
    oldest_wait_seconds: float | None
    investigations: dict[str, int]
    approvals: dict[str, int]


def _dbos_table(ctx: ToolContext) -> str | None:
    engine = ctx.db.engine
    schema = None if engine.dialect.name == "sqlite" else "dbos"
    if not inspect(engine).has_table("workflow_status", schema=schema):
        return None  # no server with the engine has used this database yet
    return "workflow_status" if schema is None else "dbos.workflow_status"


def workflow_counts(ctx: ToolContext) -> dict[str, int]:
    """DBOS workflows by status (PENDING, ENQUEUED, SUCCESS, ERROR...), plus RECOVERING: pending ones
    that are running again after their process died."""
    table = _dbos_table(ctx)
    if table is None:
        return {}
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT status, count(*) FROM {table} GROUP BY status")).all()  # noqa: S608
        recovering = conn.execute(text(
            f"SELECT count(*) FROM {table} WHERE status IN ('PENDING', 'ENQUEUED') "  # noqa: S608
            "AND recovery_attempts > 1")).scalar() or 0
    out = {str(status): int(n) for status, n in rows}
    out["RECOVERING"] = int(recovering)
    return out


def engine_status(ctx: ToolContext) -> EngineStatus:
    now = ctx.clock.now()
    flows = workflow_counts(ctx)
    with ctx.db.session() as s:
        replicas = [ReplicaView(executor_id=r.executor_id, last_seen=r.last_seen, recovered_by=r.recovered_by,
                                alive=r.last_seen >= now - timedelta(seconds=DEAD_AFTER_SECONDS))
                    for r in s.scalars(select(Replica).order_by(Replica.executor_id))]
        inv = {str(k): int(v) for k, v in s.execute(
            select(Investigation.status, func.count()).group_by(Investigation.status)).all()}
        appr = {str(k): int(v) for k, v in s.execute(
            select(Approval.status, func.count()).group_by(Approval.status)).all()}
        oldest_queued = s.scalar(select(func.min(Investigation.not_before)).where(
            Investigation.status == InvestigationStatus.QUEUED, Investigation.not_before <= now))
        oldest_pending = s.scalar(select(func.min(Approval.requested_at)).where(
            Approval.status == ApprovalStatus.PENDING))
        unknown = list(s.scalars(select(Approval.id).where(Approval.status == ApprovalStatus.OUTCOME_UNKNOWN)))
    waits = [t for t in (oldest_queued, oldest_pending) if t is not None]
    return EngineStatus(
        replicas=replicas, workflows_pending=flows.get("PENDING", 0), workflows_enqueued=flows.get("ENQUEUED", 0),
        workflows_recovering=flows.get("RECOVERING", 0),
        waiting_for_approval=appr.get(ApprovalStatus.PENDING.value, 0), outcome_unknown=unknown,
        queue_depth=inv.get(InvestigationStatus.QUEUED.value, 0) + flows.get("ENQUEUED", 0),
        oldest_wait_seconds=round((now - min(waits)).total_seconds(), 1) if waits else None,
        investigations=inv, approvals=appr,
    )
