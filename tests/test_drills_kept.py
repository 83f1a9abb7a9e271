"""Drills kept: a `drill run` leaves its score, report and transcript in the data dir; history, the
transcripts CLI and the drills page show and link them (issue 19)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.settings import Settings, get_settings
from tests.test_web_pages import sign_in

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


@pytest.fixture
def team(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("USER", "alice")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_a_drill_run_is_kept_and_linked(team: Settings) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["drill", "run", str(TINY)])
    assert res.exit_code == 0, res.output
    m = re.search(r"kept as (drill-\w+)", res.output)
    assert m, res.output
    run_id = m.group(1)

    res = runner.invoke(app, ["drill", "history", "--json"])
    runs = json.loads(res.output)["runs"]
    assert [r["id"] for r in runs] == [run_id] and runs[0]["mode"] == "run" and runs[0]["status"] == "done"
    res = runner.invoke(app, ["drill", "history"])
    assert run_id in res.output and "No drill has run yet" not in res.output

    res = runner.invoke(app, ["transcripts", "show", run_id, "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["id"] == run_id and shown["report"]["hypotheses"] and shown["calls"]
    res = runner.invoke(app, ["transcripts", "list"])
    assert run_id in res.output
    res = runner.invoke(app, ["transcripts", "list", "--json"])
    assert [d["id"] for d in json.loads(res.output)["kept_drills"]] == [run_id]
    res = runner.invoke(app, ["transcripts", "show", "drill-nope"])
    assert res.exit_code == 2 and "drill-nope" in res.output

    from firebreak.server.app import create_app
    from firebreak.server.users import add_user

    ctx = ToolContext(settings=get_settings())
    try:
        with ctx.db.session() as s:
            add_user(s, "alice", "alice-password", at=ctx.clock.now())
        with TestClient(create_app(ctx, start_worker=False)) as c:
            sign_in(c, "alice", "alice-password")
            page = c.get("/drills")
            assert f'href="/drills/{run_id}"' in page.text
            page = c.get(f"/drills/{run_id}")
            assert page.status_code == 200
            assert page.text.count('data-testid="hypothesis"') == len(shown["report"]["hypotheses"])
            assert 'data-testid="step-tool"' in page.text
            assert c.get("/drills/drill-nope").status_code == 404
    finally:
        ctx.close()


def test_demo_keeps_its_run_after_removing_its_world(team: Settings) -> None:
    res = CliRunner().invoke(app, ["demo", "--scenario", str(TINY), "--exit"])
    assert res.exit_code == 0, res.output
    m = re.search(r"kept: +(drill-\w+)", res.stdout)
    assert m, res.stdout
    world = re.search(r"\(data in (.+?)\)", res.stdout)
    assert world and not Path(world.group(1)).exists()
    res = CliRunner().invoke(app, ["transcripts", "show", m.group(1), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["report"]["hypotheses"]
