"""`ingest_alerts`: dedup, resolution, correlation, severity, investigations and storms."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory.incident_log import open_incident, set_status
from firebreak.server.intake.correlate import related_services
from firebreak.server.intake.service import STORM_INCIDENT_LIMIT, STORM_TAG, ingest_alerts
from firebreak.state.alerts import Alert
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.state.investigations import Investigation
from tests.test_intake_common import alert


def _incidents(ctx: ToolContext) -> list[Incident]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Incident).order_by(Incident.id)))


def _investigations(ctx: ToolContext) -> list[Investigation]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Investigation)))


def test_dedup_updates_instead_of_duplicating(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    first = ingest_alerts(ctx, [alert("checkout", "fp1", now, title="HighErrorRate")])
    assert first.created == 1 and len(first.incidents_opened) == 1
    clock.advance(timedelta(seconds=30))
    again = ingest_alerts(ctx, [alert("checkout", "fp1", now, title="HighErrorRate v2"),
                                alert("checkout", "fp1", now, title="HighErrorRate v3")])
    assert again.created == 0 and again.updated == 2 and again.incidents_opened == []
    with ctx.db.session() as s:
        (row,) = s.scalars(select(Alert))
        assert row.receive_count == 3 and row.title == "HighErrorRate v3"
        assert row.last_received_at == clock.now() and row.received_at == now
    # The same fingerprint from another source is another alert.
    other = ingest_alerts(ctx, [alert("checkout", "fp1", now, source="grafana")])
    assert other.created == 1 and other.incidents_opened == []


def test_resolution_and_refiring(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    ingest_alerts(ctx, [alert("api", "a", now)])
    clock.advance(timedelta(minutes=2))
    res = ingest_alerts(ctx, [alert("api", "a", now, status="resolved")])
    assert res.resolved == 1
    with ctx.db.session() as s:
        row = s.scalars(select(Alert)).one()
        assert row.status == "resolved" and row.ended_at == clock.now()
        texts = [t.text for t in s.scalars(select(TimelineEntry).where(TimelineEntry.kind == "alert"))]
    assert any(t.startswith("Alert resolved") for t in texts)
    # Resolved twice is just an update.
    assert ingest_alerts(ctx, [alert("api", "a", now, status="resolved")]).resolved == 0
    clock.advance(timedelta(minutes=1))
    again = ingest_alerts(ctx, [alert("api", "a", clock.now())])
    assert again.incidents_opened == [] and again.updated == 1
    with ctx.db.session() as s:
        row = s.scalars(select(Alert)).one()
        assert row.status == "firing" and row.ended_at is None and row.started_at == clock.now()


def test_same_service_sources_correlate_into_one_incident(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    g = ingest_alerts(ctx, [alert("mailer", "g1", now, source="grafana", severity="warning")])
    clock.advance(timedelta(minutes=1))
    s_ = ingest_alerts(ctx, [alert("mailer", "issue:9", now, source="sentry", severity="critical")])
    assert s_.incidents_opened == [] and s_.incidents_updated == g.incidents_opened
    (inc,) = _incidents(ctx)
    assert inc.severity == "critical"  # raised by the later alert
    with ctx.db.session() as s:
        entries = list(s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc.id)))
    assert [e.field for e in entries if e.kind == "updated"] == ["severity"]
    assert sum(1 for e in entries if e.kind == "alert") == 2
    assert len(_investigations(ctx)) == 1


def test_dependencies_link_services_both_ways(ctx: ToolContext, clock: FixedClock) -> None:
    ctx.settings.dependencies = {"checkout": ["payments"], "payments": ["postgres"]}
    assert related_services("payments", ctx.settings.dependencies) == {"payments", "postgres", "checkout"}
    now = clock.now()
    ingest_alerts(ctx, [alert("postgres", "p", now)])
    ingest_alerts(ctx, [alert("payments", "q", now)])
    ingest_alerts(ctx, [alert("checkout", "c", now)])
    ingest_alerts(ctx, [alert("search", "s", now)])
    incs = _incidents(ctx)
    assert [sorted(i.services) for i in incs] == [["checkout", "payments", "postgres"], ["search"]]


def test_window_closes_and_closed_incidents_are_not_reused(ctx: ToolContext, clock: FixedClock) -> None:
    ctx.settings.correlation_window_minutes = 10
    now = clock.now()
    ingest_alerts(ctx, [alert("api", "1", now)])
    clock.advance(timedelta(minutes=9))
    assert ingest_alerts(ctx, [alert("api", "2", clock.now())]).incidents_opened == []
    clock.advance(timedelta(minutes=9))  # within 10 min of the last alert: the window slides
    assert ingest_alerts(ctx, [alert("api", "3", clock.now())]).incidents_opened == []
    clock.advance(timedelta(minutes=11))
    assert len(ingest_alerts(ctx, [alert("api", "4", clock.now())]).incidents_opened) == 1
    inc = _incidents(ctx)[-1]
    with ctx.db.session() as s:
        set_status(s, s.get(Incident, inc.id), "resolved", at=clock.now(), actor="test")  # type: ignore[arg-type]
    assert len(ingest_alerts(ctx, [alert("api", "5", clock.now())]).incidents_opened) == 1
    assert len(_incidents(ctx)) == 3


def test_mitigated_incident_keeps_its_alerts(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    inc_id = ingest_alerts(ctx, [alert("api", "r", now)]).incidents_opened[0]
    with ctx.db.session() as s:
        set_status(s, s.get(Incident, inc_id), "mitigated", at=now, actor="test")  # type: ignore[arg-type]
    clock.advance(timedelta(minutes=30))
    repeat = ingest_alerts(ctx, [alert("api", "r", now)])  # a repeat notification after the fix
    assert repeat.incidents_opened == [] and repeat.incidents_updated == [inc_id]
    other = ingest_alerts(ctx, [alert("api", "new", clock.now())])  # a new alert opens a new incident
    assert len(other.incidents_opened) == 1
    with ctx.db.session() as s:
        set_status(s, s.get(Incident, inc_id), "resolved", at=clock.now(), actor="test")  # type: ignore[arg-type]
    clock.advance(timedelta(minutes=1))
    after = ingest_alerts(ctx, [alert("api", "r", now)])
    assert after.incidents_opened == [] and after.incidents_updated == other.incidents_opened


def test_investigation_queued_once_with_group_wait(ctx: ToolContext, clock: FixedClock) -> None:
    ctx.settings.group_wait_seconds = 30
    now = clock.now()
    res = ingest_alerts(ctx, [alert("api", "1", now), alert("api", "2", now)])
    ingest_alerts(ctx, [alert("api", "3", now)])
    (inv,) = _investigations(ctx)
    assert inv.id == res.investigations_queued[0] and len(inv.id) == 32
    assert inv.status == "queued" and inv.queued_at == now and inv.not_before == now + timedelta(seconds=30)
    assert inv.incident_id == res.incidents_opened[0]
    # Even after it ran, joining alerts do not queue a second one for the same incident.
    with ctx.db.session() as s:
        s.get(Investigation, inv.id).status = "done"  # type: ignore[union-attr]
    assert ingest_alerts(ctx, [alert("api", "4", now)]).investigations_queued == []


def test_manual_incident_gets_alerts_and_an_investigation(ctx: ToolContext, clock: FixedClock) -> None:
    with ctx.db.session() as s:
        inc = open_incident(s, title="Checkout slow", services=["checkout"], severity="minor",
                            at=clock.now(), actor="alice")
        inc_id = inc.id
    res = ingest_alerts(ctx, [alert("checkout", "x", clock.now(), severity="info")])
    assert res.incidents_updated == [inc_id] and len(res.investigations_queued) == 1


def test_severity_mapping(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    for i, (sev, expected) in enumerate([("critical", "critical"), ("error", "major"), ("warning", "major"),
                                         ("info", "minor")]):
        res = ingest_alerts(ctx, [alert(f"svc{i}", f"f{i}", now, severity=sev)])
        with ctx.db.session() as s:
            assert s.get(Incident, res.incidents_opened[0]).severity == expected  # type: ignore[union-attr]


def test_storm_stores_everything_with_bounded_incidents(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    batch = [alert(f"svc-{i % 300}", f"fp-{i}", now, severity="critical") for i in range(3000)]
    for start in range(0, len(batch), 500):
        ingest_alerts(ctx, batch[start:start + 500])
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 3000
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.incident_id.is_(None))) == 0
        incidents = list(s.scalars(select(Incident)))
        investigations = s.scalar(select(func.count()).select_from(Investigation))
    assert len(incidents) == STORM_INCIDENT_LIMIT + 1
    assert sum(STORM_TAG in i.tags for i in incidents) == 1
    assert investigations == len(incidents)


def test_concurrent_deliveries_open_one_incident(ctx: ToolContext, clock: FixedClock) -> None:
    now = clock.now()
    errors: list[BaseException] = []

    def deliver(n: int) -> None:
        try:
            ingest_alerts(ctx, [alert("checkout", f"t{n}-{i}", now) for i in range(20)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_incidents(ctx)) == 1 and len(_investigations(ctx)) == 1


def test_empty_delivery_is_a_no_op(ctx: ToolContext) -> None:
    assert ingest_alerts(ctx, []).received == 0
    assert _incidents(ctx) == []


def test_ingest_on_each_storage_backend(storage_ctx: ToolContext, clock: FixedClock) -> None:
    """The same intake on SQLite and PostgreSQL (bulk inserts, advisory lock, varchar limits)."""
    ctx = storage_ctx
    now = clock.now()
    long_fp = "x" * 500
    res = ingest_alerts(ctx, [alert("checkout", f"s{i}", now, severity="critical", raw={"n": i, "nul": "\x00"})
                              for i in range(50)] + [alert("checkout", long_fp, now)])
    assert res.created == 51 and len(res.incidents_opened) == 1
    again = ingest_alerts(ctx, [alert("checkout", "s1", now, status="resolved")])
    assert again.resolved == 1
    errors: list[BaseException] = []

    def deliver(n: int) -> None:
        try:
            ingest_alerts(ctx, [alert("payments", f"p{n}-{i}", now) for i in range(10)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 91
        rows = {a.fingerprint: a for a in s.scalars(select(Alert))}
        assert rows["s3"].raw == {"n": 3, "nul": "\x00"} and rows["s3"].started_at == now
        assert rows["s1"].status == "resolved" and rows["s1"].ended_at == now
        assert len(max(rows, key=len)) <= 200
        assert s.scalar(select(func.count()).select_from(Incident)) == 2
        entries = s.scalar(select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "alert"))
        assert (entries or 0) >= 91


def test_a_huge_alert_text_is_cut_and_says_so(ctx: ToolContext) -> None:
    import time

    from firebreak.server.intake.models import MAX_TEXT_CHARS, NormalizedAlert

    huge = "x" * (16 * 1024 * 1024)
    t0 = time.perf_counter()
    a = NormalizedAlert(source="grafana", fingerprint="fp", service="api", title="t" * 5000, summary=huge,
                        started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC), raw={"description": huge})
    assert time.perf_counter() - t0 < 5
    assert len(a.summary) < MAX_TEXT_CHARS + 100 and a.summary.endswith("more characters cut at intake]")
    assert len(a.title) < 1100 and len(a.raw["description"]) < MAX_TEXT_CHARS + 100
