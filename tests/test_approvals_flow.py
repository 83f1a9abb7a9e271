"""The approval flow without Slack: request, refusals, exactly-once decision and execution, records."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from firebreak.agent.actions import ProposedFix
from firebreak.context import ToolContext
from firebreak.server.approvals import ApprovalError, approvals_for_incident, decide, list_approvals, request_approval
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.incidents import Countermeasure, Incident, TimelineEntry
from firebreak.workflows.executor import ExecutionRefused
from firebreak.workflows.executor import execute_approved as execute_once
from tests.fake_slack import open_incident, sample_report, seed_flags

ROLLBACK = ProposedFix(action="rollback", parameters={"service": "checkout", "to": "8.2.0"},
                       rationale="8.3.0 broke payments", risk="loses the new banner", undo="deploy 8.3.0")


@pytest.fixture
def actx(ctx: ToolContext) -> ToolContext:
    ctx.settings.approvers = ["alice", "U0APPROVER"]
    return ctx


def _request(ctx: ToolContext, fix: ProposedFix = ROLLBACK, alts: list[ProposedFix] | None = None,
             call: str = "call-1") -> tuple[str, str]:
    inc = open_incident(ctx)
    a = request_approval(ctx, incident_id=inc, investigation_id="inv-1", tool_call_id=call, fix=fix,
                         alternatives=alts or [])
    return inc, a.id


def _recorder_command(tmp_path: Path, exit_code: int = 0) -> str:
    script = tmp_path / "executor.py"
    out = tmp_path / "runs.jsonl"
    script.write_text(
        "import sys\n"
        f"open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')\n"
        "print('rolled back by test executor')\n"
        f"sys.exit({exit_code})\n"
    )
    return f"{sys.executable} {script}"


def _runs(tmp_path: Path) -> list[dict[str, Any]]:
    f = tmp_path / "runs.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def test_request_stores_pending_and_is_idempotent(actx: ToolContext) -> None:
    inc, aid = _request(actx)
    again = request_approval(actx, incident_id=inc, investigation_id="inv-1", tool_call_id="call-1",
                             fix=ROLLBACK, alternatives=[])
    assert again.id == aid
    with actx.db.session() as s:
        rows = s.execute(select(Approval).where(Approval.status != "alternative")).scalars().all()
        assert [r.status for r in rows] == ["pending"]
        assert rows[0].action == "rollback" and rows[0].parameters == {"service": "checkout", "to": "8.2.0"}
        assert rows[0].requested_at == actx.clock.now()
        assert "Risk: loses the new banner" in rows[0].rationale
        views = approvals_for_incident(s, inc)
    assert views[0]["status"] == "pending" and views[0]["decided_by"] is None
    assert set(views[0]) >= {"action", "parameters", "requested_at", "decided_by", "decision", "decided_at",
                             "executed_at", "result"}


def test_request_refuses_fix_outside_catalog(actx: ToolContext) -> None:
    inc = open_incident(actx)
    bad = ProposedFix(action="restart", parameters={"service": "x", "command": "rm -rf /"})
    with pytest.raises(ApprovalError, match="unknown parameter"):
        request_approval(actx, incident_id=inc, investigation_id=None, tool_call_id="c", fix=bad, alternatives=[])
    with pytest.raises(ApprovalError, match="incident_id"):
        request_approval(actx, incident_id="INC-1999-001", investigation_id=None, tool_call_id="c",
                         fix=ROLLBACK, alternatives=[])
    with actx.db.session() as s:
        assert s.execute(select(Approval)).first() is None


def test_invalid_alternatives_are_dropped(actx: ToolContext) -> None:
    bad = ProposedFix(action="scale", parameters={"replicas": 3})  # service missing
    _, aid = _request(actx, alts=[bad, ROLLBACK, ProposedFix(action="restart", parameters={"service": "c"})])
    (view,) = list_approvals(actx)
    assert view.id == aid
    assert [a.action for a in view.alternatives] == ["restart"]


def test_non_approver_is_refused_and_logged(actx: ToolContext) -> None:
    _, aid = _request(actx)
    out = decide(actx, aid, user="mallory", decision="approve", via="web")
    assert not out.ok and out.code == "not_approver" and "FIREBREAK_APPROVERS" in out.message
    with actx.db.session() as s:
        assert s.get(Approval, aid).status == "pending"  # type: ignore[union-attr]
        ev = s.execute(select(AuditEvent)).scalars().one()
        assert ev.actor == "mallory" and ev.event == "approval_refused" and ev.detail["approval_id"] == aid


def test_unknown_and_bad_input(actx: ToolContext) -> None:
    assert decide(actx, "apr-nope", user="alice", decision="approve", via="cli").code == "unknown_approval"
    _, aid = _request(actx)
    out = decide(actx, aid, user="alice", decision="maybe", via="cli")
    assert out.code == "bad_input" and "decision" in out.message
    out = decide(actx, aid, user="alice", decision="approve", via="cli", choice="7")
    assert out.code == "bad_input" and "choice" in out.message


def test_finished_incident_is_refused(actx: ToolContext) -> None:
    from firebreak.memory import incident_log

    inc, aid = _request(actx)
    with actx.db.session() as s:
        incident_log.set_status(s, incident_log.get_incident(s, inc), "resolved", at=actx.clock.now(), actor="t")
    out = decide(actx, aid, user="alice", decision="approve", via="web")
    assert out.code == "incident_finished" and "resolved" in out.message
    with actx.db.session() as s:
        assert s.get(Approval, aid).status == "pending"  # type: ignore[union-attr]


def test_approve_without_executor_is_manual_never_pretends(actx: ToolContext) -> None:
    inc, aid = _request(actx)
    out = decide(actx, aid, user="alice", decision="approve", via="cli")
    assert out.ok and out.execution is not None and out.execution.status == "manual"
    assert "by hand" in out.message
    with actx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None and a.status == "manual" and a.executed_at is None
        assert a.decided_by == "alice" and a.decision == "approve" and a.decided_at == actx.clock.now()
        assert a.result is not None and a.result.startswith("approved, to be done by hand")
        incident = s.get(Incident, inc)
        assert incident is not None and incident.status == "open" and not incident.rollback
        cm = s.execute(select(Countermeasure)).scalars().one()
        assert cm.approval_id == aid and "by hand" in cm.what


def test_approve_runs_command_once_and_marks_incident(actx: ToolContext, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", _recorder_command(tmp_path))
    inc, aid = _request(actx)
    out = decide(actx, aid, user="alice", decision="approve", via="web")
    assert out.ok and out.execution is not None and out.execution.status == "executed"
    assert "rolled back by test executor" in out.execution.detail
    (run,) = _runs(tmp_path)
    assert run == {"incident": inc, "approval_id": aid, "action": "rollback", "service": "checkout",
                   "to": "8.2.0", "approved_by": "alice", "idempotency_key": aid}
    again = decide(actx, aid, user="alice", decision="approve", via="web")
    assert again.code == "already_decided" and "already approved by alice" in again.message
    assert execute_once(actx, aid).already
    assert len(_runs(tmp_path)) == 1
    with actx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None and a.status == "executed" and a.executed_at == actx.clock.now()
        incident = s.get(Incident, inc)
        assert incident is not None and incident.status == "mitigated" and incident.rollback
        assert incident.mitigated_at == actx.clock.now()
        kinds = [e.kind for e in s.execute(select(TimelineEntry).where(TimelineEntry.incident_id == inc))
                 .scalars()]
        assert "approval" in kinds and "countermeasure" in kinds and "status" in kinds


def test_failed_command_is_reported(actx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", _recorder_command(tmp_path, exit_code=4))
    inc, aid = _request(actx)
    out = decide(actx, aid, user="alice", decision="approve", via="cli")
    assert out.execution is not None and out.execution.status == "failed" and "exited 4" in out.execution.detail
    with actx.db.session() as s:
        assert s.get(Incident, inc).status == "open"  # type: ignore[union-attr]
        assert s.execute(select(Countermeasure)).scalars().one().worked is False


def test_hook_receives_json(actx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[dict[str, Any]] = []
    keys: list[str | None] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            keys.append(self.headers.get("Idempotency-Key"))
            self.send_response(202)
            self.end_headers()
            self.wfile.write(b"")

        def log_message(self, *args: Any) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("FIREBREAK_ACTION_HOOK_ROLLBACK", f"http://127.0.0.1:{srv.server_address[1]}/argo?t=x")
        _, aid = _request(actx)
        out = decide(actx, aid, user="alice", decision="approve", via="web")
    finally:
        srv.shutdown()
        srv.server_close()
    assert out.execution is not None and out.execution.status == "executed"
    assert "answered 202" in out.execution.detail and "t=x" not in out.execution.detail
    assert got == [{"incident": got[0]["incident"], "approval_id": aid, "action": "rollback",
                    "service": "checkout", "to": "8.2.0", "approved_by": "alice", "idempotency_key": aid}]
    assert keys == [aid]  # the receiver can drop a repeat of the same approval


def test_reject_records_reason_and_runs_nothing(actx: ToolContext, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", _recorder_command(tmp_path))
    inc, aid = _request(actx)
    out = decide(actx, aid, user="alice", decision="reject", via="web", reason="wrong service")
    assert out.ok and out.code == "rejected" and out.execution is None
    assert _runs(tmp_path) == []
    with pytest.raises(ExecutionRefused):
        execute_once(actx, aid)
    with actx.db.session() as s:
        a = s.get(Approval, aid)
        assert a is not None and a.status == "rejected" and a.result == "rejected: wrong service"
        texts = [e.text for e in s.execute(select(TimelineEntry)).scalars()]
        assert any("wrong service" in t for t in texts)
        assert s.execute(select(Countermeasure)).first() is None


def test_choose_alternative(actx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_RESTART", _recorder_command(tmp_path))
    restart = ProposedFix(action="restart", parameters={"service": "checkout"}, rationale="stuck pool")
    _, aid = _request(actx, alts=[restart])
    (view,) = list_approvals(actx)
    alt_id = view.alternatives[0].id
    assert decide(actx, alt_id, user="alice", decision="approve", via="web").code == "unknown_approval"
    out = decide(actx, aid, user="alice", decision="approve", via="web", choice=alt_id)
    assert out.ok and out.execution is not None and out.execution.status == "executed"
    assert _runs(tmp_path)[0]["action"] == "restart"
    (view,) = list_approvals(actx, status=None)
    assert view.action == "restart" and view.alternatives[0].status == "chosen"


def test_concurrent_clicks_execute_once(actx: ToolContext, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_ACTION_COMMAND_ROLLBACK", _recorder_command(tmp_path))
    _, aid = _request(actx)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def click(user: str) -> None:
        barrier.wait()
        results.append(decide(actx, aid, user=user, decision="approve", via="slack").code)

    threads = [threading.Thread(target=click, args=(u,)) for u in ("alice", "U0APPROVER", "alice", "alice")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already_decided"] * 3 + ["approved"]
    assert len(_runs(tmp_path)) == 1


def test_flag_action_goes_through_the_flag_store(actx: ToolContext) -> None:
    from firebreak.tools.flag_store import get_flag_store

    seed_flags(actx)
    store = get_flag_store(actx)
    fix = sample_report().proposed_fix
    assert fix is not None
    inc, aid = _request(actx, fix=fix)
    out = decide(actx, aid, user="alice", decision="approve", via="web")
    assert out.execution is not None and out.execution.status == "executed", out.execution
    assert store.get("checkout-new-pricing")["state"] == "DISABLED"
    with actx.db.session() as s:
        incident = s.get(Incident, inc)
        assert incident is not None and incident.status == "mitigated" and incident.hotfix


def test_flag_action_on_unknown_flag_fails_clearly(actx: ToolContext) -> None:
    fix = ProposedFix(action="disable_flag", parameters={"flag": "no-such-flag"})
    _, aid = _request(actx, fix=fix)
    out = decide(actx, aid, user="alice", decision="approve", via="web")
    assert out.execution is not None and out.execution.status == "failed"
    assert "no-such-flag" in out.execution.detail
