"""Investigations: started once, and re-queued when alerts keep coming after one failed or finished long ago."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from firebreak.agent.investigator import queue_investigation
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.state.alerts import Alert
from firebreak.state.incidents import TimelineEntry
from firebreak.state.investigations import Investigation
from firebreak.statuses import InvestigationStatus
from firebreak.workflows.investigations import Phase, requeue_followups, start
from tests.fake_slack import open_incident


def _finish(ctx: ToolContext, inv_id: str, status: InvestigationStatus) -> None:
    with ctx.db.session() as s:
        s.execute(update(Investigation).where(Investigation.id == inv_id).values(
            status=status, finished_at=ctx.clock.now()))


def _alert(ctx: ToolContext, incident_id: str, n: int) -> None:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        s.add(Alert(source="alertmanager", fingerprint=f"fp-{n}", status="firing", service="checkout",
                    severity="critical", title="5xx", started_at=now, received_at=now, last_received_at=now,
                    incident_id=incident_id, labels={}, links=[], raw={}))


def _investigations(ctx: ToolContext, incident_id: str) -> list[Investigation]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Investigation).where(Investigation.incident_id == incident_id)
                              .order_by(Investigation.queued_at)))


def test_start_claims_once_and_resumes_where_a_dead_run_left(ctx: ToolContext) -> None:
    inc = open_incident(ctx)
    inv = queue_investigation(ctx, inc)
    assert start(ctx, inv) == Phase.RUN
    assert start(ctx, inv) == Phase.RUN  # left running by a process that died: run it again
    with ctx.db.session() as s:
        s.execute(update(Investigation).where(Investigation.id == inv).values(
            status=InvestigationStatus.AWAITING_APPROVAL))
    assert start(ctx, inv) == Phase.AWAIT
    _finish(ctx, inv, InvestigationStatus.DONE)
    assert start(ctx, inv) == Phase.FINISHED
    assert start(ctx, "inv-missing") == Phase.FINISHED


def test_a_failed_investigation_is_requeued_after_a_new_alert_once(ctx: ToolContext, clock: FixedClock) -> None:
    inc = open_incident(ctx)
    first = queue_investigation(ctx, inc)
    _finish(ctx, first, InvestigationStatus.FAILED)
    clock.advance(timedelta(seconds=ctx.settings.followup_debounce_seconds + 1))
    assert requeue_followups(ctx) == []  # no alert since it failed: nothing to look at again
    _alert(ctx, inc, 1)
    (new,) = requeue_followups(ctx)
    assert requeue_followups(ctx) == []  # debounced: the new one is queued
    rows = _investigations(ctx, inc)
    assert [r.id for r in rows] == [first, new] and rows[1].status == InvestigationStatus.QUEUED
    assert rows[1].usage["follow_up_of"] == first
    with ctx.db.session() as s:
        assert any(new in t.text for t in s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc)))


def test_a_recent_report_is_not_redone_but_an_old_one_is(ctx: ToolContext, clock: FixedClock) -> None:
    inc = open_incident(ctx)
    first = queue_investigation(ctx, inc)
    clock.advance(timedelta(minutes=2))
    _finish(ctx, first, InvestigationStatus.DONE)
    _alert(ctx, inc, 1)
    assert requeue_followups(ctx) == []  # finished two minutes ago: the report stands
    clock.advance(timedelta(minutes=ctx.settings.reinvestigate_minutes + 1))
    _alert(ctx, inc, 2)
    assert len(requeue_followups(ctx)) == 1
