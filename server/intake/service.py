"""Storing alerts: one ordered writer, group commit, and the back-pressure in front of it.

`ingest_alerts(ctx, alerts)` stores one delivery in one transaction (drills and tests use it);
`store(ctx, deliveries)` stores several in one transaction, in order, each with its own result
(the webhooks' writer uses it). Either every alert of a delivery is stored with its incident and
investigation, or nothing of it is. What happens to each alert is `server.intake.ingest`.

Concurrency: transactions are serialised, in process by a lock per database and across processes
by a database lock taken first in the transaction (SQLite: a no-op UPDATE takes the write lock at
once, so reads and writes see one consistent state; PostgreSQL: a transaction advisory lock).
Correlation needs this: two deliveries about one service must not both open an incident.

The webhook path (`IntakeQueue`): request handlers verify and parse deliveries concurrently (the
expensive part, see `prom.py`); one writer thread then stores them in arrival order. Whatever
arrived while the writer was busy is stored by its next transaction, together (group commit, at
most `MAX_BATCH_ALERTS` alerts): the per-transaction work (locks, loading the open incidents,
purging the replay cache, the commit) is paid once per batch instead of once per delivery, which is
what lets four concurrent senders go faster than one. A delivery is answered only after the commit
that holds it, so an acknowledged alert is never lost; a signed delivery's signature is remembered
in that same transaction (`replay.claim`), and a replay found there is answered 409 without
touching the others. If a batch fails for any reason but the database itself, each of its
deliveries is retried alone, so one bad delivery fails only itself.

Back-pressure: `firebreak_intake_queue_depth` counts alerts parsed and waiting to be stored. A
delivery that would take the depth past `settings.intake_queue_limit` (FIREBREAK_INTAKE_QUEUE_LIMIT,
default 50,000 alerts: a few seconds of work at the rates scripts/bench_intake.py measures) is
answered 429 with `Retry-After` (seconds, from the measured rate); a single delivery larger than the
limit can never fit and is answered 413. The backlog is per process (one `IntakeQueue` per
ToolContext). A database that stays locked gives 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from firebreak.context import ToolContext
from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.ingest import STORM_INCIDENT_LIMIT, STORM_TAG, Ingest
from firebreak.server.intake.models import IngestResult, NormalizedAlert
from firebreak.server.intake.replay import ReplayClaim, claim, purge

__all__ = ["STORM_INCIDENT_LIMIT", "STORM_TAG", "Delivery", "IntakeQueue", "ingest_alerts", "intake_queue",
           "store"]

log = logging.getLogger("firebreak.intake")

_PG_LOCK_KEY = 0x46_49_52_45  # "FIRE": the intake's advisory lock
# One transaction holds at most this many alerts (plus the delivery that crosses it): bounds the wait
# of the delivery behind it.
MAX_BATCH_ALERTS = 2_000

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _process_lock(url: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(url, threading.Lock())


def _lock_database(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(text("UPDATE id_counters SET last = last WHERE 1 = 0"))
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


@dataclass(slots=True)
class Delivery:
    """One delivery for the writer: its alerts, the signature to remember with them, and the outcome."""

    alerts: list[NormalizedAlert]
    replay: ReplayClaim | None = None
    result: IngestResult | None = None
    refused: IntakeRefused | None = None


def store(ctx: ToolContext, deliveries: list[Delivery]) -> None:
    """Store `deliveries` in order in one transaction; each gets `result`, or `refused` for a replay.

    The outcomes hold once this returns (the commit is done); on an exception nothing was stored.
    """
    for d in deliveries:
        d.result = d.refused = None
    with _process_lock(ctx.db.url), ctx.db.session() as session:
        _lock_database(session)
        now = ctx.clock.now()
        ingest = Ingest(ctx, session, now)
        if any(d.replay is not None for d in deliveries):
            purge(session, now)
        for d in deliveries:
            if d.replay is not None:
                d.refused = claim(session, d.replay)
                if d.refused is not None:
                    continue
            d.result = ingest.deliver(d.alerts)
    from firebreak.server.observability import INCIDENTS_OPENED, INVESTIGATIONS_QUEUED

    for d in deliveries:
        if d.result is not None:
            INCIDENTS_OPENED.inc(len(d.result.incidents_opened))
            INVESTIGATIONS_QUEUED.inc(len(d.result.investigations_queued))


def ingest_alerts(ctx: ToolContext, alerts: list[NormalizedAlert]) -> IngestResult:
    """Store one delivery's alerts and correlate them into incidents, in one transaction."""
    if not alerts:
        return IngestResult(received=0)
    delivery = Delivery(alerts)
    store(ctx, [delivery])
    assert delivery.result is not None  # no replay claim: always stored
    return delivery.result


_heap_settled = False


def _settle_heap() -> None:
    """Once per process, when intake first runs: collect, freeze what the process built so far, and
    space out young collections.

    Why: a storm allocates fast, so the collector runs often, and each full collection walked every
    object the server built at start-up (the app, its schemas, the mappers): measured with
    scripts/bench_intake.py, a third of the server's CPU went to the collector and its longest
    pauses (about 200 ms) set the p99. Frozen objects are never walked again (`gc.freeze`); what
    the storm itself allocates is still collected, in fewer, larger young collections (the default
    700 allocations between them is a few microseconds of storm work).
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)


@dataclass(slots=True)
class _Job:
    delivery: Delivery
    future: Future[Delivery] = field(default_factory=Future)


class IntakeQueue:
    """One writer thread per context storing deliveries in arrival order, with a bounded backlog."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.limit = max(1, ctx.settings.intake_queue_limit)
        self.pending = 0
        self._guard = threading.Lock()
        self._rate = 2000.0  # alerts/s, smoothed; only used to size Retry-After
        self._jobs: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def retry_after(self) -> int:
        return max(1, min(300, math.ceil(self.pending / max(self._rate, 1.0))))

    def admit(self, count: int) -> None:
        """Reserve room for `count` alerts or refuse the delivery (413 never fits, 429 try later)."""
        if count > self.limit:
            raise IntakeRefused(
                413, f"alerts: {count} alerts in one delivery, more than the intake limit of {self.limit} "
                "(FIREBREAK_INTAKE_QUEUE_LIMIT); send smaller batches", "too_large")
        from firebreak.server.observability import QUEUE_DEPTH

        with self._guard:
            if self.pending + count > self.limit:
                wait = self.retry_after()
                raise IntakeRefused(
                    429, f"intake backlog of {self.pending} alerts is at its limit of {self.limit}; "
                    f"retry in {wait} s", "backlog", headers={"Retry-After": str(wait)})
            self.pending += count
        QUEUE_DEPTH.inc(count)

    def _release(self, count: int) -> None:
        from firebreak.server.observability import QUEUE_DEPTH

        with self._guard:
            self.pending -= count
        QUEUE_DEPTH.dec(count)

    async def submit(self, alerts: list[NormalizedAlert], replay: ReplayClaim | None = None) -> IngestResult:
        """Admit, then store on the writer thread; the caller awaits the committed result.

        `replay`: the delivery's verified signature, remembered in the transaction that stores it
        (IntakeRefused 409 when it was already accepted).
        """
        self.admit(len(alerts))
        job = _Job(Delivery(alerts, replay))
        with self._wake:
            if self._closed:
                self._release(len(alerts))
                raise IntakeRefused(503, "intake is shutting down; retry", "shutting_down",
                                    headers={"Retry-After": "5"})
            self._jobs.append(job)
            if self._thread is None:
                _settle_heap()
                self._thread = threading.Thread(target=self._write, name="firebreak-intake", daemon=True)
                self._thread.start()
            self._wake.notify()
        try:
            done = await asyncio.wrap_future(job.future)
        except OperationalError as exc:  # the database stayed locked or went away: the sender retries
            log.error("intake could not store a delivery: %s", exc)
            raise IntakeRefused(503, "the state database is busy or unavailable; retry", "database",
                                headers={"Retry-After": str(self.retry_after() + 4)}) from None
        if done.refused is not None:
            raise done.refused
        assert done.result is not None
        return done.result

    def _next_batch(self) -> list[_Job] | None:
        """Everything waiting, up to MAX_BATCH_ALERTS; None once closed and drained."""
        with self._wake:
            while not self._jobs and not self._closed:
                self._wake.wait()
            if not self._jobs:
                return None
            batch = [self._jobs.popleft()]
            size = len(batch[0].delivery.alerts)
            while self._jobs and size < MAX_BATCH_ALERTS:
                job = self._jobs.popleft()
                batch.append(job)
                size += len(job.delivery.alerts)
            return batch

    def _write(self) -> None:
        while (batch := self._next_batch()) is not None:
            count = sum(len(job.delivery.alerts) for job in batch)
            started = time.perf_counter()
            try:
                self._store(batch)
            finally:
                elapsed = max(time.perf_counter() - started, 1e-6)
                self._rate = 0.8 * self._rate + 0.2 * (count / elapsed)
                self._release(count)

    def _store(self, batch: list[_Job]) -> None:
        try:
            store(self.ctx, [job.delivery for job in batch])
        except OperationalError as exc:  # the database itself: every delivery is answered 503
            for job in batch:
                job.future.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.warning("intake batch of %d deliveries failed (%s); storing them one by one", len(batch), exc)
            for job in batch:
                self._store([job])
            return
        for job in batch:
            job.future.set_result(job.delivery)

    def close(self) -> None:
        """Store what is waiting, then stop the writer (a later submit is answered 503)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def intake_queue(ctx: ToolContext) -> IntakeQueue:
    return ctx.resource("firebreak.server.intake.queue", lambda: IntakeQueue(ctx))
