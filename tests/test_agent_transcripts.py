"""Transcripts: listing, one run in full, reviews, the JSONL evaluation export, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import firebreak.agent.agent_tools as tools_mod
from firebreak.agent.cli import app
from firebreak.agent.investigator import investigate, queue_investigation
from firebreak.agent.transcripts import (
    TranscriptError,
    export_reviewed,
    get_transcript,
    list_transcripts,
    review_transcript,
)
from firebreak.context import ToolContext
from firebreak.memory.incident_log import open_incident
from tests.test_agent_world import World, mailer_like

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def run_id(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> str:
    ctx.clock.set(START + timedelta(minutes=45))  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        incident_id = open_incident(
            s, title="Mailer memory high", services=["mailer"], severity="major", at=ctx.clock.now(), actor="test"
        ).id
    w: World = mailer_like(START, incident_id)
    specs = w.specs()
    monkeypatch.setattr(tools_mod, "load_tools", lambda: specs)
    monkeypatch.setattr(tools_mod, "call_tool", lambda c, name, args: w.answer(name, dict(args)))
    inv_id = queue_investigation(ctx, incident_id)
    investigate(ctx, inv_id)
    return inv_id


def test_list_show_review_export(ctx: ToolContext, run_id: str) -> None:
    rows = list_transcripts(ctx)
    assert [r.id for r in rows] == [run_id]
    assert rows[0].top_suspect == "deploy:4.6.2 (mailer)"
    assert rows[0].proposed_fix == "rollback(service=mailer, to=4.6.1)"
    assert list_transcripts(ctx, status="done") == []
    t = get_transcript(ctx, run_id)
    assert t.calls[0].name == "incident_details" and t.calls[0].duration_ms is not None
    assert t.report and t.messages and t.usage["requests"] > 0
    assert [a.status for a in t.approvals if a.action == "rollback"] == ["pending"]
    assert list(export_reviewed(ctx)) == []
    review_transcript(ctx, run_id, verdict="right", reviewer="carol", note="good call")
    rows_out = list(export_reviewed(ctx))
    assert len(rows_out) == 1
    assert rows_out[0]["label"]["verdict"] == "right" and rows_out[0]["report"]["hypotheses"]
    with pytest.raises(TranscriptError, match="verdict"):
        review_transcript(ctx, run_id, verdict="meh", reviewer="carol")  # type: ignore[arg-type]
    with pytest.raises(TranscriptError, match="id"):
        get_transcript(ctx, "inv-nope")


@pytest.fixture
def cli(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    monkeypatch.setattr("firebreak.agent.cli._ctx", lambda: ctx)
    runner = CliRunner(env={"COLUMNS": "250"})

    def invoke(*args: str) -> tuple[int, str]:
        res = runner.invoke(app, list(args))
        return res.exit_code, res.output

    return invoke


def test_cli(cli: Callable[..., tuple[int, str]], run_id: str, tmp_path: Path) -> None:
    code, out = cli("list", "--json")
    assert code == 0 and json.loads(out)["transcripts"][0]["id"] == run_id
    code, out = cli("list")
    assert code == 0 and run_id in out
    code, out = cli("show", run_id, "--json")
    assert code == 0 and json.loads(out)["calls"][0]["name"] == "incident_details"
    code, out = cli("show", run_id)
    assert code == 0 and "incident_details" in out and "Report" in out
    code, out = cli("show", "inv-nope")
    assert code == 2 and "no transcript" in out and "Traceback" not in out
    code, out = cli("review", run_id, "--verdict", "maybe", "--by", "carol")
    assert code == 2 and "verdict" in out
    code, _ = cli("review", run_id, "--verdict", "wrong", "--by", "carol", "--note", "missed it")
    assert code == 0
    dest = tmp_path / "eval.jsonl"
    code, _ = cli("export", "--output", str(dest))
    assert code == 0
    lines = dest.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["label"]["verdict"] == "wrong"
    code, out = cli("list", "--limit", "0")
    assert code == 2 and "limit" in out
