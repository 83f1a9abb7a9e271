"""`firebreak approvals resolve ID done|retry`: an approver settles an action whose outcome is unknown."""

from __future__ import annotations

from sqlalchemy import update
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.statuses import ApprovalStatus
from firebreak.tools.flag_store import get_flag_store
from tests.test_approvals_cli import PASSWORD, PW, _pending, env  # noqa: F401 - the shared CLI fixture


def _unknown(ctx: ToolContext) -> str:
    aid = _pending(ctx)
    with ctx.db.session() as s:
        s.execute(update(Approval).where(Approval.id == aid).values(
            status=ApprovalStatus.OUTCOME_UNKNOWN, decision="approve", decided_by="alice",
            result="the process running it stopped before reporting; check by hand"))
    return aid


def _status(ctx: ToolContext, aid: str) -> str:
    with ctx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None
        return a.status


def test_listed_then_marked_done_by_an_approver_only(env: ToolContext) -> None:  # noqa: F811
    runner = CliRunner()
    aid = _unknown(env)
    r = runner.invoke(app, ["approvals", "list", "--status", "outcome_unknown"])
    assert r.exit_code == 0 and aid in r.output and "check by hand" in r.output
    r = runner.invoke(app, ["approvals", "resolve", aid, "done", "--as", "mallory", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 1 and "not allowed" in r.output
    r = runner.invoke(app, ["approvals", "resolve", aid, "done", "--as", "alice", *PW], input="wrong\n")
    assert r.exit_code == 1 and "not authenticated" in r.output
    assert _status(env, aid) == ApprovalStatus.OUTCOME_UNKNOWN
    r = runner.invoke(app, ["approvals", "resolve", aid, "done", "--as", "alice", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 0 and "marked done" in r.output
    assert _status(env, aid) == ApprovalStatus.EXECUTED
    r = runner.invoke(app, ["approvals", "resolve", aid, "retry", "--as", "alice", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 1 and "not outcome_unknown" in r.output


def _retry(ctx: ToolContext, aid: str) -> Approval:
    r = CliRunner().invoke(app, ["approvals", "resolve", aid, "retry", "--as", "bob", *PW], input=PASSWORD + "\n")
    assert r.exit_code == 0 and "retried" in r.output
    with ctx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None
        return a


def test_retry_runs_it(env: ToolContext) -> None:  # noqa: F811
    """The retried action (disable_flag) really runs: the flag is off in the flag file afterwards."""
    store = get_flag_store(env)
    store.seed({"checkout-new-pricing": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                         "defaultVariant": "on"}})
    a = _retry(env, _unknown(env))
    assert a.status == ApprovalStatus.EXECUTED, a.result
    assert store.get("checkout-new-pricing")["state"] == "DISABLED"


def test_retry_that_cannot_run_is_failed_not_executed(env: ToolContext) -> None:  # noqa: F811
    """With no such flag the retry fails and says why; it never claims the flag was disabled."""
    a = _retry(env, _unknown(env))
    assert a.status == ApprovalStatus.FAILED
    assert "unknown flag 'checkout-new-pricing'" in (a.result or "")
