"""The generated tools CLI, through the real `firebreak` root app and Typer's CliRunner."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

import firebreak.tools.cli as tools_cli
from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.state.changes import Change
from firebreak.tools.changes import ChangeIn, record_change
from firebreak.tools.registry import REGISTRY, load_tools, tool

runner = CliRunner()


@pytest.fixture
def cli_ctx(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path) -> ToolContext:
    monkeypatch.setattr(tools_cli, "CONTEXT_FACTORY", lambda: ctx)
    dest = ctx.settings.resolved_flags_file
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fixtures_dir / "flagd-example_flags.flagd.json", dest)
    with ctx.db.session() as s:
        for minutes, version in ((-30, "4.6.1"), (-5, "4.6.2")):
            record_change(s, ChangeIn(kind="deploy", service="mailer", version=version,
                                      at=ctx.clock.now() + timedelta(minutes=minutes), author="ci"), source="drill")
    return ctx


def test_every_registered_tool_has_a_command() -> None:
    load_tools()
    mounted = {"logs": tools_cli.logs_app, "metrics": tools_cli.metrics_app, "changes": tools_cli.changes_app,
               "flags": tools_cli.flags_app, "sentry": tools_cli.sentry_app}
    for family, sub in mounted.items():
        names = {c.name for c in sub.registered_commands}
        expected = {s.name.replace("_", "-") for s in REGISTRY.values() if s.family == family}
        assert expected <= names, family
    assert not {"disable", "enable", "set-variant", "disable-flag", "enable-flag", "set-flag-variant"} & {
        c.name for c in tools_cli.flags_app.registered_commands}


def test_json_output(cli_ctx: ToolContext) -> None:
    res = runner.invoke(app, ["flags", "list-flags", "--search", "Bool", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["flags"][0]["key"] == "myBoolFlag" and data["total"] == 1


def test_positional_required_and_key_value_context(cli_ctx: ToolContext) -> None:
    res = runner.invoke(app, ["flags", "evaluate-flag", "isColorYellow", "--context", "color=yellow", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["value"] is True
    res = runner.invoke(app, ["flags", "evaluate-flag", "isColorYellow", "--context", '{"color": "red"}', "--json"])
    assert json.loads(res.stdout)["value"] is False


def test_human_table(cli_ctx: ToolContext) -> None:
    res = runner.invoke(app, ["changes", "recent-changes", "--service", "mailer", "--since", "-2h"])
    assert res.exit_code == 0, res.output
    assert "4.6.2" in res.stdout and "4.6.1" in res.stdout and "changes" in res.stdout
    assert res.stdout.index("4.6.2") < res.stdout.index("4.6.1")  # nearest to now first
    assert "total" in res.stdout and "truncated" in res.stdout


def test_tool_error_is_one_line_on_stderr(cli_ctx: ToolContext) -> None:
    res = runner.invoke(app, ["flags", "evaluate-flag", "ghost"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: unknown flag 'ghost'") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["changes", "recent-changes", "--since", "2026-03-02T09:00:00Z",
                              "--until", "2026-03-02T08:00:00Z"])
    assert res.exit_code == 1 and "before until" in res.stderr
    res = runner.invoke(app, ["changes", "recent-changes", "--limit", "0"])
    assert res.exit_code == 1 and "limit" in res.stderr
    res = runner.invoke(app, ["changes", "recent-changes", "--since", "yesterday-ish"])
    assert res.exit_code == 1 and "since" in res.stderr and res.stderr.count("\n") == 1
    res = runner.invoke(app, ["flags", "evaluate-flag", "x", "--context", "{bad json"])
    assert res.exit_code == 1 and "--context: not valid JSON" in res.stderr


def test_changes_record(cli_ctx: ToolContext) -> None:
    res = runner.invoke(app, ["changes", "record", "--kind", "deploy", "--service", "billing", "--version", "2.1.0",
                              "--previous-version", "2.0.9", "--note", "hotfix", "--author", "bob"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("recorded change #") and "billing" in res.stdout
    res = runner.invoke(app, ["changes", "record", "--kind", "config", "--service", "api", "--key", "db.pool_size",
                              "--from", "50", "--to", "5", "--at", "-10m", "--json"])
    data = json.loads(res.stdout)
    assert data["from_value"] == 50 and data["to_value"] == 5
    assert data["at"].startswith((cli_ctx.clock.now() - timedelta(minutes=10)).isoformat()[:16])
    with cli_ctx.db.session() as s:
        rows = s.query(Change).filter(Change.source == "cli").all()
        assert {r.service for r in rows} == {"billing", "api"}
    res = runner.invoke(app, ["changes", "record", "--kind", "deploy", "--service", "billing"])
    assert res.exit_code == 1 and res.stderr == "error: a deploy change needs version\n"
    res = runner.invoke(app, ["changes", "record", "--kind", "flag", "--flag", "x", "--state", "paused"])
    assert res.exit_code == 1 and res.stderr.startswith("error: state: ")


class _EchoIn(BaseModel):
    word: str = Field(description="What to echo.")
    times: int = Field(default=1, ge=1, le=5)
    loud: bool = False
    at: datetime | None = None
    tags: list[str] = Field(default_factory=list)


class _EchoOut(BaseModel):
    words: list[str]
    at: datetime | None
    truncated: bool = False


def test_a_new_tool_needs_no_cli_code(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    @tool("clitest")
    def echo_words(ctx: ToolContext, args: _EchoIn) -> _EchoOut:
        """Echo a word (test tool)."""
        word = args.word.upper() if args.loud else args.word
        return _EchoOut(words=[word] * args.times + args.tags, at=args.at)

    monkeypatch.setattr(tools_cli, "CONTEXT_FACTORY", lambda: ctx)
    try:
        sub = tools_cli.make_family_app("clitest")
        root = typer.Typer()
        root.add_typer(sub, name="clitest")
        res = runner.invoke(root, ["clitest", "echo-words", "hi", "--times", "2", "--loud", "--tags", "a",
                                   "--tags", "b", "--at", "-1h", "--json"])
        assert res.exit_code == 0, res.output
        out: dict[str, Any] = json.loads(res.stdout)
        assert out["words"] == ["HI", "HI", "a", "b"]
        assert out["at"].startswith((ctx.clock.now() - timedelta(hours=1)).astimezone(UTC).isoformat()[:16])
        res = runner.invoke(root, ["clitest", "echo-words", "hi", "--times", "9"])
        assert res.exit_code == 1 and "times" in res.stderr
    finally:
        REGISTRY.pop("echo_words", None)
