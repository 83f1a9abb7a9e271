"""World generation: deterministic by seed, volumes follow rates, shapes follow the timeline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from firebreak.simulations.generator import build_world
from firebreak.simulations.scenario import load_scenario, parse_scenario
from firebreak.simulations.values import column_for, fill, split_template, stream_rng

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


def test_same_seed_same_world_other_seed_other_world() -> None:
    sc = load_scenario(TINY)
    a, b = build_world(sc), build_world(sc)
    assert [blk.messages for blk in a.logs] == [blk.messages for blk in b.logs]
    assert all((x.ts_us == y.ts_us).all() for x, y in zip(a.logs, b.logs, strict=True))
    assert all((x.values == y.values).all() for x, y in zip(a.series, b.series, strict=True))
    c = build_world(sc.model_copy(update={"seed": sc.seed + 1}))
    assert [blk.messages for blk in a.logs] != [blk.messages for blk in c.logs]


def test_volumes_follow_rates_and_windows() -> None:
    sc = load_scenario(TINY)
    world = build_world(sc)
    base = next(b for b in world.logs if b.service == "worker" and "ERROR" not in b.levels)
    assert 1200 * 0.85 < len(base.messages) < 1200 * 1.15  # 40/m for 30m
    burst = next(b for b in world.logs if "ERROR" in b.levels)
    start_us = round((sc.start + timedelta(minutes=6)).timestamp() * 1e6)
    assert burst.ts_us.min() >= start_us and (np.diff(burst.ts_us) >= 0).all()
    assert 720 * 0.8 < len(burst.messages) < 720 * 1.2  # 30/m from 6m to the end
    assert all(m.startswith("job job-") and "crashed" in m for m in burst.messages)
    weights = [m for m in base.messages if m.startswith("slow db")]
    assert 0.08 < len(weights) / len(base.messages) < 0.26  # weight 1 of 6


def test_metric_shapes() -> None:
    data = {
        "version": 1, "id": "shapes", "title": "t", "start": "2026-01-01T00:00:00Z", "duration": "60m",
        "services": [{"name": "s", "metrics": [
            {"name": "step", "every": "1m", "value": 10}, {"name": "ramp", "every": "1m", "value": 0},
            {"name": "spike", "every": "1m", "value": 5}, {"name": "drop", "every": "1m", "value": 100},
            {"name": "back", "every": "1m", "value": 1}]},
            {"name": "other"}],  # declared without metrics: its series below comes from the timeline alone
        "timeline": [
            {"at": "10m", "metric": {"service": "s", "name": "step", "shape": "step", "to": 50}},
            {"at": "10m", "metric": {"service": "s", "name": "ramp", "shape": "ramp", "to": 100, "over": "10m"}},
            {"at": "10m", "metric": {"service": "s", "name": "spike", "shape": "spike", "to": 80, "for": "5m"}},
            {"at": "10m", "metric": {"service": "s", "name": "drop", "shape": "drop", "to": 0}},
            {"at": "10m", "metric": {"service": "s", "name": "back", "shape": "step", "to": 9, "for": "5m",
                                     "then": "recover"}},
            {"at": "20m", "metric": {"service": "other", "name": "new", "shape": "step", "to": 3}},
        ],
        "truth": {"culprit": {"kind": "resource", "ref": "cpu"}, "root_cause": "x",
                  "mitigations": [{"action": "restart", "service": "s"}]},
    }
    series = {s.name: s.values for s in build_world(parse_scenario(data)).series}
    assert series["step"][9] == 10 and series["step"][10] == 50 and series["step"][-1] == 50
    assert series["ramp"][10] == 0 and series["ramp"][15] == pytest.approx(50) and series["ramp"][25] == 100
    assert series["spike"][12] == 80 and series["spike"][15] == 5
    assert series["drop"][9] == 100 and series["drop"][11] == 0
    assert series["back"][12] == 9 and series["back"][16] == 1
    # Undeclared: a series anyway, every 15 s from 0, with a little noise.
    assert series["new"][79] == 0 and series["new"][84] == pytest.approx(3, rel=0.3)


def test_steps_changes_and_alerts_in_order() -> None:
    sc = load_scenario(TINY)
    steps = build_world(sc).steps
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    deploy = next(s.change for s in steps if s.change and s.change.kind == "deploy")
    assert (deploy.previous_version, deploy.version, deploy.note) == ("1.0.0", "1.1.0", "loop rewrite")
    assert deploy.payload()["kind"] == "deploy" and deploy.payload()["at"] == "2026-03-02T08:05:00Z"
    notices = [s.notice for s in steps if s.notice]
    assert [(n.alert.source, n.status) for n in notices] == [
        ("alertmanager", "firing"), ("sentry", "firing"), ("grafana", "firing"), ("alertmanager", "resolved")]
    assert notices[-1].started_at == sc.start + timedelta(minutes=10)


def test_every_named_placeholder_generates() -> None:
    from firebreak.simulations.values import _BY_NAME

    for name in list(_BY_NAME) + ["order_id", "x_ms", "peer_ip", "unknown"]:
        values = column_for(name)(stream_rng(2, name), 5)
        assert len(values) == 5 and all(isinstance(v, str) and v for v in values), name
    assert all(len(v) == 32 for v in column_for("trace_id")(stream_rng(1, "t"), 10))


def test_placeholders_by_name() -> None:
    rng = stream_rng(1, "x")
    assert split_template("a {x} b {y}") == (["a ", " b ", ""], ["x", "y"])
    assert all(v.isdigit() for v in column_for("ms")(rng, 50))
    assert all(v.startswith("10.") and v.count(".") == 3 for v in column_for("ip")(rng, 20))
    assert all(v.startswith("job-") for v in column_for("job")(rng, 20))
    assert all(len(v) == 8 for v in column_for("whatever_this_is")(rng, 20))
    assert fill(stream_rng(5, "t"), "n={n}", 3) == fill(stream_rng(5, "t"), "n={n}", 3)
    assert fill(rng, "{not a placeholder}", 2) == ["{not a placeholder}"] * 2
