"""CLI help prints tool descriptions as written: Rich markup must not eat `[ts, value]`."""

from __future__ import annotations

from typer.testing import CliRunner

from firebreak.cli import app


def test_help_keeps_square_brackets() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["metrics", "query-metric", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "as [ts, value] points" in out.output
    listing = runner.invoke(app, ["metrics", "--help"], env={"COLUMNS": "200"})
    assert "[ts, value]" in listing.output
    limit = runner.invoke(app, ["metrics", "metric-anomalies", "--help"], env={"COLUMNS": "200"})
    assert "[default: 20]" in limit.output
