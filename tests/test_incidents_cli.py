"""`firebreak incidents ...` as a person uses it: clear one-line errors, JSON listings, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.settings import Settings

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    return settings


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_new_update_close_show(env: Settings) -> None:
    code, out, _ = run("incidents", "new", "--title", "Mail delayed", "--service", "mailer", "--severity", "major",
                       "--started", "2026-03-02T08:10:00Z", "--impact", "mail 2 hours late", "--by", "alice")
    assert code == 0 and "INC-" in out
    inc_id = out.split()[1].rstrip(":")
    assert run("incidents", "update", inc_id, "--root-cause", "retry loop in 4.6.2", "--category", "deploy",
               "--countermeasure", "rolled back to 4.6.1", "--worked", "--rollback", "--by", "bob")[0] == 0
    assert run("incidents", "remediation", "add", inc_id, "--what", "cap retries", "--owner", "carol",
               "--due", "2020-01-01")[0] == 0
    assert run("incidents", "close", inc_id, "--by", "bob")[0] == 0
    code, out, _ = run("incidents", "show", inc_id, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["status"] == "resolved" and data["rollback"] is True and data["root_cause_category"] == "deploy"
    assert data["countermeasures"][0]["by"] == "bob" and data["countermeasures"][0]["worked"] is True
    assert data["remediations"][0]["owner"] == "carol"
    assert data["recurrence"]["last_30_days"] == 0
    assert {"created", "updated", "countermeasure", "remediation", "status"} <= {t["kind"] for t in data["timeline"]}
    code, out, _ = run("incidents", "remediation", "list", "--overdue", "--json")
    assert [r["what"] for r in json.loads(out)] == ["cap retries"]
    code, out, _ = run("incidents", "list", "--json", "--status", "resolved")
    assert [i["id"] for i in json.loads(out)] == [inc_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--severity", "huge", "--started", "2026-03-02T08:10:00Z"], "severity: unknown severity 'huge'"),
     (["--severity", "minor", "--started", "2026-03-02T08:10:00"],
      "started: timestamp '2026-03-02T08:10:00' has no timezone")],
)
def test_bad_input_is_one_line_without_traceback(env: Settings, args: list[str], message: str) -> None:
    code, out, err = run("incidents", "new", "--title", "x", "--service", "a", *args)
    assert code == 2
    assert message in err.replace("\n", " ") and "Traceback" not in err + out
    assert json.loads(run("incidents", "list", "--json")[1]) == []  # nothing written


def test_export_import_csv_and_json(env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for title in ("one", "two"):
        run("incidents", "new", "--title", title, "--service", "s", "--severity", "minor",
            "--started", "2026-03-02T08:10:00Z")
    for fmt in ("json", "csv"):
        path = tmp_path / f"log.{fmt}"
        assert run("incidents", "export", "--format", fmt, "--output", str(path))[0] == 0
        monkeypatch.setenv("FIREBREAK_DATA_DIR", str(tmp_path / f"other-{fmt}"))
        code, out, err = run("incidents", "import", str(path))
        assert code == 0, err
        titles = sorted(i["title"] for i in json.loads(run("incidents", "list", "--json")[1]))
        assert titles == ["one", "two"]
        # A second import of the same ids is refused as a whole.
        code, _, err = run("incidents", "import", str(path))
        assert code == 2 and "already exists" in err
        monkeypatch.setenv("FIREBREAK_DATA_DIR", str(env.data_dir))


def test_import_names_file_and_row(env: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "notion.csv"
    bad.write_text("Name,Severity,Started\nok,minor,2026-01-01T00:00:00Z\nbad,minor,March 3 2026\n")
    code, _, err = run("incidents", "import", str(bad))
    assert code == 2 and "notion.csv: row 3: started_at" in err.replace("\n", "")
    assert json.loads(run("incidents", "list", "--json")[1]) == []


def test_stats_json_and_chart(env: Settings, tmp_path: Path) -> None:
    run("incidents", "new", "--title", "x", "--service", "a", "--severity", "critical")
    chart = tmp_path / "weekly.svg"
    code, out, _ = run("incidents", "stats", "--weeks", "4", "--json", "--chart", str(chart))
    weeks = json.loads(out)
    assert code == 0 and len(weeks) == 4 and weeks[-1]["by_severity"]["critical"] == 1
    assert chart.read_text().lstrip().startswith("<?xml") and "<svg" in chart.read_text()


def test_broken_environment_is_one_line(env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = {**__import__("os").environ, "FIREBREAK_UPDATE_MINUTES": "soon", "FIREBREAK_DATA_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "firebreak.cli", "incidents", "list"], env=bad,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "FIREBREAK_UPDATE_MINUTES" in res.stderr


def test_impossible_timelines_are_refused(env: Settings) -> None:
    code, _, err = run("incidents", "new", "--title", "x", "--service", "a", "--severity", "minor",
                       "--started", "2026-03-02T08:10:00Z", "--detected", "2026-03-02T08:00:00Z")
    assert code == 2 and "detected_at" in err
    code, out, _ = run("incidents", "new", "--title", "x", "--service", "a", "--severity", "minor",
                       "--started", "2026-03-02T08:10:00Z", "--detected", "2026-03-02T08:20:00Z")
    inc_id = out.split()[1].rstrip(":")
    code, _, err = run("incidents", "update", inc_id, "--mitigated", "2026-03-02T08:00:00Z")
    assert code == 2 and "mitigated_at" in err
