"""A whole drill through the real intake and investigator; the truth never reaches either."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.simulations.runner import run_drill
from firebreak.state.alerts import Alert
from firebreak.state.changes import Change
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"
SPEC_KEYS = {"scenario", "investigator", "rank", "hit_at_1", "hit_at_3", "mitigation_ok", "severity_ok",
             "alerts_delivered", "incidents_opened", "hypotheses", "proposed_fix", "tool_calls", "wall_seconds"}
SECRETS_OF_THE_DRILL = (b"TRUTH-ROOT-CAUSE-MARKER", b"SECRET-DEBRIEF-MARKER", b"tiny-deploy", b"Tiny drill for tests")


def assert_world_keeps_secrets(world: Path, secrets: Iterable[bytes]) -> ToolContext:
    """No file of the world and no stored agent run holds any of `secrets`; returns a context on the world.

    hnswlib writes its allocated but unused capacity uninitialised, so chroma's HNSW segment files can hold
    stray heap bytes of this very process (which parsed the scenario). They are vectors, never read as
    text; the index's documents and metadata live in chroma.sqlite3, which is checked like every file.
    """
    secrets = list(secrets)
    hnsw = {"data_level0.bin", "link_lists.bin", "length.bin", "header.bin"}
    files = [p for p in world.rglob("*") if p.is_file() and p.name not in hnsw]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} leaked into {path}"
    ctx = ToolContext(settings=Settings(data_dir=world, _env_file=None),  # type: ignore[call-arg]
                      clock=FixedClock(result_clock()))
    with ctx.db.session() as s:
        investigations = list(s.scalars(select(Investigation)))
        assert investigations
        for inv in investigations:
            text = json.dumps([inv.messages, inv.tool_calls, inv.report], default=str).encode()
            assert not any(secret in text for secret in secrets)
    return ctx


def test_drill_end_to_end_and_truth_stays_out(settings: Settings, tmp_path: Path) -> None:
    world = tmp_path / "world"
    world.mkdir()
    result = run_drill(TINY, keep_dir=world)
    out = result.spec_json()
    assert set(out) == SPEC_KEYS
    assert out["scenario"] == "tiny-deploy"
    assert out["alerts_delivered"] == 3 and out["incidents_opened"] >= 1
    assert result.details["refused"] == []
    assert result.details["triaged_at"] == "2026-03-02T08:10:00+00:00"  # when the first incident opened
    # The offline investigator finds the 1.1.0 deploy first and rolls it back; the scorer says so.
    assert out["hypotheses"][0]["suspect"] == {"kind": "deploy", "service": "worker", "ref": "1.1.0"}
    assert (out["rank"], out["hit_at_1"], out["mitigation_ok"], out["severity_ok"]) == (1, True, True, True)
    assert out["proposed_fix"] == {"action": "rollback", "service": "worker", "to": "1.0.0"}
    assert out["wall_seconds"] > 0
    for h in out["hypotheses"]:
        assert set(h) == {"title", "suspect", "confidence"}

    # Nothing the investigator could read holds the truth, the debrief, the scenario's id or title.
    ctx = assert_world_keeps_secrets(world, SECRETS_OF_THE_DRILL)
    with ctx.db.session() as s:
        history = s.get(Incident, "INC-2025-900")
        assert history is not None and history.status == "resolved" and history.source == "history"
        assert history.root_cause == "long migration holding a lock" and history.countermeasures
        changes = list(s.scalars(select(Change).order_by(Change.at)))
        assert [(c.kind, c.version or c.flag) for c in changes] == [("deploy", "1.1.0"), ("flag", "web-banner")]
        assert changes[0].previous_version == "1.0.0" and changes[0].source == "drill"
        alerts = list(s.scalars(select(Alert)))
        assert {a.source for a in alerts} == {"alertmanager", "sentry", "grafana"}
        assert any(a.source == "alertmanager" and a.status == "resolved" for a in alerts)
    flags = json.loads(Path(ctx.settings.resolved_flags_file).read_text())["flags"]
    assert flags["web-banner"]["defaultVariant"] == "on"
    ctx.close()


RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded" / "shop-checkout-cpu"
# truth.root_cause, truth.fault and source of the recorded fixture, and its onset in every form a store could use
SECRETS_OF_THE_RECORDING = (b"TRUTH-ROOT-CAUSE-MARKER", b"cpu-hog-fault-marker", b"SOURCE-MARKER",
                            b"10:19:47", b"1712656787")


def test_recorded_truth_and_onset_stay_out(settings: Settings, tmp_path: Path) -> None:
    from firebreak.simulations.recorded.run import run_recorded

    world = tmp_path / "world"
    world.mkdir()
    result = run_recorded(RECORDED, keep_dir=world)
    assert result.details["triaged_at"] and result.details["triage_error"] is None
    assert_world_keeps_secrets(world, SECRETS_OF_THE_RECORDING).close()


def result_clock():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_cli_run_json_and_readable(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # other drills may run on this machine meanwhile
    before = set(Path(tempfile.gettempdir()).glob("firebreak-drill-*"))
    runner = CliRunner()
    res = runner.invoke(app, ["drill", "run", str(TINY), "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(obj) == SPEC_KEYS
    res = runner.invoke(app, ["drill", "run", str(TINY)])
    assert res.exit_code == 0 and "Drill tiny-deploy" in res.stdout and "rank" in res.stdout
    assert set(Path(tempfile.gettempdir()).glob("firebreak-drill-*")) == before  # temp worlds removed


def test_cli_bench_aggregate_and_bad_files(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "nested").mkdir(parents=True)
    shutil.copy(TINY, lib / "a.yaml")
    (lib / "nested" / "b.yaml").write_text(TINY.read_text().replace("id: tiny-deploy", "id: tiny-two"))
    runner = CliRunner()
    res = runner.invoke(app, ["drill", "bench", str(lib), "--json"])
    assert res.exit_code == 0, res.output
    agg = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(agg) == {"scenarios", "hit_at_1", "hit_at_3", "mitigation_ok", "median_wall_seconds", "baselines",
                        "results"}
    assert agg["scenarios"] == 2 and [r["scenario"] for r in agg["results"]] == ["tiny-deploy", "tiny-two"]
    assert set(agg["baselines"]) == {"most_recent_change", "alerting_service"}
    assert all(set(r) == SPEC_KEYS | {"baselines"} for r in agg["results"])
    # Both are the tiny drill, solved: the aggregate is the share of drills that hit, here all of them.
    assert [r["rank"] for r in agg["results"]] == [1, 1]
    for k in ("hit_at_1", "hit_at_3", "mitigation_ok"):
        assert agg[k] == sum(r[k] for r in agg["results"]) / 2 == 1.0, k

    bad = lib / "c.yaml"
    bad.write_text(TINY.read_text().replace("severity: critical", "sevrity: critical"))
    res = runner.invoke(app, ["drill", "bench", str(lib), "--json"])
    assert res.exit_code == 2
    assert f"{bad}: timeline[4].alert.sevrity: unknown field" in res.output
    res = runner.invoke(app, ["drill", "run", str(bad)])
    assert res.exit_code == 2 and "timeline[4].alert.sevrity: unknown field" in res.output
    assert "Traceback" not in res.output

