"""Trace store and trace tools over the embedded store: rollups equal a from-scratch computation
whatever order spans arrive in, and the four tools answer what an on-call asks of traces."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from firebreak.context import ToolContext
from firebreak.tools.registry import ToolError, call_tool
from firebreak.tools.trace_analysis import span_totals
from firebreak.tools.trace_store import SpanRecord, SpanStatus, TraceStore, trace_store

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the conftest clock stands at 08:45
PIVOT = T0 + timedelta(minutes=20)


def _ms(x: float) -> timedelta:
    return timedelta(milliseconds=x)


def request(i: int, at: datetime, *, db_ms: float, fail: bool = False) -> list[SpanRecord]:
    """front -> api -> db, plus an internal api span: api does 5 ms of its own work, front 2 ms."""
    tid = f"{i:032x}"
    db = SpanRecord(
        tid,
        f"{i:08x}0003",
        f"{i:08x}0002",
        "db",
        "SELECT orders",
        at + _ms(3),
        at + _ms(3 + db_ms),
        SpanStatus.ERROR if fail else SpanStatus.OK,
    )
    internal = SpanRecord(
        tid, f"{i:08x}0004", f"{i:08x}0002", "api", "render", at + _ms(3 + db_ms), at + _ms(5 + db_ms)
    )
    api = SpanRecord(
        tid,
        f"{i:08x}0002",
        f"{i:08x}0001",
        "api",
        "GET /orders",
        at + _ms(1),
        at + _ms(6 + db_ms),
        SpanStatus.ERROR if fail else SpanStatus.OK,
        {"http.route": "/orders"},
    )
    front = SpanRecord(tid, f"{i:08x}0001", None, "front", "GET /", at, at + _ms(7 + db_ms))
    return [db, internal, api, front]


def incident_spans(n: int = 400) -> list[SpanRecord]:
    """n requests over 40 minutes; after PIVOT the database takes 60 ms instead of 10 and 10% fail."""
    spans: list[SpanRecord] = []
    for i in range(n):
        at = T0 + timedelta(seconds=i * 6, milliseconds=137)
        late = at >= PIVOT
        spans += request(i, at, db_ms=60 if late else 10, fail=late and i % 10 == 0)
    return spans


def test_rollups_match_a_from_scratch_computation_in_any_arrival_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spans = incident_spans(120)
    rng = random.Random(3)
    shuffled = spans + rng.sample(spans, 40)  # duplicates: retried exports
    rng.shuffle(shuffled)
    store = TraceStore(tmp_path / "t.sqlite3")
    try:
        i = 0
        while i < len(shuffled):
            n = rng.randint(1, 30)
            store.add_spans(shuffled[i : i + n])
            i += n
        assert store.count() == len(spans)
        windows = [
            (T0, T0 + timedelta(hours=1)),
            (T0 + timedelta(seconds=61.5), PIVOT + timedelta(seconds=3.2)),
            (PIVOT, PIVOT + timedelta(minutes=7, seconds=1)),
            (T0 - timedelta(seconds=30), T0 + timedelta(hours=1, seconds=30)),  # a whole hour and ragged ends
        ]
        for since, until in windows:
            expect_spans, expect_edges = span_totals(spans, since, until)
            assert store.span_totals(since, until) == expect_spans
            assert store.edge_totals(since, until) == expect_edges
    finally:
        store.close()


def test_concurrent_writers_neither_lose_nor_double_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    spans = incident_spans(100)
    store = TraceStore(tmp_path / "t.sqlite3")
    other = TraceStore(tmp_path / "t.sqlite3")  # a second process's handle on the same file
    try:

        def send(target: TraceStore, seed: int) -> None:
            batch = random.Random(seed).sample(spans, len(spans))  # every span, in its own order
            for i in range(0, len(batch), 37):
                target.add_spans(batch[i : i + 37])

        threads = [threading.Thread(target=send, args=(s, n)) for n, s in enumerate([store, store, other, other])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count() == len(spans)
        window = (T0, T0 + timedelta(hours=1))
        assert (store.span_totals(*window), store.edge_totals(*window)) == span_totals(spans, *window)
    finally:
        store.close()
        other.close()


def test_an_older_layout_rebuilds_its_rollups_from_the_spans(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = TraceStore(tmp_path / "t.sqlite3")
    store.add_spans(incident_spans(60))
    window = (T0 - timedelta(minutes=3), T0 + timedelta(hours=2))
    expected = store.span_totals(*window), store.edge_totals(*window)
    conn = store._conn()
    conn.execute("DELETE FROM span_rollup WHERE width = 3600")  # as a store written before hourly rollups
    conn.execute("PRAGMA user_version = 0")
    conn.commit()
    assert store.span_totals(*window) != expected[0]
    store.close()
    reopened = TraceStore(tmp_path / "t.sqlite3")
    try:
        assert (reopened.span_totals(*window), reopened.edge_totals(*window)) == expected
    finally:
        reopened.close()


def test_a_bad_span_stores_nothing(ctx: ToolContext) -> None:
    good = request(1, T0, db_ms=10)
    naive = SpanRecord("ab" * 16, "cd" * 8, None, "x", "y", datetime(2026, 3, 2, 8), datetime(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="no timezone"):
        trace_store(ctx).add_spans([*good, naive])
    backwards = SpanRecord("ab" * 16, "cd" * 8, None, "x", "y", T0 + _ms(5), T0)
    with pytest.raises(ValueError, match="before start"):
        trace_store(ctx).add_spans([*good, backwards])
    assert trace_store(ctx).count() == 0


@pytest.fixture
def incident(ctx: ToolContext) -> ToolContext:
    assert trace_store(ctx).add_spans(incident_spans()) == 1600
    return ctx


def test_latency_breakdown_puts_the_service_whose_own_time_grew_first(incident: ToolContext) -> None:
    out = call_tool(
        incident,
        "latency_breakdown",
        {"since": T0.isoformat(), "until": (T0 + timedelta(minutes=40)).isoformat(), "pivot": PIVOT.isoformat()},
    )
    rows = {r["service"]: r for r in out["services"]}
    assert out["services"][0]["service"] == "db"
    assert rows["db"]["shift"] == "own_time_grew" and rows["db"]["self_delta_ms"] == pytest.approx(50, abs=0.01)
    # api and front got slower only because they wait: their own time stayed put.
    for caller in ("api", "front"):
        assert rows[caller]["shift"] == "waiting_on_callees"
        assert abs(rows[caller]["self_delta_ms"]) < 0.01
    assert rows["api"]["before"]["self_ms"] == pytest.approx(5, abs=0.01)  # 3 ms + 2 ms internal span
    assert rows["api"]["after"]["callee_ms"] == pytest.approx(60, abs=0.01)
    assert rows["api"]["after"]["avg_latency_ms"] == pytest.approx(65, abs=0.01)
    assert rows["db"]["operations"][0]["operation"] == "SELECT orders"
    narrowed = call_tool(
        incident, "latency_breakdown", {"service": "api", "since": T0.isoformat(), "pivot": PIVOT.isoformat()}
    )
    assert [r["service"] for r in narrowed["services"]] == ["db", "api"]


def test_latency_breakdown_refuses_a_pivot_outside_the_range(incident: ToolContext) -> None:
    with pytest.raises(ToolError) as err:
        call_tool(incident, "latency_breakdown", {"since": PIVOT.isoformat(), "pivot": T0.isoformat()})
    assert err.value.status == 422 and err.value.field == "pivot"
    with pytest.raises(ToolError) as err:
        call_tool(incident, "latency_breakdown", {"pivot": "2026-03-02T08:20:00"})
    assert err.value.status == 422 and "pivot" in err.value.message


def test_service_map_edges(incident: ToolContext) -> None:
    out = call_tool(incident, "service_map", {"since": PIVOT.isoformat()})
    edges = {(e["caller"], e["callee"]): e for e in out["edges"]}
    assert set(edges) == {("front", "api"), ("api", "db")}  # api -> api (render) is not an edge
    assert edges[("api", "db")]["calls"] == 200 and edges[("api", "db")]["errors"] == 20
    assert edges[("api", "db")]["error_ratio"] == 0.1 and edges[("api", "db")]["avg_ms"] == pytest.approx(60)
    assert out["services"] == ["api", "db", "front"] and out["source"] == "embedded"


def test_trace_errors_new_versus_before(incident: ToolContext) -> None:
    out = call_tool(
        incident, "trace_errors", {"since": PIVOT.isoformat(), "until": (PIVOT + timedelta(minutes=20)).isoformat()}
    )
    got = {(g["service"], g["operation"]): g for g in out["groups"]}
    assert set(got) == {("db", "SELECT orders"), ("api", "GET /orders")}
    assert all(g["new"] and g["errors"] == 20 and g["errors_before"] == 0 for g in got.values())
    assert {g["first_seen"] for g in got.values()} == {"2026-03-02T08:20:00Z"}  # request 200 at 08:20:00.137
    later = call_tool(
        incident,
        "trace_errors",
        {"since": (PIVOT + timedelta(minutes=10)).isoformat(), "until": (PIVOT + timedelta(minutes=20)).isoformat()},
    )
    assert not any(g["new"] for g in later["groups"])  # the previous ten minutes already failed
    assert {g["first_seen"] for g in later["groups"]} == {"2026-03-02T08:30:00Z"}
    only_db = call_tool(incident, "trace_errors", {"service": "db", "since": PIVOT.isoformat()})
    assert [g["service"] for g in only_db["groups"]] == ["db"]


def test_sample_traces_bounded_and_filtered(incident: ToolContext) -> None:
    out = call_tool(incident, "sample_traces", {"since": T0.isoformat(), "status": "error", "limit": 2, "max_spans": 3})
    assert len(out["traces"]) == 2
    newest = out["traces"][0]
    assert newest["start"] > out["traces"][1]["start"]
    assert newest["span_count"] == 4 and newest["truncated"] and len(newest["spans"]) == 3
    assert newest["errors"] == 2 and newest["root"] == "front: GET /"
    assert newest["spans"][0]["parent_id"] is None
    api = next(s for s in newest["spans"] if s["service"] == "api")
    assert api["attributes"] == {"http.route": "/orders"}
    ok = call_tool(
        incident,
        "sample_traces",
        {"since": T0.isoformat(), "until": PIVOT.isoformat(), "service": "db", "status": "error"},
    )
    assert ok["traces"] == []
    with pytest.raises(ToolError) as err:
        call_tool(incident, "sample_traces", {"service": "nope"})
    assert err.value.status == 404 and "db" in err.value.message


def test_service_dependencies_fall_back_on_traces(incident: ToolContext) -> None:
    out = call_tool(incident, "service_dependencies", {})
    assert {(e["service"], e["depends_on"]) for e in out["edges"]} == {("front", "api"), ("api", "db")}
    assert "traces" in out["note"]
    one = call_tool(incident, "service_dependencies", {"service": "api"})
    assert one["depends_on"] == ["db"] and one["dependents"] == ["front"]
    incident.settings.dependencies = {"front": ["cache"]}  # configured graphs win
    assert call_tool(incident, "service_dependencies", {})["edges"] == [{"service": "front", "depends_on": "cache"}]


def test_firebreak_traces_cli(incident: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    import firebreak.tools.cli as tools_cli
    from firebreak.cli import app

    monkeypatch.setattr(tools_cli, "CONTEXT_FACTORY", lambda: incident)
    runner = CliRunner()
    res = runner.invoke(
        app, ["traces", "latency-breakdown", "--since", T0.isoformat(), "--pivot", PIVOT.isoformat(), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["services"][0]["service"] == "db"
    res = runner.invoke(app, ["traces", "service-map", "--since", T0.isoformat()])
    assert res.exit_code == 0 and "front" in res.output and "api" in res.output
    res = runner.invoke(app, ["traces", "sample-traces", "--service", "nope"])
    assert res.exit_code != 0 and "unknown service 'nope'" in res.output and "Traceback" not in res.output
