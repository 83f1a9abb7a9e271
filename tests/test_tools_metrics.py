"""Embedded metric store, `query_metric`, `metric_anomalies`, dashboards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from firebreak.context import ToolContext
from firebreak.tools.metric_store import Dashboard, MetricPoint, Panel, get_metric_store
from firebreak.tools.metrics import detect_change
from firebreak.tools.registry import ToolError, call_tool

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)
N = 180  # 45 minutes at 15 s; the test clock is 08:45


def _series(rng: np.random.Generator, base: float, noise: float, shape: str | None, onset: int) -> np.ndarray:
    x = np.full(N, base)
    if shape == "step":
        x[onset:] = base * 3
    elif shape == "drop":
        x[onset:] = base * 0.1
    elif shape == "spike":
        x[onset : onset + 20] = base * 4
    elif shape == "ramp":
        over = 60
        x[onset : onset + over] = base + (base * 5 - base) * np.arange(over) / over
        x[onset + over :] = base * 5
    return x * (1 + noise * rng.standard_normal(N))


# (service, metric, shape, onset index, base, noise)
WORLD = [
    ("mailer", "process_resident_memory_bytes", "ramp", 40, 4.0e8, 0.02),
    ("mailer", "errors_per_second", "step", 60, 2.0, 0.05),
    ("api", "http_requests_per_second", "drop", 72, 120.0, 0.05),
    ("api", "latency_p99_seconds", "spike", 90, 0.25, 0.08),
    ("postgres", "connections", None, 0, 50.0, 0.05),
    ("postgres", "cpu_seconds", None, 0, 1.5, 0.10),
]


@pytest.fixture
def world(ctx: ToolContext) -> ToolContext:
    rng = np.random.default_rng(7)
    points = []
    for service, name, shape, onset, base, noise in WORLD:
        for i, v in enumerate(_series(rng, base, noise, shape, onset)):
            points.append(MetricPoint(START + i * STEP, service, name, float(v)))
    get_metric_store(ctx).ingest(points)
    return ctx


def test_query_metric_native_step(world: ToolContext) -> None:
    out = call_tool(
        world,
        "query_metric",
        {
            "service": "mailer",
            "name": "errors_per_second",
            "since": "2026-03-02T08:10:00Z",
            "until": "2026-03-02T08:20:00Z",
        },
    )
    assert out["step_seconds"] == 15 and out["series"] == 1 and not out["truncated"]
    assert len(out["points"]) == 41
    assert out["points"][0][0] == "2026-03-02T08:10:00Z"
    values = [v for _, v in out["points"]]
    assert max(values[:20]) < 3 and min(values[-20:]) > 4  # the step at 08:15
    assert out["source"] == "embedded"


def test_query_metric_default_range_and_buckets(world: ToolContext) -> None:
    out = call_tool(world, "query_metric", {"service": "api", "name": "http_requests_per_second", "step_seconds": 300})
    # default: the hour before 08:45; data from 08:00 -> 9 five-minute buckets (08:00 .. 08:40)
    assert [p[0][11:16] for p in out["points"]] == [f"08:{m:02d}" for m in range(0, 45, 5)]
    assert out["points"][0][1] == pytest.approx(120, rel=0.05)
    assert out["points"][-1][1] == pytest.approx(12, rel=0.1)


def test_query_metric_bounds_points(ctx: ToolContext) -> None:
    store = get_metric_store(ctx)
    store.ingest(MetricPoint(START + i * timedelta(seconds=1), "api", "hits", 1.0) for i in range(3600))
    until = (START + timedelta(hours=1)).isoformat()
    auto = call_tool(
        ctx, "query_metric", {"service": "api", "name": "hits", "since": START.isoformat(), "until": until}
    )
    assert len(auto["points"]) <= 500 and auto["step_seconds"] == 10 and not auto["truncated"]
    fine = call_tool(
        ctx,
        "query_metric",
        {"service": "api", "name": "hits", "since": START.isoformat(), "until": until, "step_seconds": 1},
    )
    assert len(fine["points"]) == 500 and fine["truncated"] is True
    assert fine["points"][-1][0] == "2026-03-02T08:59:59Z"  # the newest buckets are kept


def test_query_metric_averages_label_sets(ctx: ToolContext) -> None:
    store = get_metric_store(ctx)
    store.ingest(
        [
            MetricPoint(START, "api", "mem", 10.0, {"pod": "a"}),
            MetricPoint(START, "api", "mem", 30.0, {"pod": "b"}),
            MetricPoint(START, "api", "mem", float("nan"), {"pod": "c"}),
        ]
    )
    out = call_tool(
        ctx,
        "query_metric",
        {"service": "api", "name": "mem", "since": START.isoformat(), "until": "2026-03-02T08:01:00Z"},
    )
    assert out["series"] == 2 and out["points"] == [["2026-03-02T08:00:00Z", 20.0]]


def test_query_metric_errors(world: ToolContext) -> None:
    with pytest.raises(ToolError) as err:
        call_tool(world, "query_metric", {"service": "checkout", "name": "x"})
    assert err.value.status == 404 and err.value.field == "service" and "api, mailer, postgres" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "query_metric", {"service": "mailer", "name": "cpu"})
    assert err.value.field == "name" and "errors_per_second, process_resident_memory_bytes" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(
            world,
            "query_metric",
            {
                "service": "mailer",
                "name": "errors_per_second",
                "since": "2026-03-02T08:30:00Z",
                "until": "2026-03-02T08:10:00Z",
            },
        )
    assert err.value.status == 422 and "must be before" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "query_metric", {"service": "mailer"})
    assert err.value.field == "name"


def test_metric_anomalies_finds_each_shape_earliest_first(world: ToolContext) -> None:
    out = call_tool(world, "metric_anomalies", {"since": START.isoformat()})
    got = {(a["service"], a["name"]): a for a in out["anomalies"]}
    assert set(got) == {(s, n) for s, n, shape, *_ in WORLD if shape}, "noise-only series must not be reported"
    onsets = [a["onset"] for a in out["anomalies"]]
    assert onsets == sorted(onsets)
    assert [a["name"] for a in out["anomalies"]][0] == "process_resident_memory_bytes"
    for service, name, shape, onset, base, _ in WORLD:
        if not shape:
            continue
        a = got[(service, name)]
        found = datetime.fromisoformat(a["onset"])
        assert abs(found - (START + onset * STEP)) <= 2 * STEP, (name, a["onset"])
        assert a["before"] == pytest.approx(base, rel=0.1)
        assert a["direction"] == ("down" if shape == "drop" else "up")
        assert a["score"] >= 5
    assert got[("mailer", "errors_per_second")]["change_ratio"] == pytest.approx(3, rel=0.1)
    assert got[("api", "http_requests_per_second")]["change_ratio"] == pytest.approx(0.1, rel=0.2)
    assert got[("api", "latency_p99_seconds")]["after"] == pytest.approx(1.0, rel=0.15)  # the spike's peak
    spike = got[("api", "latency_p99_seconds")]
    assert spike["recovered_at"] is not None
    recovered = datetime.fromisoformat(spike["recovered_at"])
    assert abs(recovered - (START + 110 * STEP)) <= 2 * STEP  # 20 samples after its onset
    assert got[("mailer", "errors_per_second")]["recovered_at"] is None
    assert got[("mailer", "process_resident_memory_bytes")]["after"] == pytest.approx(2.0e9, rel=0.1)
    assert out["series_checked"] == 6 and not out["truncated"]


def test_metric_anomalies_filters_limits_and_errors(world: ToolContext) -> None:
    both = call_tool(world, "metric_anomalies", {"service": "api", "since": START.isoformat()})["anomalies"]
    assert [a["name"] for a in both] == ["http_requests_per_second", "latency_p99_seconds"]  # earliest first
    out = call_tool(world, "metric_anomalies", {"service": "api", "since": START.isoformat(), "limit": 1})
    # The largest lasting change: the drop holds, the spike came back.
    assert [a["name"] for a in out["anomalies"]] == ["http_requests_per_second"]
    assert out["truncated"] is True and out["series_checked"] == 2
    with pytest.raises(ToolError) as err:
        call_tool(world, "metric_anomalies", {"service": "checkout"})
    assert err.value.status == 404
    with pytest.raises(ToolError):
        call_tool(world, "metric_anomalies", {"since": "2026-03-02T09:00:00Z", "until": "2026-03-02T08:00:00Z"})
    # default range is the two hours before the clock's now (08:45)
    out = call_tool(world, "metric_anomalies", {})
    assert out["since"].startswith("2026-03-02T06:45:00") and len(out["anomalies"]) == 4


@pytest.mark.parametrize("shape", ["step", "drop", "spike", "ramp"])
@pytest.mark.parametrize("noise", [0.02, 0.1])
def test_detect_change_onset_accuracy(shape: str, noise: float) -> None:
    rng = np.random.default_rng(11)
    errors = []
    for _ in range(20):
        onset = int(rng.integers(40, 120))
        change = detect_change(_series(rng, 100.0, noise, shape, onset))
        assert change is not None
        errors.append(abs(change.onset_index - onset))
    # within one sample (15 s) typically; a noisy ramp's start is inherently blurrier
    assert np.median(errors) <= (2 if shape == "ramp" else 1) and max(errors) <= 4


def test_detect_change_ignores_noise_and_short_series() -> None:
    rng = np.random.default_rng(3)
    assert all(detect_change(100 * (1 + 0.1 * rng.standard_normal(N))) is None for _ in range(50))
    assert detect_change([1.0] * 5 + [100.0] * 5) is None
    assert detect_change([5.0] * 100) is None


def test_dashboards_upsert_and_list(ctx: ToolContext) -> None:
    store = get_metric_store(ctx)
    store.upsert_dashboard(
        Dashboard(uid="mailer-overview", title="Mailer", panels=[Panel(title="Memory", service="mailer", metric="mem")])
    )
    store.upsert_dashboard(
        Dashboard(
            uid="mailer-overview",
            title="Mailer overview",
            panels=[
                Panel(title="Memory", service="mailer", metric="mem"),
                Panel(title="Errors", service="mailer", metric="errors"),
            ],
        )
    )
    store.upsert_dashboard(
        {
            "uid": "api",
            "title": "API",
            "url": "https://grafana.example/d/api",
            "panels": [{"title": "RPS", "service": "api", "metric": "rps"}],
        }
    )
    out = call_tool(ctx, "list_dashboards", {})
    assert [d["uid"] for d in out["dashboards"]] == ["api", "mailer-overview"]
    mailer = call_tool(ctx, "list_dashboards", {"service": "mailer"})["dashboards"]
    assert len(mailer) == 1 and mailer[0]["title"] == "Mailer overview"
    assert mailer[0]["url"] == "/dashboards/mailer-overview"
    assert [p["url"] for p in mailer[0]["panels"]] == [
        "/dashboards/mailer-overview#panel-1",
        "/dashboards/mailer-overview#panel-2",
    ]
    assert out["dashboards"][0]["panels"][0]["url"] == "https://grafana.example/d/api#panel-1"
    assert call_tool(ctx, "list_dashboards", {"service": "nothing"})["dashboards"] == []
    assert out["source"] == "embedded" and out["truncated"] is False


def test_ingest_is_idempotent_per_timestamp(ctx: ToolContext) -> None:
    store = get_metric_store(ctx)
    store.ingest([MetricPoint(START, "api", "rps", 1.0)])
    store.ingest([{"ts": "2026-03-02T08:00:00Z", "service": "api", "name": "rps", "value": 2.0}])
    rows = store.points([k.id for k in store.series("api", "rps")], START, START)
    assert [r[2] for r in rows] == [2.0]
    with pytest.raises(ValueError, match="timezone"):
        store.ingest([MetricPoint(datetime(2026, 3, 2), "api", "rps", 1.0)])


def test_detect_change_early_onset_and_zero_baseline() -> None:
    rng = np.random.default_rng(5)
    # a drill moves a metric 6 minutes in and triages at 30 minutes: 120 samples, onset at 24
    x = 0.9 * (1 + 0.02 * rng.standard_normal(120))
    x[24:] = 0.12 * (1 + 0.02 * rng.standard_normal(96))
    c = detect_change(x)
    assert c is not None and abs(c.onset_index - 24) <= 1 and c.direction == "down"
    # an error ratio that is exactly 0 until it steps to 0.35: no ratio, finite score
    z = np.zeros(120)
    z[50:] = 0.35
    c = detect_change(z)
    assert c is not None and c.onset_index == 50 and c.before == 0 and c.score <= 1e6


def test_failed_ingest_leaves_no_stale_series_ids(ctx: ToolContext) -> None:
    from firebreak.tools.metric_store import MetricPoint, get_metric_store

    store = get_metric_store(ctx)
    now = ctx.clock.now()
    bad: list[MetricPoint | dict[str, object]] = [
        MetricPoint(ts=now, service="newsvc", name="m", value=1.0),
        {"ts": now, "service": "", "name": "m", "value": 1.0},
    ]
    with pytest.raises(ValueError):
        store.ingest(bad)
    assert store.services() == []
    store.ingest([MetricPoint(ts=now, service="newsvc", name="m", value=2.0)])
    sid = store.series("newsvc", "m")[0].id
    assert [v for _, _, v in store.points([sid], now, now)] == [2.0]


def test_embedded_counters_are_read_as_rates(ctx: ToolContext) -> None:
    """A `_total` counter grows on its own: its rate is what moves (a reset counts from zero)."""
    store = get_metric_store(ctx)
    points, total = [], 0.0
    for i in range(N):
        total = 0.0 if i == 100 else total + (30.0 if i >= 120 else 15.0)  # 1/s, then 2/s; a restart at 100
        points.append(MetricPoint(START + i * STEP, "api", "http_requests_total", total))
        points.append(MetricPoint(START + i * STEP, "api", "jobs_total", 15.0 * i))  # steady growth
    store.ingest(points)
    out = call_tool(ctx, "metric_anomalies", {"since": START.isoformat()})
    (a,) = out["anomalies"]
    assert (a["name"], a["kind"], a["direction"]) == ("http_requests_total", "rate", "up")
    assert a["before"] == pytest.approx(1.0) and a["after"] == pytest.approx(2.0)
    assert abs(datetime.fromisoformat(a["onset"]) - (START + 120 * STEP)) <= STEP
    q = call_tool(ctx, "query_metric", {"service": "api", "name": "jobs_total", "since": START.isoformat(),
                                        "step_seconds": 60})
    assert q["kind"] == "rate" and {v for _, v in q["points"]} == {1.0}
    get_metric_store(ctx).set_metric_kind("jobs_total", "gauge")  # declared types win over the suffix
    q = call_tool(ctx, "query_metric", {"service": "api", "name": "jobs_total", "since": START.isoformat()})
    assert q["kind"] == "gauge" and q["points"][-1][1] > 1000
    with pytest.raises(ValueError, match="kind"):
        store.set_metric_kind("x", "summary")


def test_embedded_histograms_are_read_as_p99(ctx: ToolContext) -> None:
    """`x_bucket{le}` series (as OTLP intake writes them) give the 99th percentile, as on Prometheus."""
    store = get_metric_store(ctx)
    bounds = ("0.1", "0.5", "1", "+Inf")
    counts = dict.fromkeys(bounds, 0.0)
    points = []
    for i in range(N):
        slow = i >= 110  # from then on every request takes 0.5-1 s
        for le in bounds:
            counts[le] += 15.0 if (slow and le in ("1", "+Inf")) or (not slow) else 0.0
            points.append(MetricPoint(START + i * STEP, "api", "latency_seconds_bucket", counts[le],
                                      {"le": le, "route": "/pay"}))
    store.ingest(points)
    out = call_tool(ctx, "metric_anomalies", {"since": START.isoformat()})
    (a,) = out["anomalies"]
    assert (a["name"], a["kind"], a["labels"]) == ("latency_seconds", "p99", {"route": "/pay"})
    assert a["before"] == pytest.approx(0.099) and a["after"] == pytest.approx(0.995)
    assert abs(datetime.fromisoformat(a["onset"]) - (START + 110 * STEP)) <= STEP
    q = call_tool(ctx, "query_metric", {"service": "api", "name": "latency_seconds", "since": START.isoformat(),
                                        "step_seconds": 60})
    assert q["kind"] == "p99" and q["series"] == 1
    assert q["points"][0][1] == pytest.approx(0.099) and q["points"][-1][1] == pytest.approx(0.995)
