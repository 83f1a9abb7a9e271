"""The N-sigma view of a metrics-only incident (agent/triage/rises.py and features/nsigma.py), on canned
query_metric answers: db's cpu jumps sixfold, api (which calls db) and web (which calls api) slow down
a little later, cache's cpu steps up a little (load shifting), and the alert fires on web only."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from firebreak.agent.report import Suspect, SuspectKind
from firebreak.agent.triage import features
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.observe import Findings
from firebreak.agent.triage.rises import metric_class, pivot_of, rise_of

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)
ONSET = 27.0  # minutes: when db's cpu jumps (the investigator never sees this number)


def _series(base: float, noise: float, changes: list[tuple[float, float]], seed: int) -> list[tuple[datetime, float]]:
    """30 minutes at 5 s: `base` with relative `noise`, multiplied by `factor` from each (minute, factor)."""
    rng = random.Random(seed)
    out = []
    t = T0
    while t <= T0 + timedelta(minutes=30):
        minute = (t - T0).total_seconds() / 60
        level = base
        for start, factor in changes:
            if minute >= start:
                level = base * factor
        out.append((t, level * (1 + rng.gauss(0, noise))))
        t += STEP
    return out


def metrics_world() -> Findings:
    f = Findings(now=T0 + timedelta(minutes=30))
    f.incident = {
        "id": "INC-9",
        "title": "web latency high",
        "services": ["web"],
        "alerts": [
            {"service": "web", "title": "WebLatencyHigh", "severity": "critical", "started_at": "2026-03-02T08:28:00Z"}
        ],
    }
    f.edges = [
        {"service": "web", "depends_on": "api"},
        {"service": "api", "depends_on": "db"},
        {"service": "api", "depends_on": "cache"},
    ]
    f.series = {
        ("db", "cpu"): _series(0.1, 0.1, [(ONSET, 6.0)], 1),
        ("db", "mem"): _series(4e8, 0.01, [], 2),
        ("api", "cpu"): _series(0.2, 0.1, [], 3),
        ("api", "latency_p99_seconds"): _series(0.05, 0.1, [(ONSET + 0.2, 2.5)], 4),
        ("web", "cpu"): _series(0.3, 0.1, [], 5),
        ("web", "latency_p99_seconds"): _series(0.08, 0.1, [(ONSET + 0.4, 1.8)], 6),
        ("cache", "cpu"): _series(0.05, 0.1, [(ONSET + 1.0, 1.5)], 7),
    }
    return f


def cand(kind: SuspectKind, service: str, ref: str) -> Candidate:
    return Candidate(suspect=Suspect(kind=kind, service=service, ref=ref), title=f"{kind} {ref}", origin=service)


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context(metrics_world())


def value(name: str, c: Candidate, ctx: Context) -> float:
    return features.registry()[name].fn(c, ctx)


def test_metric_class_reads_the_name() -> None:
    assert metric_class("container_cpu_usage_ratio") == "resource"
    assert metric_class("mem") == "resource"
    assert metric_class("process_resident_memory_bytes") == "resource"
    assert metric_class("http_request_error_ratio") == "errors"
    assert metric_class("lat_p99") == "latency"
    assert metric_class("http_request_p95_seconds") == "latency"
    assert metric_class("requests_per_second") == "rate"
    assert metric_class("queue_depth") == "other"


def test_rise_of_measures_a_step_in_its_own_noise_and_when_it_crossed(ctx: Context) -> None:
    pivot = pivot_of(ctx.f)
    assert pivot == T0 + timedelta(minutes=26)  # two minutes before the first alert
    z, onset = rise_of(metrics_world().series[("db", "cpu")], pivot)
    assert z > 20
    assert onset is not None and abs((onset - (T0 + timedelta(minutes=ONSET))).total_seconds()) <= 10
    flat_z, flat_onset = rise_of(metrics_world().series[("db", "mem")], pivot)
    assert abs(flat_z) < 3 and flat_onset is None
    # Too little history, or nothing recent: no measurement rather than a guess.
    assert rise_of(metrics_world().series[("db", "cpu")][-10:], pivot) == (0.0, None)
    # A constant history does not divide by zero.
    const = [(T0 + i * STEP, 1.0) for i in range(360)] + [(T0 + 360 * STEP, 1.0)]
    assert rise_of(const, pivot) == (0.0, None)


def test_down_moves_are_negative(ctx: Context) -> None:
    pts = _series(0.4, 0.05, [(ONSET, 0.5)], 9)
    z, onset = rise_of(pts, pivot_of(ctx.f))
    assert z < -5 and onset is not None


def test_resource_nsigma_features_pick_the_service_whose_own_resource_moved_most(ctx: Context) -> None:
    db, cache = cand("resource", "db", "cpu"), cand("resource", "cache", "cpu")
    mem = cand("resource", "db", "memory")
    assert value("resource_nsigma", db, ctx) > value("resource_nsigma", cache, ctx) > value("resource_nsigma", mem, ctx)
    assert value("resource_nsigma_share", db, ctx) == 1.0
    assert 0.0 < value("resource_nsigma_share", cache, ctx) < 0.5
    assert value("resource_nsigma_top", db, ctx) == 1.0
    assert value("resource_nsigma_top", cache, ctx) == 0.0


def test_service_and_latency_shares(ctx: Context) -> None:
    db, api, web = cand("dependency", "db", "db"), cand("dependency", "api", "api"), cand("dependency", "web", "web")
    assert value("service_nsigma_share", db, ctx) == 1.0
    assert value("service_nsigma_share", api, ctx) < 1.0
    assert value("latency_nsigma_share", api, ctx) == 1.0  # api's latency moved most (it waits on db)
    assert value("latency_nsigma_share", web, ctx) < 1.0
    assert value("latency_nsigma_share", db, ctx) == 0.0  # no latency series on db


def test_callee_moved_more_marks_waiting_callers(ctx: Context) -> None:
    assert value("callee_moved_more", cand("dependency", "api", "api"), ctx) == 1.0
    assert value("callee_moved_more", cand("dependency", "web", "web"), ctx) == 1.0
    assert value("callee_moved_more", cand("resource", "db", "cpu"), ctx) == 0.0


def test_callers_slowed_share(ctx: Context) -> None:
    assert value("callers_slowed_share", cand("resource", "db", "cpu"), ctx) == 1.0  # api slowed
    assert value("callers_slowed_share", cand("dependency", "api", "api"), ctx) == 1.0  # web slowed
    assert value("callers_slowed_share", cand("dependency", "web", "web"), ctx) == 0.0  # nobody calls web


def test_moved_first(ctx: Context) -> None:
    assert value("nsigma_moved_first", cand("resource", "db", "cpu"), ctx) == 1.0
    assert value("nsigma_moved_first", cand("resource", "cache", "cpu"), ctx) == 0.0


def test_metrics_only_says_whether_anything_but_metrics_was_seen(ctx: Context) -> None:
    assert value("metrics_only", cand("resource", "db", "cpu"), ctx) == 1.0
    f = metrics_world()
    f.changes = [{"kind": "deploy", "service": "api", "version": "2.0", "at": "2026-03-02T08:20:00Z"}]
    assert value("metrics_only", cand("resource", "db", "cpu"), Context(f)) == 0.0
    f = metrics_world()
    f.series = {}
    assert value("metrics_only", cand("resource", "db", "cpu"), Context(f)) == 0.0  # nothing seen at all


NSIGMA = (
    "resource_nsigma",
    "resource_nsigma_share",
    "resource_nsigma_top",
    "service_nsigma_share",
    "latency_nsigma_share",
    "callee_moved_more",
    "callers_slowed_share",
    "nsigma_moved_first",
)


def test_nsigma_features_stay_silent_when_more_than_metrics_was_seen() -> None:
    """With a recorded change (or logs, Sentry, traces) the other features carry the case."""
    f = metrics_world()
    f.changes = [{"kind": "deploy", "service": "api", "version": "2.0", "at": "2026-03-02T08:20:00Z"}]
    c = Context(f)
    assert all(value(n, cand("resource", "db", "cpu"), c) == 0.0 for n in NSIGMA)
    assert value("resource_nsigma", cand("resource", "db", "cpu"), Context(metrics_world())) > 0.5


def test_without_series_every_nsigma_feature_is_zero() -> None:
    f = metrics_world()
    f.series = {}
    c = Context(f)
    for name in (
        "resource_nsigma",
        "resource_nsigma_share",
        "resource_nsigma_top",
        "service_nsigma_share",
        "latency_nsigma_share",
        "callee_moved_more",
        "callers_slowed_share",
        "nsigma_moved_first",
    ):
        assert value(name, cand("resource", "db", "cpu"), c) == 0.0, name


def test_metrics_only_findings_are_weighed_by_the_metrics_model(ctx: Context) -> None:
    from firebreak.agent.triage import ranking

    assert ranking.metrics_model() is not None
    quiet = {"metrics_only": 1.0}
    assert ranking.model_for(quiet) is ranking.metrics_model()
    assert ranking.model_for({"metrics_only": 0.0}) is ranking.model()
    # The metrics model reads the N-sigma features; the main one does not know them.
    used = {f for t in ranking.metrics_model().trees for f in t.feature if f}  # type: ignore[union-attr]
    assert used & {"resource_nsigma", "resource_nsigma_share", "service_nsigma_share"}
