"""`firebreak demo --exit`: serves the page, replays a drill over HTTP, prints where to look, and ends."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.settings import Settings

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


def test_demo_exits_and_prints_where_to_look(settings: Settings, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "--scenario", str(TINY), "--exit", "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert re.search(r"incident: +http://127\.0\.0\.1:\d+/incidents/INC-\d{4}-\d{3}", res.stdout)
    assert re.search(r"transcript: +http://127\.0\.0\.1:\d+/transcripts/\w+", res.stdout)
    assert re.search(r"API token: +\S{20,}", res.stdout)
    assert "ALERT [critical] alertmanager: WorkerJobsStalled" in res.stdout
    assert "refused" not in res.stdout
