"""The incident log: ids, timeline of every change, bad input, round trips, weekly stats (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.memory import incident_log as log
from firebreak.memory.records import CountermeasureRecord, IncidentRecord, RemediationRecord
from firebreak.memory.stats import recurrence, weekly_stats
from firebreak.memory.transfer import ImportError_, export_json, import_records, read_csv, read_json
from firebreak.state.incidents import Incident, Remediation, TimelineEntry

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_ids_are_sequential_per_year(storage_ctx: ToolContext) -> None:
    with storage_ctx.db.session() as s:
        a = log.open_incident(s, title="A", services=["x"], severity="minor", at=T0, actor="t")
        b = log.open_incident(s, title="B", services=["x"], severity="minor", at=T0, actor="t")
        c = log.open_incident(s, title="C", services=["x"], severity="minor", at=T0.replace(year=2027), actor="t")
        ids = (a.id, b.id, c.id)
    assert ids == ("INC-2026-001", "INC-2026-002", "INC-2027-001")


def test_explicit_ids_keep_the_counter_ahead(storage_ctx: ToolContext) -> None:
    with storage_ctx.db.session() as s:
        log.open_incident(s, title="old", services=["x"], severity="minor", at=T0, actor="t",
                          incident_id="INC-2026-017")
        new = log.open_incident(s, title="new", services=["x"], severity="minor", at=T0, actor="t")
        assert new.id == "INC-2026-018"
        with pytest.raises(log.IncidentLogError, match="already exists"):
            log.open_incident(s, title="dup", services=["x"], severity="minor", at=T0, actor="t",
                              incident_id="INC-2026-017")


def test_every_change_is_a_timeline_entry_with_old_and_new(storage_ctx: ToolContext) -> None:
    with storage_ctx.db.session() as s:
        inc = log.open_incident(s, title="Mail late", services=["mailer"], severity="minor", at=T0, actor="bot")
        log.update_incident(s, inc, {"severity": "major", "root_cause": "retry loop"}, at=T0 + timedelta(minutes=5),
                            actor="alice")
        log.update_incident(s, inc, {"severity": "major"}, at=T0 + timedelta(minutes=6), actor="alice")  # no-op
        log.set_status(s, inc, "resolved", at=T0 + timedelta(minutes=30), actor="bob")
        inc_id = inc.id
    with storage_ctx.db.session() as s:
        entries = s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc_id)
                            .order_by(TimelineEntry.id)).all()
        fields = [(e.actor, e.field, e.old_value, e.new_value) for e in entries if e.field]
        got = s.get(Incident, inc_id)
        assert got is not None
        assert got.mitigated_at == T0 + timedelta(minutes=30) and got.resolved_at == T0 + timedelta(minutes=30)
    assert ("alice", "severity", "minor", "major") in fields
    assert ("alice", "root_cause", "", "retry loop") in fields
    assert ("bob", "status", "open", "resolved") in fields
    assert sum(1 for f in fields if f[1] == "severity") == 1  # the no-op left no entry
    assert entries[0].kind == "created" and entries[0].actor == "bot"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"severity": "huge"}, "severity"), ({"status": "closed"}, "status"),
     ({"root_cause_category": "gremlins"}, "root_cause_category"),
     ({"started_at": datetime(2026, 3, 2, 8, 0)}, "started_at"), ({"owner": "x"}, "owner")],
)
def test_bad_fields_are_named_and_nothing_is_written(storage_ctx: ToolContext, change: dict, field: str) -> None:
    with storage_ctx.db.session() as s:
        log.open_incident(s, title="A", services=["x"], severity="minor", at=T0, actor="t")
    with pytest.raises(log.IncidentLogError) as exc, storage_ctx.db.session() as s:
        inc = log.get_incident(s, "INC-2026-001")
        log.update_incident(s, inc, {"title": "renamed", **change}, at=T0, actor="t")
    assert exc.value.field == field
    with storage_ctx.db.session() as s:
        assert log.get_incident(s, "INC-2026-001").title == "A"  # the transaction was rolled back


def _full_incident(s, when: datetime) -> str:  # type: ignore[no-untyped-def]
    inc = log.open_incident(
        s, title="Bulk email stopped", services=["mailer", "postgres"], severity="major", at=when, actor="bot",
        started_at=when - timedelta(minutes=30), symptoms="OOM kills", user_impact="mail 2 hours late",
        tags=["email", "oom"],
    )
    log.update_incident(s, inc, {"root_cause": "retry loop in 4.6.2", "root_cause_category": "deploy",
                                 "hotfix": True, "rollback": True}, at=when, actor="alice")
    log.add_countermeasure(s, inc, what="rollback mailer to 4.6.1", by="alice", at=when, worked=True,
                           approval_id="ap-1")
    log.add_countermeasure(s, inc, what="restart scheduler", by="bob", at=when, worked=False)
    rem = log.add_remediation(s, inc, what="cap retries", owner="carol", due=date(2026, 3, 20), at=when, actor="alice")
    log.complete_remediation(s, rem, verification="load test passed", at=when, actor="carol")
    log.add_remediation(s, inc, what="memory alert at 80%", owner="dan", due=None, at=when, actor="alice")
    log.add_link(s, inc, kind="slack", url="https://slack.example/t/1", label="thread", at=when, actor="bot")
    log.set_status(s, inc, "resolved", at=when + timedelta(hours=1), actor="alice")
    return inc.id


def test_json_export_import_round_trip_loses_nothing(storage_ctx: ToolContext, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with storage_ctx.db.session() as s:
        _full_incident(s, T0)
        exported = export_json(s)
    # Import into a second, empty database.
    other = ToolContext(settings=storage_ctx.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path}/other.db"}), clock=storage_ctx.clock)
    with other.db.session() as s:
        import_records(s, read_json(exported, source="export.json"), actor="importer", at=T0, source="export.json")
    with other.db.session() as s:
        again = json.loads(export_json(s))["incidents"]
    before = json.loads(exported)["incidents"]
    assert len(before) == len(again) == 1
    a, b = before[0], again[0]
    tl_a, tl_b = a.pop("timeline"), b.pop("timeline")
    assert a == b  # every field, countermeasure and remediation survives
    assert tl_b[: len(tl_a)] == tl_a and tl_b[-1]["kind"] == "imported"


def test_import_is_all_or_nothing(storage_ctx: ToolContext) -> None:
    good = IncidentRecord(id="INC-2025-001", title="ok", severity="minor")
    dup = IncidentRecord(id="INC-2025-001", title="again", severity="minor")
    with pytest.raises(ImportError_, match="already exists"), storage_ctx.db.session() as s:
        import_records(s, [good, dup], actor="t", at=T0, source="f.json")
    with storage_ctx.db.session() as s:
        assert s.scalars(select(Incident)).all() == []


NOTION_CSV = """\ufeffName,Incident ID,Services,Severity,Status,Started,Resolved,Root cause,Root-cause category,\
Countermeasures,Scheduled remediation,Remediation owner,Remediation due,Hotfix,Rollback,Tags,Created by
Mailer OOM after template cache change,INC-2025-031,mailer,major,resolved,"November 4, 2025 9:12 AM (UTC)",\
"November 4, 2025 10:40 AM (UTC)",unbounded template cache in 4.5.0,deploy,rolled back mailer 4.5.0 to 4.4.9,\
bounded the cache,carol,2025-11-20,No,Yes,"email, oom",Alice
Campaign preview timeouts,INC-2026-004,api,minor,resolved,"January 19, 2026 2:02 PM",,missing index,data,\
disabled flag api-campaign-preview,,,,No,No,,Bob
"""


def test_notion_csv_import_maps_columns_and_needs_a_zone(storage_ctx: ToolContext) -> None:
    with pytest.raises(ImportError_, match=r"row 3: started_at: .*no timezone"):
        read_csv(NOTION_CSV, source="notion.csv", default_tz=None, now=T0)
    records = read_csv(NOTION_CSV, source="notion.csv", default_tz="Europe/Paris", now=T0)
    with storage_ctx.db.session() as s:
        import_records(s, records, actor="t", at=T0, source="notion.csv")
    with storage_ctx.db.session() as s:
        a = log.get_incident(s, "INC-2025-031")
        b = log.get_incident(s, "INC-2026-004")
        assert a.started_at == datetime(2025, 11, 4, 9, 12, tzinfo=UTC)
        assert a.resolved_at == datetime(2025, 11, 4, 10, 40, tzinfo=UTC)
        assert a.rollback is True and a.hotfix is False and a.tags == ["email", "oom"]
        assert [c.what for c in a.countermeasures] == ["rolled back mailer 4.5.0 to 4.4.9"]
        assert [(r.what, r.owner, r.due_date) for r in a.remediations] == [
            ("bounded the cache", "carol", date(2025, 11, 20))]
        assert b.started_at == datetime(2026, 1, 19, 13, 2, tzinfo=UTC)  # 14:02 in Paris (UTC+1)
        assert b.root_cause_category == "data"


@pytest.mark.parametrize(
    ("row", "message"),
    [("X,INC-1,a,huge,open,2026-01-01T00:00:00Z", r"row 2: severity: unknown severity 'huge'"),
     ("X,INC-1,a,minor,open,yesterday", r"row 2: started_at: cannot read timestamp 'yesterday'"),
     (",INC-1,a,minor,open,2026-01-01T00:00:00Z", r"row 2: title: missing")],
)
def test_malformed_csv_rows_are_named(row: str, message: str) -> None:
    text = "Title,ID,Services,Severity,Status,Started\n" + row + "\n"
    with pytest.raises(ImportError_, match=message):
        read_csv(text, source="bad.csv", default_tz=None, now=T0)


# --- Weekly stats against a hand-counted fixture of 30 incidents over 8 weeks --------------------------------------
# now = Sunday 2026-03-01 12:00Z; the 8 weeks start on Mondays 2026-01-05 ... 2026-02-23.
# (week, day offset, severity, minutes to mitigate, minutes to resolve, hotfix, rollback)
FIXTURE: list[tuple[int, int, str, int | None, int | None, bool, bool]] = [
    (0, 0, "minor", 30, 60, False, False), (0, 1, "major", 60, 120, False, True),
    (0, 2, "critical", 90, 180, True, False),
    *[(1, d, "minor", 10, 20, False, False) for d in range(4)],
    (2, 0, "major", 40, 100, False, True), (2, 1, "major", 80, 200, False, True),
    *[(2, d, "minor", 20, 40, False, False) for d in (2, 3, 4)],
    (4, 0, "critical", 120, 240, True, True), *[(4, d, "minor", 15, 30, False, False) for d in range(1, 6)],
    (5, 0, "major", 50, None, False, False), (5, 1, "major", 50, None, False, False),
    (5, 2, "major", 50, 100, False, False), (5, 3, "major", 50, 100, False, False),
    (6, 0, "minor", None, None, False, False), (6, 1, "critical", 30, 90, True, False),
    (6, 2, "critical", 30, 90, True, False), (6, 3, "critical", 60, 90, False, False),
    (6, 4, "critical", 60, 90, False, False),
    *[(7, d, "minor", None, None, False, False) for d in range(3)],
]
EXPECTED = {  # counted by hand from the table above
    "incidents": [3, 4, 5, 0, 6, 4, 5, 3],
    "minor": [1, 4, 3, 0, 5, 0, 1, 3],
    "major": [1, 0, 2, 0, 0, 4, 0, 0],
    "critical": [1, 0, 0, 0, 1, 0, 4, 0],
    "hotfixes": [1, 0, 0, 0, 1, 0, 2, 0],
    "rollbacks": [1, 0, 2, 0, 1, 0, 0, 0],
    "mttm": [60.0, 10.0, 36.0, None, 32.5, 50.0, 45.0, None],
    "mttr": [120.0, 20.0, 84.0, None, 65.0, 100.0, 90.0, None],
    "overdue": [1, 1, 0, 0, 0, 1, 1, 1],
}


def test_weekly_stats_match_hand_counted_fixture(storage_ctx: ToolContext) -> None:
    assert len(FIXTURE) == 30
    monday = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    records = []
    for n, (week, day, sev, mit, res, hotfix, rollback) in enumerate(FIXTURE):
        start = monday + timedelta(weeks=week, days=day)
        records.append(IncidentRecord(
            id=f"INC-2026-{n + 1:03d}", title=f"incident {n}", services=["svc"], severity=sev,
            status="resolved" if res else ("mitigated" if mit else "open"),
            # One incident has no start time: detection time counts instead.
            started_at=None if n == 3 else start, detected_at=start,
            mitigated_at=start + timedelta(minutes=mit) if mit else None,
            resolved_at=start + timedelta(minutes=res) if res else None, hotfix=hotfix, rollback=rollback,
            remediations=[
                RemediationRecord(what="r1", owner="o", due_date=date(2026, 1, 8), status="done",
                                  done_at=datetime(2026, 1, 20, tzinfo=UTC))] if n == 0 else (
                [RemediationRecord(what="r2", owner="o", due_date=date(2026, 2, 10)),
                 RemediationRecord(what="r3", owner="o", due_date=date(2026, 3, 10))] if n == 12 else []),
            countermeasures=[CountermeasureRecord(at=start, what="x", by="y")] if mit else [],
        ))
    # An incident before the window must not count.
    records.append(IncidentRecord(id="INC-2025-100", title="old", severity="critical",
                                  started_at=datetime(2025, 12, 20, tzinfo=UTC)))
    with storage_ctx.db.session() as s:
        import_records(s, records, actor="t", at=T0, source="fixture")
    with storage_ctx.db.session() as s:
        weeks = weekly_stats(s, weeks=8, now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert [w.week_start for w in weeks] == [date(2026, 1, 5) + timedelta(weeks=i) for i in range(8)]
    assert [w.incidents for w in weeks] == EXPECTED["incidents"]
    for sev in ("minor", "major", "critical"):
        assert [w.by_severity[sev] for w in weeks] == EXPECTED[sev], sev
    assert [w.hotfixes for w in weeks] == EXPECTED["hotfixes"]
    assert [w.rollbacks for w in weeks] == EXPECTED["rollbacks"]
    assert [w.mean_minutes_to_mitigate for w in weeks] == EXPECTED["mttm"]
    assert [w.mean_minutes_to_resolve for w in weeks] == EXPECTED["mttr"]
    assert [w.overdue_remediations for w in weeks] == EXPECTED["overdue"]


def test_recurrence_counts_same_service_and_category(storage_ctx: ToolContext) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    with storage_ctx.db.session() as s:
        for i, (days_ago, svc, cat) in enumerate(
            [(3, "mailer", "deploy"), (10, "mailer", "deploy"), (20, "mailer", "deploy"), (45, "mailer", "deploy"),
             (5, "mailer", "config"), (5, "api", "deploy"), (200, "mailer", "deploy")]
        ):
            log.open_incident(s, title=f"i{i}", services=[svc], severity="minor", at=base, actor="t",
                              started_at=base - timedelta(days=days_ago), root_cause_category=cat)
        now_inc = log.open_incident(s, title="now", services=["mailer"], severity="major", at=base, actor="t",
                                    started_at=base, root_cause_category="deploy")
        r = recurrence(s, now_inc)
    assert (r.last_30_days, r.last_90_days) == (3, 4)
    assert "4th time in 30 days" in r.sentence


def test_remediation_cannot_be_completed_twice(storage_ctx: ToolContext) -> None:
    with storage_ctx.db.session() as s:
        inc = log.open_incident(s, title="A", services=["x"], severity="minor", at=T0, actor="t")
        rem = log.add_remediation(s, inc, what="w", owner="o", due=None, at=T0, actor="t")
        log.complete_remediation(s, rem, verification="ok", at=T0, actor="t")
        with pytest.raises(log.IncidentLogError, match="already done"):
            log.complete_remediation(s, rem, verification="ok", at=T0, actor="t")
        assert s.scalars(select(Remediation)).one().verification == "ok"
