"""The one executor entry point after a crash: outcome_unknown, settling by an approver, idempotent reruns."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from firebreak.agent.actions import ProposedFix
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Countermeasure, TimelineEntry
from firebreak.statuses import ApprovalStatus
from firebreak.workflows.approvals import decide, request_approval
from firebreak.workflows.executor import (
    ExecutionRefused,
    execute_approved,
    owner_token,
    resolve_unknown,
    sweep_orphaned_claims,
)
from tests.fake_slack import open_incident

ROLLBACK = ProposedFix(action="rollback", parameters={"service": "checkout", "to": "8.2.0"}, rationale="bad deploy")
DEAD = "replica-gone/0123456789ab"


@pytest.fixture
def actx(ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    ctx.settings.approvers = ["alice"]
    script = tmp_path / "act.py"
    script.write_text(f"import os, sys\nopen({str(tmp_path / 'runs.txt')!r}, 'a')"
                      ".write(os.environ['FIREBREAK_IDEMPOTENCY_KEY'] + '\\n')\nprint('synced')\n")
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", f"{sys.executable} {script}")
    return ctx


def _runs(tmp_path: Path) -> list[str]:
    f = tmp_path / "runs.txt"
    return f.read_text().split() if f.exists() else []


def _approval_left_running(ctx: ToolContext, claimed_by: str = DEAD) -> str:
    """An approved action whose process died while running it: `executing`, claimed by a gone process."""
    inc = open_incident(ctx)
    aid = request_approval(ctx, incident_id=inc, investigation_id=None, tool_call_id="call-1", fix=ROLLBACK).id
    with ctx.db.session() as s:
        s.execute(update(Approval).where(Approval.id == aid).values(
            status=ApprovalStatus.EXECUTING, decision="approve", decided_by="alice", decided_at=ctx.clock.now(),
            claimed_by=claimed_by, claimed_at=ctx.clock.now()))
    return aid


def _status(ctx: ToolContext, aid: str) -> str:
    with ctx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None
        return a.status


def test_command_gets_the_approval_id_as_idempotency_key(actx: ToolContext, tmp_path: Path) -> None:
    inc = open_incident(actx)
    aid = request_approval(actx, incident_id=inc, investigation_id=None, tool_call_id="c", fix=ROLLBACK).id
    out = decide(actx, aid, user="alice", decision="approve", via="cli")
    assert out.ok and out.execution is not None and out.execution.status == ApprovalStatus.EXECUTED
    assert _runs(tmp_path) == [aid]


def test_a_claim_left_by_a_dead_process_becomes_outcome_unknown_not_a_rerun(actx: ToolContext,
                                                                          tmp_path: Path) -> None:
    aid = _approval_left_running(actx)
    with pytest.raises(ExecutionRefused, match="running now"):  # without takeover: someone runs it now
        execute_approved(actx, aid)
    out = execute_approved(actx, aid, takeover=True)
    assert out.status == ApprovalStatus.OUTCOME_UNKNOWN and "check by hand" in out.detail
    assert _runs(tmp_path) == []  # nothing ran again
    assert execute_approved(actx, aid, takeover=True).already  # a second recovery changes nothing
    with actx.db.session() as s:
        texts = [t.text for t in s.scalars(select(TimelineEntry))]
    assert any("outcome unknown, check by hand" in t for t in texts)


def test_an_action_declared_idempotent_is_run_again_with_the_same_key(actx: ToolContext, tmp_path: Path) -> None:
    actx.settings.idempotent_actions = ["rollback"]
    aid = _approval_left_running(actx)
    out = execute_approved(actx, aid, takeover=True)
    assert out.status == ApprovalStatus.EXECUTED
    assert _runs(tmp_path) == [aid]


def test_our_own_live_claim_is_never_taken_over(actx: ToolContext, tmp_path: Path) -> None:
    aid = _approval_left_running(actx, claimed_by=owner_token(actx))
    with pytest.raises(ExecutionRefused):
        execute_approved(actx, aid, takeover=True)
    assert _status(actx, aid) == ApprovalStatus.EXECUTING and _runs(tmp_path) == []


def test_an_approver_marks_it_done(actx: ToolContext, tmp_path: Path) -> None:
    aid = _approval_left_running(actx)
    execute_approved(actx, aid, takeover=True)
    refused = resolve_unknown(actx, aid, user="mallory", outcome="done", via="cli")
    assert not refused.ok and "not allowed" in refused.message
    assert not resolve_unknown(actx, aid, user="alice", outcome="maybe", via="cli").ok
    out = resolve_unknown(actx, aid, user="alice", outcome="done", via="cli")
    assert out.ok and _status(actx, aid) == ApprovalStatus.EXECUTED and _runs(tmp_path) == []
    with actx.db.session() as s:
        (cm,) = s.scalars(select(Countermeasure).where(Countermeasure.approval_id == aid)).all()
    assert "executed" in cm.what
    again = resolve_unknown(actx, aid, user="alice", outcome="retry", via="cli")
    assert not again.ok and "not outcome_unknown" in again.message


def test_an_approver_retries_it_once(actx: ToolContext, tmp_path: Path) -> None:
    aid = _approval_left_running(actx)
    execute_approved(actx, aid, takeover=True)
    out = resolve_unknown(actx, aid, user="alice", outcome="retry", via="web")
    assert out.ok and out.execution is not None and out.execution.status == ApprovalStatus.EXECUTED
    assert not resolve_unknown(actx, aid, user="alice", outcome="retry", via="web").ok
    assert _runs(tmp_path) == [aid]


def test_sweeper_settles_only_old_claims_of_processes_that_are_gone(actx: ToolContext, clock: FixedClock) -> None:
    dead = _approval_left_running(actx)
    live = _approval_left_running(actx, claimed_by="replica-2/live")
    assert sweep_orphaned_claims(actx, {"replica-2/live"}) == []  # too recent: it may still be running
    clock.advance(timedelta(seconds=actx.settings.action_timeout_seconds + 31))
    assert sweep_orphaned_claims(actx, {"replica-2/live"}) == [dead]
    assert _status(actx, dead) == ApprovalStatus.OUTCOME_UNKNOWN
    assert _status(actx, live) == ApprovalStatus.EXECUTING
