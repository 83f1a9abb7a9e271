"""Runs queued investigations in process: `run_due` for drills and tests, a polling thread for a server
started without the durable engine. `firebreak serve` uses `workflows.engine.DurableWorker` instead,
which runs the same investigation as a DBOS workflow (recovered after a crash, shared by replicas)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select, update

from firebreak.context import ToolContext
from firebreak.state.investigations import Investigation
from firebreak.statuses import InvestigationStatus

log = logging.getLogger(__name__)


def _claim(ctx: ToolContext, inv_id: str) -> bool:
    """queued -> running exactly once, even with several workers on one database."""
    with ctx.db.session() as s:
        res = s.execute(
            update(Investigation)
            .where(Investigation.id == inv_id, Investigation.status == InvestigationStatus.QUEUED)
            .values(status=InvestigationStatus.RUNNING, started_at=ctx.clock.now())
        )
        return bool(getattr(res, "rowcount", 0))


def due_ids(ctx: ToolContext) -> list[str]:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        rows = s.execute(
            select(Investigation.id, Investigation.not_before)
            .where(Investigation.status == InvestigationStatus.QUEUED)
            .order_by(Investigation.queued_at, Investigation.id)
        ).all()
        return [r.id for r in rows if r.not_before is None or r.not_before <= now]


def warm_up(ctx: ToolContext) -> float:
    """Load what the first investigation would otherwise pay for (agent library, memory index and its
    embedding model, log template miner), so a report is ready within seconds of the first alert."""
    started = time.perf_counter()
    try:
        from firebreak.agent.investigator import RunRecorder, build_tools
        from firebreak.agent.offline import OfflineInvestigator
        from firebreak.tools.registry import call_tool, load_tools

        build_tools(RunRecorder("warm-up"))  # tool schemas, cached for every later run
        OfflineInvestigator("warm-up", ctx.clock.now()).model()
        tools = load_tools()
        if "similar_incidents" in tools:
            call_tool(ctx, "similar_incidents", {"text": "warm up", "k": 1})
        import drain3.drain  # noqa: F401
    except Exception:  # noqa: BLE001 - warming is an optimisation; the real run reports real errors
        log.debug("warm-up failed", exc_info=True)
    return time.perf_counter() - started


def run_due(ctx: ToolContext) -> list[str]:
    """Run every queued investigation whose not_before has passed; returns the ids that ran."""
    from firebreak.agent.investigator import investigate

    ran: list[str] = []
    for inv_id in due_ids(ctx):
        if not _claim(ctx, inv_id):
            continue
        try:
            investigate(ctx, inv_id)
        except Exception:  # noqa: BLE001 - recorded on the row as failed; other incidents still run
            log.exception("investigation %s failed", inv_id)
        ran.append(inv_id)
    return ran


class InvestigationWorker:
    """A daemon thread polling `run_due`; `stop()` waits for the current investigation to end.

    `periodic` jobs (every N seconds) are the server's to give (e.g. reminders in Slack threads)."""

    def __init__(
        self, ctx: ToolContext, *, interval: float = 1.0,
        periodic: Iterable[tuple[float, Callable[[ToolContext], Any]]] = (),
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.periodic = [(every, job, [0.0]) for every, job in periodic]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        threading.Thread(target=warm_up, args=(self.ctx,), name="firebreak-warm-up", daemon=True).start()
        self._thread = threading.Thread(target=self._loop, name="firebreak-investigator", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(self.ctx)
            except Exception:  # noqa: BLE001 - keep polling; the database may be briefly locked
                log.exception("investigation worker iteration failed")
            now = time.monotonic()
            for every, job, next_at in self.periodic:
                if now >= next_at[0]:
                    next_at[0] = now + every
                    try:
                        job(self.ctx)
                    except Exception:  # noqa: BLE001 - Slack being down must not stop investigations
                        log.exception("periodic job failed")
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
