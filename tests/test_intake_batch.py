"""Group commit: several deliveries in one transaction give what one transaction each gave.

The webhook writer stores whatever queued while it was busy in one transaction (`service.store`).
Each delivery keeps its own result, a replayed signature refuses only its own delivery, a failing
delivery fails only itself, and nothing is answered before the commit that holds it.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.server.intake import ingest as ingest_mod
from firebreak.server.intake import service
from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.models import NormalizedAlert
from firebreak.server.intake.replay import ReplayClaim
from firebreak.server.intake.service import Delivery, IntakeQueue, ingest_alerts, store
from firebreak.settings import Settings
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.state.investigations import Investigation
from tests.test_intake_common import alert


def _deliveries(clock: FixedClock) -> list[list[NormalizedAlert]]:
    now = clock.now()
    return [
        [alert("checkout", "c1", now), alert("payments", "p1", now, severity="critical")],
        [alert("checkout", "c2", now), alert("checkout", "c1", now)],  # a re-send of c1
        [alert("checkout", "c1", now, status="resolved"), alert("search", "s1", now)],
        [alert("payments", "p1", now, status="resolved"), alert("checkout", "c2", now, status="resolved")],
    ]


def _state(ctx: ToolContext) -> dict[str, Any]:
    with ctx.db.session() as s:
        return {
            "alerts": sorted((a.fingerprint, a.status, a.receive_count, a.incident_id)
                             for a in s.scalars(select(Alert))),
            "incidents": sorted((i.id, i.status, i.severity, tuple(i.services)) for i in s.scalars(select(Incident))),
            "timeline": s.scalar(select(func.count()).select_from(TimelineEntry)),
            "investigations": sorted(i.incident_id for i in s.scalars(select(Investigation))),
        }


def _summary(result: Any) -> tuple[Any, ...]:
    return (result.received, result.created, result.updated, result.resolved, result.incidents_opened,
            result.incidents_updated, len(result.investigations_queued), result.incidents_mitigated)


def test_one_transaction_equals_one_each(storage_ctx: ToolContext, clock: FixedClock, tmp_path: Any) -> None:
    ctx = storage_ctx
    other = ToolContext(settings=Settings(_env_file=None, data_dir=tmp_path / "other"),  # type: ignore[call-arg]
                        clock=FixedClock(clock.now()))
    one_each = [ingest_alerts(other, alerts) for alerts in _deliveries(clock)]
    together = [Delivery(alerts) for alerts in _deliveries(clock)]
    store(ctx, together)
    assert [_summary(d.result) for d in together] == [_summary(r) for r in one_each]
    assert _state(ctx) == _state(other)
    assert together[3].result is not None and together[3].result.incidents_mitigated  # all its alerts resolved
    other.close()


def test_a_replay_in_a_batch_refuses_only_itself(storage_ctx: ToolContext, clock: FixedClock) -> None:
    ctx = storage_ctx
    now = clock.now()
    claim = ReplayClaim("grafana", "ab" * 32, now, timedelta(minutes=10))
    first = [Delivery([alert("checkout", "c1", now)], claim), Delivery([alert("api", "a1", now)]),
             Delivery([alert("checkout", "c2", now)], claim)]  # the same signature twice in one batch
    store(ctx, first)
    assert first[0].result is not None and first[1].result is not None and first[2].result is None
    assert first[2].refused is not None and first[2].refused.status == 409
    again = Delivery([alert("checkout", "c3", now)], claim)
    store(ctx, [again])
    assert again.refused is not None and again.refused.status == 409 and "replayed" in again.refused.detail
    clock.advance(timedelta(minutes=11))  # expired: accepted again
    later = Delivery([alert("checkout", "c4", clock.now())], ReplayClaim("grafana", "ab" * 32, clock.now(),
                                                                          timedelta(minutes=10)))
    store(ctx, [later])
    assert later.result is not None
    assert {a[0] for a in _state(ctx)["alerts"]} == {"c1", "a1", "c4"}


def test_queue_batches_and_a_failure_stays_with_its_delivery(
    ctx: ToolContext, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    real = ingest_mod.Ingest.deliver
    batches: list[int] = []
    real_store = service.store

    def deliver(self: ingest_mod.Ingest, alerts: list[NormalizedAlert]) -> Any:
        if alerts[0].fingerprint == "bad":
            raise ValueError("broken delivery")
        return real(self, alerts)

    def counting_store(ctx_: ToolContext, deliveries: list[Delivery]) -> None:
        batches.append(len(deliveries))
        real_store(ctx_, deliveries)

    monkeypatch.setattr(ingest_mod.Ingest, "deliver", deliver)
    monkeypatch.setattr(service, "store", counting_store)
    queue = IntakeQueue(ctx)
    lock = service._process_lock(ctx.db.url)

    async def run() -> list[Any]:
        lock.acquire()  # the writer waits on its first batch while the others queue up behind it
        first = asyncio.ensure_future(queue.submit([alert("checkout", "c0", now)]))
        await asyncio.sleep(0.2)
        rest = [asyncio.ensure_future(queue.submit([alert("checkout", fp, now)])) for fp in ("c1", "bad", "c2")]
        await asyncio.sleep(0.2)
        lock.release()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(run())
    queue.close()
    assert isinstance(results[2], ValueError)
    assert [r.created for r in (results[0], results[1], results[3])] == [1, 1, 1]
    assert batches[:2] == [1, 3]  # the three that waited went in one transaction, then one by one
    assert {a[0] for a in _state(ctx)["alerts"]} == {"c0", "c1", "c2"}
    assert queue.pending == 0


def test_answer_only_after_commit_and_close_drains(ctx: ToolContext, clock: FixedClock) -> None:
    """A submitted delivery is in the database when its answer comes; close() stores what waits."""
    queue = IntakeQueue(ctx)
    seen: list[int] = []

    async def run() -> None:
        result = await queue.submit([alert("checkout", "x1", clock.now())])
        with ctx.db.session() as s:
            seen.append(s.scalar(select(func.count()).select_from(Alert)) or 0)
        assert result.created == 1

    asyncio.run(run())
    assert seen == [1]
    done = threading.Event()

    async def late() -> None:
        fut = asyncio.ensure_future(queue.submit([alert("checkout", "x2", clock.now())]))
        await asyncio.sleep(0)
        def close() -> None:
            queue.close()
            done.set()

        threading.Thread(target=close).start()
        assert (await fut).created == 1

    asyncio.run(late())
    assert done.wait(10)

    async def after_close() -> None:
        with pytest.raises(IntakeRefused) as refused:
            await queue.submit([alert("checkout", "x3", clock.now())])
        assert refused.value.status == 503

    asyncio.run(after_close())
