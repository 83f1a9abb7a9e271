"""`firebreak approvals list|approve|reject`: the Slack-less path, names checked against the approvers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.server.approvals import request_approval
from firebreak.settings import Settings, get_settings
from tests.fake_slack import open_incident, sample_report

PASSWORD = "correct horse battery"
PW = ["--password-stdin"]


@pytest.fixture
def env(settings: Settings, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[ToolContext]:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FIREBREAK_APPROVERS", "alice, bob")
    get_settings.cache_clear()
    from firebreak.server.users import add_user

    with ctx.db.session() as s:  # the CLI asks each approver to prove their name (here: --password-stdin)
        for name in ("alice", "bob", "mallory"):
            add_user(s, name, PASSWORD, at=ctx.clock.now())
    yield ctx
    get_settings.cache_clear()


def _pending(ctx: ToolContext) -> str:
    rep = sample_report()
    inc = open_incident(ctx, report=rep)
    restart = rep.hypotheses[1].fix
    assert rep.proposed_fix is not None and restart is not None
    return request_approval(ctx, incident_id=inc, investigation_id=None, tool_call_id="c1",
                            fix=rep.proposed_fix, alternatives=[restart]).id


def test_list_and_json(env: ToolContext) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["approvals", "list"])
    assert r.exit_code == 0 and "no pending approvals" in r.output
    aid = _pending(env)
    r = runner.invoke(app, ["approvals", "list"])
    assert r.exit_code == 0 and aid in r.output and "disable_flag(flag=checkout-new-pricing)" in r.output
    assert "alternative 1" in r.output and "rollback" in r.output
    r = runner.invoke(app, ["approvals", "list", "--json"])
    (row,) = json.loads(r.output)
    assert row["id"] == aid and row["status"] == "pending" and row["alternatives"][0]["action"] == "rollback"
    r = runner.invoke(app, ["approvals", "list", "--status", "nope"])
    assert r.exit_code == 2 and "--status" in r.output


def test_refused_then_approved(env: ToolContext) -> None:
    runner = CliRunner()
    aid = _pending(env)
    r = runner.invoke(app, ["approvals", "approve", aid, "--as", "mallory", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 1 and "not allowed" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["approvals", "approve", "apr-unknown", "--as", "alice", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 1 and "No approval apr-unknown" in r.output
    r = runner.invoke(app, ["approvals", "approve", aid, "--as", "alice", "--choice", "1", *PW],
                      input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert "Approved rollback(service=search, to=5.0.3)" in r.output and "by hand" in r.output
    r = runner.invoke(app, ["approvals", "reject", aid, "--as", "bob", "--reason", "late", *PW],
                      input=PASSWORD + "\n")
    assert r.exit_code == 1 and "already approved by alice" in r.output
    r = runner.invoke(app, ["approvals", "list", "--status", "all"])
    assert "manual" in r.output and "by alice" in r.output


def test_reject_with_reason(env: ToolContext) -> None:
    aid = _pending(env)
    r = CliRunner().invoke(app, ["approvals", "reject", aid, "--as", "bob", "--reason", "flag is fine", *PW],
                           input=PASSWORD + "\n")
    assert r.exit_code == 0 and "Rejected" in r.output
    r = CliRunner().invoke(app, ["approvals", "list", "--status", "rejected", "--json"])
    assert json.loads(r.output)[0]["result"] == "rejected: flag is fine"


def test_missing_as_is_a_usage_error(env: ToolContext) -> None:
    r = CliRunner().invoke(app, ["approvals", "approve", "apr-x"])
    assert r.exit_code == 2 and "--as" in r.output


def test_updates_lists_due_reminders(env: ToolContext) -> None:
    _pending(env)
    r = CliRunner().invoke(app, ["approvals", "updates", "--json"])
    assert r.exit_code == 0
    # The CLI runs on the system clock, far after the test's fixed 2026-03-02 incident: it is due.
    (row,) = json.loads(r.output)
    assert row["status"] == "open" and "disable_flag(flag=checkout-new-pricing) is pending" in row["draft"]
    assert row["minutes_since"] > 30
    r = CliRunner().invoke(app, ["approvals", "updates", "--post"])
    assert r.exit_code == 0 and "no reminders posted" in r.output  # Slack is not configured
