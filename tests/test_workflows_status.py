"""`firebreak status` and `/healthz?detail=1`: what waits, for how long, behind the API token."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from firebreak.agent.actions import ProposedFix
from firebreak.agent.investigator import queue_investigation
from firebreak.cli import app as cli
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.server.app import create_app
from firebreak.workflows.approvals import request_approval
from tests.fake_slack import open_incident

FIX = ProposedFix(action="restart", parameters={"service": "checkout"})


def test_healthz_detail_needs_the_token_and_counts_what_waits(ctx: ToolContext, clock: FixedClock) -> None:
    ctx.settings.api_token = SecretStr("t0ken")
    inc = open_incident(ctx)
    queue_investigation(ctx, inc)
    request_approval(ctx, incident_id=inc, investigation_id=None, tool_call_id="c1", fix=FIX)
    clock.advance(timedelta(seconds=90))
    with TestClient(create_app(ctx, start_worker=False)) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/healthz?detail=1").status_code == 401
        body = c.get("/healthz?detail=1", headers={"Authorization": "Bearer t0ken"}).json()
    engine = body["engine"]
    assert engine["waiting_for_approval"] == 1 and engine["queue_depth"] == 1
    assert engine["oldest_wait_seconds"] == 90.0
    assert engine["investigations"] == {"queued": 1}


def test_status_command(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(ctx.settings.data_dir))
    inc = open_incident(ctx)
    queue_investigation(ctx, inc)
    out = CliRunner().invoke(cli, ["status", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["queue_depth"] == 1 and data["replicas"] == []
    text = CliRunner().invoke(cli, ["status"]).output
    assert "queue depth: 1" in text and "replicas alive: 0" in text
