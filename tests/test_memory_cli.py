"""`firebreak memory ...` at a terminal: import, search, reindex; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.settings import Settings
from tests.test_memory_index import add_incident

DATA = Path(__file__).parent / "data" / "memory"
runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    return settings


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["memory", *args])
    return res.exit_code, res.stdout, res.stderr


def test_import_search_reindex(env: Settings, ctx: ToolContext) -> None:
    add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                 root_cause="unbounded template cache in 4.5.0", countermeasure="rolled back to 4.4.9",
                 incident_id="INC-2025-031")
    code, out, _ = run("import", str(DATA / "runbooks"))
    assert code == 0 and out.startswith("imported 5 runbook/FAQ sections from")
    code, out, _ = run("import", str(DATA / "slack"), "--json")
    assert code == 0 and json.loads(out)["by_kind"] == {"slack": 4}
    code, out, _ = run("search", "mailer OOMKilled after deploy")
    assert code == 0 and "INC-2025-031" in out and "countermeasures: rolled back to 4.4.9" in out
    code, out, _ = run("search", "MemoryError", "--docs", "--k", "2", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 2 and hits[0]["kind"] == "runbook"
    # one search covers every kind by default, each hit labelled; --kind narrows it
    code, out, _ = run("search", "mailer out of memory", "--k", "10", "--json")
    kinds = {h["kind"] for h in json.loads(out)["hits"]}
    assert code == 0 and {"incident", "runbook"} <= kinds
    code, out, _ = run("search", "mailer out of memory", "--k", "10")
    assert " incident  INC-2025-031" in out and " runbook  " in out
    code, out, _ = run("search", "mailer out of memory", "--kind", "slack", "--k", "10", "--json")
    assert code == 0 and {h["kind"] for h in json.loads(out)["hits"]} == {"slack"}
    code, out, _ = run("search", "mailer", "--kind", "incident", "--since", "2025-01-01T00:00:00Z", "--json")
    assert [h["id"] for h in json.loads(out)["hits"]] == ["INC-2025-031"]
    code, out, _ = run("reindex", "--json")
    assert code == 0 and json.loads(out)["incidents"] == 1 and json.loads(out)["documents"] == 9
    code, out, _ = run("reindex")
    assert code == 0 and out.startswith("reindexed 1 incidents and 9 documents")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "x", "--since", "last fortnight"), "--since: not a time: 'last fortnight'; use ISO 8601"),
        (("search", "x", "--since", "2026-01-01T00:00:00"), "has no timezone"),
        (("search", "x", "--kind", "wiki"), "--kind: unknown value 'wiki'"),
        (("search", "x", "--mode", "fuzzy"), "--mode: unknown value"),
        (("search", "  "), "text: must not be empty"),
        (("import", "/nonexistent/path"), "no such file or directory"),
    ],
)
def test_bad_input_is_one_line(env: Settings, args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_search_on_empty_memory(env: Settings) -> None:
    code, out, _ = run("search", "anything")
    assert code == 0 and out.startswith("no matches (the memory holds 0 incidents") and "memory import" in out


def test_since_narrows_incidents_but_keeps_runbooks(env: Settings, ctx: ToolContext) -> None:
    add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                 root_cause="unbounded template cache", countermeasure="rolled back", incident_id="INC-2025-031")
    run("import", str(DATA / "runbooks"))
    code, out, _ = run("search", "mailer out of memory", "--since", "2099-01-01T00:00:00Z", "--k", "10", "--json")
    kinds = {h["kind"] for h in json.loads(out)["hits"]}
    assert code == 0 and kinds == {"runbook"}
    code, out, _ = run("search", "mailer", "--kind", "slack", "--service", "nothing-here")
    assert code == 0 and out.startswith("no matches with these filters")
