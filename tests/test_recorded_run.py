"""A recorded incident end to end: replay into the real stores, alerts through the real intake, the
investigator at `triage_at`, the drill's JSON shape; the CLI's run and bench on folders."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.simulations.recorded.model import RecordedError
from firebreak.simulations.recorded.run import run_recorded
from firebreak.state.alerts import Alert
from firebreak.state.changes import Change

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "fixtures" / "recorded"
SHOP = RECORDED / "shop-checkout-cpu"
TINY = HERE / "drill_data" / "tiny.yaml"
TRIAGE = datetime(2024, 4, 9, 10, 25, tzinfo=UTC)
SPEC_KEYS = {"scenario", "investigator", "rank", "hit_at_1", "hit_at_3", "mitigation_ok", "severity_ok",
             "alerts_delivered", "incidents_opened", "hypotheses", "proposed_fix", "tool_calls", "wall_seconds"}


def test_replay_intake_and_triage(settings: Settings, tmp_path: Path) -> None:
    from firebreak.tools.log_store import get_log_store
    from firebreak.tools.metric_store import get_metric_store
    from firebreak.tools.trace_store import trace_store

    world = tmp_path / "world"
    world.mkdir()
    result = run_recorded(SHOP, keep_dir=world)
    out = result.spec_json()
    assert set(out) == SPEC_KEYS and out["scenario"] == "shop-checkout-cpu"
    assert out["alerts_delivered"] == 1 and out["incidents_opened"] == 1 and result.details["refused"] == []
    assert result.details["triaged_at"] == TRIAGE.isoformat() and result.details["triage_error"] is None
    assert result.details["metric_points"] == 306 and result.details["spans"] == 75
    assert result.details["changes"] == 2 and result.details["dropped_after_triage"] > 0

    ctx = ToolContext(settings=Settings(data_dir=world, _env_file=None),  # type: ignore[call-arg]
                      clock=FixedClock(TRIAGE))
    try:
        logs = get_log_store(ctx)
        first, last = logs.time_bounds() or (None, None)
        assert first == datetime(2024, 4, 9, 10, 0, tzinfo=UTC) and last is not None and last <= TRIAGE
        assert logs.search(since=first, until=TRIAGE + timedelta(hours=1), text="AFTER-TRIAGE-MARKER")[1] == 0
        metrics = get_metric_store(ctx)
        assert set(metrics.services()) == {"frontend", "checkout", "payments-db"}
        assert set(metrics.names("checkout")) == {"cpu", "latency_p99"}
        spans = trace_store(ctx)
        assert spans.count() == 75
        bounds = spans.time_bounds()
        assert bounds is not None and bounds[1] <= TRIAGE
        with ctx.db.session() as s:
            changes = [(c.kind, c.service, c.at) for c in s.scalars(select(Change).order_by(Change.at))]
            assert changes == [("config", "checkout", datetime(2024, 4, 9, 10, 5, tzinfo=UTC)),
                               ("deploy", "frontend", datetime(2024, 4, 9, 10, 18, tzinfo=UTC))]
            alerts = list(s.scalars(select(Alert)))
            assert [(a.source, a.service, a.status) for a in alerts] == [("alertmanager", "frontend", "firing")]
            assert alerts[0].labels.get("team") == "web" and alerts[0].labels.get("alertname") == "FrontendLatencyHigh"
            assert alerts[0].started_at == datetime(2024, 4, 9, 10, 22, tzinfo=UTC)
    finally:
        ctx.close()


def test_bad_row_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "case"
    shutil.copytree(SHOP, folder)
    changes = folder / "changes.jsonl"
    changes.write_text(changes.read_text().replace('"kind": "deploy"', '"kind": "redeploy"', 1))
    world = tmp_path / "world"
    world.mkdir()
    with pytest.raises(RecordedError, match=r"changes.jsonl: line 2, field kind"):
        run_recorded(folder, keep_dir=world)
    assert list(world.iterdir()) == []


def test_cli_run_folder_json_and_kept(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from firebreak.settings import get_settings
    from firebreak.state.drills import DrillRun

    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["drill", "run", str(SHOP), "--json"])
        assert res.exit_code == 0, res.output
        obj = json.loads(res.stdout.strip().splitlines()[-1])
        assert set(obj) == SPEC_KEYS and obj["scenario"] == "shop-checkout-cpu" and obj["alerts_delivered"] == 1
        res = CliRunner().invoke(app, ["drill", "run", str(SHOP)])
        assert res.exit_code == 0 and "Drill shop-checkout-cpu" in res.stdout
        m = re.search(r"kept as (drill-\w+)", res.stdout)
        assert m, res.stdout
        ctx = ToolContext(settings=get_settings())
        try:
            with ctx.db.session() as s:
                run = s.get(DrillRun, m.group(1))
                assert run is not None and run.scenario_id == "shop-checkout-cpu" and run.result.get("transcript")
                kept = json.dumps(run.result)
        finally:
            ctx.close()
        for secret in ("TRUTH-ROOT-CAUSE-MARKER", "cpu-hog-fault-marker", "SOURCE-MARKER", "10:19:47"):
            assert secret not in kept
    finally:
        get_settings.cache_clear()


def test_cli_bench_mixes_scenarios_and_recorded_folders(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(RECORDED, lib / "recorded")
    shutil.copy(TINY, lib / "tiny.yaml")
    (lib / "recorded" / "shop-checkout-cpu" / "notes.yaml").write_text("not: a scenario\n")  # ignored in a folder
    res = CliRunner().invoke(app, ["drill", "bench", str(lib), "--json"])
    assert res.exit_code == 0, res.output
    agg = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"scenarios", "hit_at_1", "hit_at_3", "mitigation_ok", "median_wall_seconds", "results", "ac_at_1",
            "ac_at_3", "avg_at_5", "by_fault", "baselines"} == set(agg)
    assert agg["scenarios"] == 3
    assert sorted(r["scenario"] for r in agg["results"]) == ["api-bad-deploy", "shop-checkout-cpu", "tiny-deploy"]
    by_id = {r["scenario"]: r for r in agg["results"]}
    assert by_id["shop-checkout-cpu"]["fault"] == "cpu-hog-fault-marker" and "fault" not in by_id["tiny-deploy"]
    assert set(agg["by_fault"]) == {"cpu-hog-fault-marker", "bad-deploy"}
    assert agg["by_fault"]["bad-deploy"]["cases"] == 1
    ranks = [by_id[i]["rank"] for i in ("api-bad-deploy", "shop-checkout-cpu")]
    assert agg["ac_at_1"] == sum(1 for r in ranks if r == 1) / 2  # over the recorded ones only
    # the most recent change before triage in the checkout case is the frontend deploy; the config change
    # on checkout is second, so this baseline finds the culprit service at rank 2
    assert by_id["shop-checkout-cpu"]["baselines"]["most_recent_change"]["rank"] == 2
    assert by_id["api-bad-deploy"]["baselines"]["most_recent_change"]["mitigation_ok"] is True
    assert agg["baselines"]["most_recent_change"]["ac_at_3"] == 1.0
    assert set(agg["baselines"]["alerting_service"]) == {"hit_at_1", "hit_at_3", "mitigation_ok", "ac_at_1",
                                                         "ac_at_3", "avg_at_5"}


def test_cli_bad_folder_is_one_line(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "lib" / "case"
    shutil.copytree(SHOP, folder)
    (folder / "incident.yaml").write_text((folder / "incident.yaml").read_text().replace("window:", "windw:"))
    for args in (["drill", "run", str(folder)], ["drill", "bench", str(tmp_path / "lib"), "--json"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2
        assert f"{folder}/incident.yaml: windw: unknown field" in res.output
        assert "Traceback" not in res.output
    (folder / "incident.yaml").write_text((folder / "incident.yaml").read_text().replace("windw:", "window:"))
    changes = folder / "changes.jsonl"
    changes.write_text(changes.read_text().replace('"kind": "config"', '"kind": "weather"'))
    res = CliRunner().invoke(app, ["drill", "bench", str(tmp_path / "lib"), "--json"])
    assert res.exit_code == 2 and f"{changes}: line 1, field kind: " in res.output
    res = CliRunner().invoke(app, ["drill", "run", str(tmp_path)])
    assert res.exit_code == 2 and f"{tmp_path}: no incident.yaml in this folder" in res.output


def test_spans_written_by_a_forked_writer_match(settings: Settings, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from firebreak.simulations.recorded import replay as replay_mod
    from firebreak.simulations.recorded.model import load_incident
    from firebreak.simulations.recorded.readers import read_folder
    from firebreak.simulations.recorded.run import make_recorded_env
    from firebreak.tools.trace_store import trace_store

    inc = load_incident(SHOP)
    tel = read_folder(SHOP, inc.triage_at)
    seen = {}
    for parallel in (False, True):
        monkeypatch.setattr(replay_mod, "PARALLEL_SPANS", 1 if parallel else 10**9)
        env = make_recorded_env(inc, tmp_path / f"w{parallel}")
        try:
            counts = replay_mod.replay(env.ctx, tel)
            store = trace_store(env.ctx)
            since, until = inc.window.since, inc.triage_at
            seen[parallel] = (counts["spans"], store.count(), store.span_totals(since, until),
                              store.edge_totals(since, until))
        finally:
            env.close()
    assert seen[True] == seen[False] and seen[True][0] == 75
    assert ("checkout", "payments-db") in seen[True][3]
