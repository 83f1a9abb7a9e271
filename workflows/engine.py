"""DBOS under `firebreak serve`: investigations and approvals as durable workflows on the state database.

One investigation is one workflow (`investigation_workflow`, id `investigation-<row id>`): start, run the
agent (a child workflow whose tool calls, model requests and clock reads are steps: `workflows.durable`),
ask for approval, wait durably for the decision (a DBOS message from `decide`, with a periodic
look at the row in case a message was lost), run the action through the one executor entry point,
close the agent's run, tell people. Each of those is a DBOS step, checkpointed in DBOS's tables in the
state database (SQLite by default, PostgreSQL with FIREBREAK_DATABASE_URL): after kill -9 the workflow
resumes from its last finished step, and a step that died half-way is not rerun blindly (the executor
turns an action left running into `outcome_unknown`).

Investigations go through one DBOS queue with a per-process limit (FIREBREAK_WORKER_CONCURRENCY) and a
global one (FIREBREAK_INVESTIGATION_CONCURRENCY). Several `firebreak serve` replicas on one PostgreSQL
share it: each has an executor id (FIREBREAK_REPLICA_ID, else host-pid) and a heartbeat row; when one
stops beating, another claims it and recovers its pending workflows (what DBOS Conductor would do).

DBOS is a process-wide singleton bound to one system database, so it runs only in a serving process.
Drills and tests run the same services in process (`agent.worker.run_due`, `workflows.approvals`), where
a throwaway database has nothing to recover.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from dbos import DBOS, DBOSClient, SetWorkflowID
from sqlalchemy import select, update

from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.replicas import Replica
from firebreak.statuses import ALTERNATIVE_STATUSES, ApprovalStatus
from firebreak.tools.executors import rows_changed
from firebreak.workflows import approvals as service
from firebreak.workflows import durable, investigations
from firebreak.workflows.executor import BOOT_ID, ExecutionResult, replica_id, sweep_orphaned_claims
from firebreak.workflows.status import DEAD_AFTER_SECONDS

log = logging.getLogger(__name__)

APP_VERSION = "firebreak-workflows-2"  # bump when the workflow's steps change shape
QUEUE_NAME = "investigations"
DECISION_TOPIC = "decision"
WAIT_SECONDS = 30.0  # how often a waiting workflow looks at its approval row even without a message
HEARTBEAT_SECONDS = 2.0

_ctx: ToolContext | None = None
_lock = threading.Lock()
_clients: dict[str, DBOSClient] = {}


def system_url(ctx: ToolContext) -> str:
    """DBOS's system database is the state database (its tables live beside Firebreak's)."""
    url = ctx.settings.resolved_database_url
    return "postgresql://" + url.removeprefix("postgresql+psycopg://") if url.startswith("postgresql+") else url


def workflow_id_for(investigation_id: str) -> str:
    return f"investigation-{investigation_id}"


def running_here(ctx: ToolContext) -> bool:
    """True when this process hosts the engine for ctx's database."""
    return _ctx is not None and system_url(_ctx) == system_url(ctx)


def _context() -> ToolContext:
    if _ctx is None:
        raise RuntimeError("the workflow engine is not launched in this process")
    return _ctx


# ------------------------------------------------------------------------------------------- workflow


@DBOS.step(name="firebreak.start")
def _start_step(investigation_id: str) -> str:
    return investigations.start(_context(), investigation_id).value


@DBOS.workflow(name="firebreak.agent_run")
def agent_workflow(investigation_id: str) -> bool:
    """The agent run as a child workflow: each tool call, model request and clock read is a step of its
    own (`workflows.durable`), replayed in order after a crash instead of being called again."""
    ok, _ = durable.run_agent(_context(), investigation_id)
    return ok


@DBOS.step(name="firebreak.request_approval")
def _request_step(investigation_id: str, workflow_id: str) -> str | None:
    ctx = _context()
    with ctx.db.session() as s:  # already asked (the process died after asking): the same approval
        existing = s.scalars(select(Approval.id).where(
            Approval.investigation_id == investigation_id, Approval.tool_call_id.is_not(None),
            Approval.status.not_in(ALTERNATIVE_STATUSES))).first()
    if existing is not None:
        return existing
    return service.request_for_investigation(ctx, investigation_id, workflow_id=workflow_id)


@DBOS.step(name="firebreak.approval_status")
def _status_step(approval_id: str) -> str:
    with _context().db.session() as s:
        a = s.get(Approval, approval_id)
        return a.status if a is not None else ApprovalStatus.REJECTED.value


@DBOS.step(name="firebreak.execute")
def _execute_step(approval_id: str) -> dict[str, Any] | None:
    # takeover: when this step runs again after a crash, a claim by the dead process is outcome_unknown.
    result = service.execute_decided(_context(), approval_id, takeover=True)
    return result.model_dump(mode="json") if result is not None else None


@DBOS.step(name="firebreak.close_run")
def _close_step(approval_id: str) -> None:
    service.close_run(_context(), approval_id, takeover=True)


@DBOS.step(name="firebreak.tell")
def _tell_step(approval_id: str, via: str, reason: str | None) -> None:
    service.tell_decided(_context(), approval_id, via=via, reason=reason)


@DBOS.workflow(name="firebreak.investigation")
def investigation_workflow(investigation_id: str) -> str:
    """One investigation from queue to incident log; every step is checkpointed."""
    phase = _start_step(investigation_id)
    if phase == investigations.Phase.FINISHED:
        return phase
    if phase == investigations.Phase.RUN and not agent_workflow(investigation_id):
        return "failed"
    wid = DBOS.workflow_id or workflow_id_for(investigation_id)
    approval_id = _request_step(investigation_id, wid)
    if approval_id is None:
        return "done"
    via, reason = "web", None
    while _status_step(approval_id) == ApprovalStatus.PENDING:
        msg = DBOS.recv(DECISION_TOPIC, timeout_seconds=WAIT_SECONDS)
        if isinstance(msg, dict):
            via, reason = str(msg.get("via") or via), msg.get("reason")
    execution = _execute_step(approval_id)
    DBOS.set_event(f"outcome:{approval_id}", execution or {})
    _close_step(approval_id)
    _tell_step(approval_id, via, reason)
    return "done"


# --------------------------------------------------------------------------------- talking to a workflow


def _client(ctx: ToolContext) -> DBOSClient:
    url = system_url(ctx)
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = DBOSClient(system_database_url=url)
        return client


def send_decision(ctx: ToolContext, workflow_id: str, approval_id: str, *, via: str, reason: str | None) -> bool:
    """Wake the workflow waiting on this approval (from any process); False when DBOS is unreachable."""
    msg = {"approval_id": approval_id, "via": via, "reason": reason}
    try:
        if running_here(ctx):
            DBOS.send(workflow_id, msg, DECISION_TOPIC)
        else:
            _client(ctx).send(workflow_id, msg, DECISION_TOPIC)
    except Exception:  # noqa: BLE001 - the workflow also polls its row; the decision is not lost
        log.warning("could not message workflow %s; it will see the decision on its next look", workflow_id,
                    exc_info=True)
        return False
    return True


def wait_outcome(ctx: ToolContext, workflow_id: str, approval_id: str, seconds: float) -> ExecutionResult | None:
    """The execution outcome the workflow publishes, or None if it takes longer than `seconds`."""
    try:
        if running_here(ctx):
            data = DBOS.get_event(workflow_id, f"outcome:{approval_id}", timeout_seconds=seconds)
        else:
            data = _client(ctx).get_event(workflow_id, f"outcome:{approval_id}", timeout_seconds=seconds)
    except Exception:  # noqa: BLE001 - the outcome is on the approval row; the caller reports its status
        log.warning("waiting for %s's outcome failed", workflow_id, exc_info=True)
        return None
    return ExecutionResult.model_validate(data) if data else None


# ----------------------------------------------------------------------------------------- the engine


def launch(ctx: ToolContext) -> None:
    """Start DBOS on ctx's database (once per process); recovers this executor's pending workflows.

    DBOS's synchronous API refuses to run on a thread with an event loop (the app's lifespan): from
    there the launch runs on a helper thread, and this call waits for it."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _launch(ctx)
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _launch(ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failure.append(exc)

    helper = threading.Thread(target=target, name="firebreak-dbos-launch")
    helper.start()
    helper.join()
    if failure:
        raise failure[0]


def _launch(ctx: ToolContext) -> None:
    global _ctx
    with _lock:
        if _ctx is not None:
            return
        _ctx = ctx
    DBOS(config={
        "name": "firebreak", "system_database_url": system_url(ctx), "executor_id": replica_id(ctx),
        "application_version": APP_VERSION, "log_level": "WARNING",
    })
    DBOS.launch()
    DBOS.register_queue(
        QUEUE_NAME, worker_concurrency=max(1, ctx.settings.worker_concurrency),
        global_concurrency=max(1, ctx.settings.investigation_concurrency), polling_interval_sec=0.5,
    )


def shutdown() -> None:
    global _ctx
    with _lock:
        if _ctx is None:
            return
        _ctx = None
    helper = threading.Thread(target=DBOS.destroy, kwargs={"destroy_registry": False}, name="firebreak-dbos-stop")
    helper.start()
    helper.join(30)


def enqueue(investigation_id: str) -> None:
    """Hand one due investigation to the queue; the workflow id makes a second enqueue a no-op."""
    queue = DBOS.retrieve_queue(QUEUE_NAME)
    if queue is None:
        raise RuntimeError(f"queue {QUEUE_NAME} is not registered: launch() first")
    with SetWorkflowID(workflow_id_for(investigation_id)):
        queue.enqueue(investigation_workflow, investigation_id)


def heartbeat(ctx: ToolContext) -> None:
    now = ctx.clock.now()
    me = replica_id(ctx)
    with ctx.db.session() as s:
        row = s.get(Replica, me)
        if row is None:
            s.add(Replica(executor_id=me, boot_id=BOOT_ID, started_at=now, last_seen=now))
        else:
            if row.boot_id != BOOT_ID:
                row.boot_id, row.started_at = BOOT_ID, now
            row.last_seen, row.recovered_by = now, None


def live_tokens(ctx: ToolContext) -> set[str]:
    cutoff = ctx.clock.now() - timedelta(seconds=DEAD_AFTER_SECONDS)
    with ctx.db.session() as s:
        rows = s.execute(select(Replica.executor_id, Replica.boot_id).where(Replica.last_seen >= cutoff)).all()
    return {f"{r.executor_id}/{r.boot_id}" for r in rows}


def recover_dead_replicas(ctx: ToolContext) -> list[str]:
    """Claim each replica that stopped beating (once, across replicas) and recover its pending workflows."""
    me = replica_id(ctx)
    cutoff = ctx.clock.now() - timedelta(seconds=DEAD_AFTER_SECONDS)
    recovered: list[str] = []
    with ctx.db.session() as s:
        dead = s.execute(select(Replica.executor_id, Replica.last_seen).where(
            Replica.last_seen < cutoff, Replica.recovered_by.is_(None), Replica.executor_id != me)).all()
    for executor_id, last_seen in dead:
        with ctx.db.session() as s:
            won = rows_changed(s.execute(
                update(Replica).where(Replica.executor_id == executor_id, Replica.recovered_by.is_(None),
                                      Replica.last_seen == last_seen)
                .values(recovered_by=me).execution_options(synchronize_session=False)))
        if won:
            handles = DBOS._recover_pending_workflows([executor_id])
            log.warning("replica %s stopped; %d of its workflows recovered here", executor_id, len(handles))
            recovered.append(executor_id)
    return recovered


class DurableWorker:
    """The serving process's side of the engine: launches DBOS, feeds due investigations to the queue,
    beats, recovers dead replicas, settles orphaned claims, and runs the server's periodic jobs."""

    def __init__(
        self, ctx: ToolContext, *, interval: float = 0.5,
        periodic: Iterable[tuple[float, Callable[[ToolContext], Any]]] = (),
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.periodic = [(every, job, [0.0]) for every, job in periodic]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._enqueued: set[str] = set()
        self._next_beat = 0.0

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        from firebreak.agent.worker import warm_up

        launch(self.ctx)
        heartbeat(self.ctx)
        threading.Thread(target=warm_up, args=(self.ctx,), name="firebreak-warm-up", daemon=True).start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="firebreak-workflows", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep going; the database may be briefly unavailable
                log.exception("workflow engine tick failed")
            self._stop.wait(self.interval)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_SECONDS
            heartbeat(self.ctx)
            recover_dead_replicas(self.ctx)
            sweep_orphaned_claims(self.ctx, live_tokens(self.ctx))
            investigations.requeue_followups(self.ctx)
        due = investigations.due_ids(self.ctx)
        self._enqueued &= set(due)  # forget started ones (a repeat enqueue is a no-op anyway: same workflow id)
        for inv_id in due:
            if inv_id not in self._enqueued:
                enqueue(inv_id)
                self._enqueued.add(inv_id)
        for every, job, next_at in self.periodic:
            if now >= next_at[0]:
                next_at[0] = now + every
                try:
                    job(self.ctx)
                except Exception:  # noqa: BLE001 - Slack being down must not stop investigations
                    log.exception("periodic job %s failed", getattr(job, "__name__", job))

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        shutdown()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
