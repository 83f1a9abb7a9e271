"""Incident state follows alerts and reports: mitigated when every alert resolved, one severity shared
with the report (changes in the timeline), named after the service most likely at fault."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory.incident_log import follow_report, get_incident, open_incident, update_incident
from firebreak.server.intake.service import ingest_alerts
from firebreak.state.incidents import Incident, TimelineEntry
from tests.test_intake_common import alert


def _timeline(ctx: ToolContext, incident_id: str) -> list[TimelineEntry]:
    with ctx.db.session() as s:
        return list(s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
                              .order_by(TimelineEntry.id)))


def _incident(ctx: ToolContext, incident_id: str) -> Incident:
    with ctx.db.session() as s:
        return get_incident(s, incident_id)


def test_every_alert_resolved_means_mitigated_not_closed(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    (inc_id,) = ingest_alerts(ctx, [alert("api", "a", now), alert("api", "b", now)]).incidents_opened
    clock.advance(timedelta(minutes=5))
    one = ingest_alerts(ctx, [alert("api", "a", now, status="resolved")])
    assert one.resolved == 1 and one.incidents_mitigated == []
    assert _incident(ctx, inc_id).status == "open" and _incident(ctx, inc_id).mitigated_at is None
    clock.advance(timedelta(minutes=3))
    both = ingest_alerts(ctx, [alert("api", "b", now, status="resolved")])
    assert both.incidents_mitigated == [inc_id]
    inc = _incident(ctx, inc_id)
    assert inc.status == "mitigated" and inc.mitigated_at == clock.now() and inc.resolved_at is None
    kinds = [(t.kind, t.field) for t in _timeline(ctx, inc_id)]
    assert ("status", "status") in kinds and ("alerts_resolved", None) in kinds
    note = next(t for t in _timeline(ctx, inc_id) if t.kind == "alerts_resolved")
    assert f"firebreak incidents close {inc_id}" in note.text
    # A repeat of the resolution changes nothing; a relapse opens it again, the timeline keeps both.
    assert ingest_alerts(ctx, [alert("api", "b", now, status="resolved")]).incidents_mitigated == []
    clock.advance(timedelta(minutes=1))
    ingest_alerts(ctx, [alert("api", "a", clock.now())])
    inc = _incident(ctx, inc_id)
    assert inc.status == "open" and inc.mitigated_at is None
    changes = [(t.old_value, t.new_value) for t in _timeline(ctx, inc_id) if t.field == "status"]
    assert changes == [("open", "mitigated"), ("mitigated", "open")]


def test_report_severity_becomes_the_incidents_with_a_timeline_entry(ctx: ToolContext, clock: FixedClock) -> None:
    (inc_id,) = ingest_alerts(ctx, [alert("checkout", "x", clock.now(), title="HighErrorRate")]).incidents_opened
    before = _incident(ctx, inc_id).severity
    with ctx.db.session() as s:
        inc = get_incident(s, inc_id)
        got = follow_report(s, inc, severity="critical", reason="about 60% of checkout requests fail",
                            fault_service="payments", fault_title="Deploy payments v2.3 broke card auth",
                            at=clock.now(), actor="firebreak (offline)")
    assert got == "critical" != before
    inc = _incident(ctx, inc_id)
    assert inc.severity == "critical"
    assert inc.title == "payments: Deploy payments v2.3 broke card auth" and inc.services[0] == "payments"
    entries = _timeline(ctx, inc_id)
    sev = [t for t in entries if t.field == "severity"]
    assert [(t.old_value, t.new_value) for t in sev][-1] == (before, "critical")
    assert "60% of checkout requests fail" in sev[-1].text
    (title,) = [t for t in entries if t.field == "title"]
    assert title.old_value == "checkout: HighErrorRate" and "first alert: checkout: HighErrorRate" in title.text


def test_a_persons_severity_and_title_win(ctx: ToolContext, clock: FixedClock) -> None:
    (inc_id,) = ingest_alerts(ctx, [alert("checkout", "x", clock.now())]).incidents_opened
    with ctx.db.session() as s:
        inc = get_incident(s, inc_id)
        update_incident(s, inc, {"severity": "minor", "title": "Card payments slow"}, at=clock.now(), actor="ana")
    with ctx.db.session() as s:
        inc = get_incident(s, inc_id)
        got = follow_report(s, inc, severity="critical", reason="r", fault_service="payments", fault_title="t",
                            at=clock.now(), actor="firebreak (offline)")
    assert got == "minor"
    inc = _incident(ctx, inc_id)
    assert (inc.severity, inc.title) == ("minor", "Card payments slow")
    with ctx.db.session() as s:
        manual = open_incident(s, title="By hand", services=["api"], severity="major", at=clock.now(), actor="bo")
        assert follow_report(s, manual, severity="minor", reason="r", fault_service=None, fault_title=None,
                             at=clock.now(), actor="firebreak") == "major"


def test_stored_report_follows_the_incident(ctx: ToolContext, clock: FixedClock) -> None:
    from firebreak.agent.report_sync import align_report
    from tests.fake_slack import sample_report

    (inc_id,) = ingest_alerts(ctx, [alert("storefront", "x", clock.now(), title="Slow pages")]).incidents_opened
    report = sample_report().model_copy(update={"severity": "critical", "severity_reason": "most checkouts fail"})
    with ctx.db.session() as s:
        stored = align_report(s, get_incident(s, inc_id), report, at=clock.now())
    inc = _incident(ctx, inc_id)
    assert stored.severity == inc.severity == "critical"  # the report's judgement, now the incident's
    assert inc.title == "checkout: Flag checkout-new-pricing saturates pricing"
    assert f"[{inc_id}] {inc.title} (critical, open)" in stored.internal_update  # drafts say the same
    # A person lowers it: the next report carries the person's severity and says what it judged.
    with ctx.db.session() as s:
        update_incident(s, get_incident(s, inc_id), {"severity": "major"}, at=clock.now(), actor="ana")
    with ctx.db.session() as s:
        again = align_report(s, get_incident(s, inc_id), report, at=clock.now())
    assert again.severity == "major" == _incident(ctx, inc_id).severity
    assert again.severity_reason.startswith("major as set by ana; the investigator judged critical")
    assert "(major, open)" in again.internal_update


def test_a_later_change_of_severity_reaches_the_stored_report(ctx: ToolContext, clock: FixedClock) -> None:
    from tests.fake_slack import open_incident as with_report

    inc_id = with_report(ctx)  # major, with a major report
    with ctx.db.session() as s:
        update_incident(s, get_incident(s, inc_id), {"severity": "critical"}, at=clock.now(), actor="ana")
    inc = _incident(ctx, inc_id)
    assert inc.report is not None and inc.report["severity"] == "critical" == inc.severity
    assert inc.report["severity_reason"].startswith("critical as set by ana; the investigator judged major")
