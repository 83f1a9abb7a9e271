"""kill -9 of `firebreak serve`: the reduced crash test, and the exact case of issue 14 (killed while an
approved fix's command still runs). Real servers, real SIGKILL, real databases; slow (run by .ci/run)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.state.approvals import Approval
from firebreak.state.incidents import TimelineEntry
from firebreak.state.investigations import Investigation
from firebreak.statuses import ApprovalStatus, InvestigationStatus
from firebreak.workflows.approvals import decide
from tests.storage import BACKENDS, fresh_database_url

pytestmark = pytest.mark.slow


def _load_script() -> Any:
    """scripts/ is not a package (each script runs alone): load the crash test by path."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "crash_test.py"
    spec = importlib.util.spec_from_file_location("crash_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crash_test = _load_script()


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduced_crash_rounds_print_zeros(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fresh_database_url(backend, str(tmp_path)) as url:
        args = ["--rounds", "3", "--seed", "7", "--settle", "90", "--json"]
        if backend == "postgres":
            args += ["--database-url", url, "--replicas", "2"]
        code = crash_test.main(args)
    import json

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["kills"] == 3 and result["alerts_acknowledged"] > 0 and result["approvals_decided"] > 0
    assert (result["acknowledged_alerts_lost"], result["investigations_stranded"], result["approvals_stuck"],
            result["duplicate_executions"]) == (0, 0, 0, 0), result
    assert code == 0


def _wait(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_while_the_fix_runs_becomes_outcome_unknown_and_is_never_rerun(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    action = tmp_path / "action.py"
    action.write_text(crash_test.ACTION_SCRIPT)
    log = tmp_path / "actions.log"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("FIREBREAK_")}
    env.update({"FIREBREAK_DATA_DIR": str(data), "FIREBREAK_WEBHOOK_TOKEN": crash_test.TOKEN,
                "FIREBREAK_APPROVERS": "alice", "FIREBREAK_GROUP_WAIT_SECONDS": "0.2",
                "FIREBREAK_ACTION_COMMAND_ROLLBACK": f"{sys.executable} {action}",
                "CRASH_ACTION_LOG": str(log), "CRASH_ACTION_SECONDS": "4"})
    logs = tmp_path / "logs"
    logs.mkdir()
    server = crash_test.Replica("solo", env, logs)
    ctx = ToolContext(settings=Settings(_env_file=None, data_dir=data, approvers=["alice"],  # type: ignore[call-arg]
                                        webhook_token=SecretStr(crash_test.TOKEN)))
    server.start()
    try:
        services = ["svc-000-0", "svc-000-1"]  # one round of the crash test
        crash_test._deploys(server.port, services)
        acked: set[str] = set()
        crash_test._storm(server.port, "one", services, 30, acked, __import__("threading").Lock())
        assert len(acked) == 30

        def pending() -> str | None:
            with ctx.db.session() as s:
                return s.scalars(select(Approval.id).where(Approval.status == ApprovalStatus.PENDING)).first()

        try:
            _wait("the approval request", pending)
        except AssertionError:
            with ctx.db.session() as s:
                rows = [(i.status, i.error, (i.report or {}).get("proposed_fix"))
                        for i in s.scalars(select(Investigation))]
            raise AssertionError(f"no approval request; investigations: {rows}") from None
        aid = pending()
        assert aid is not None
        out = decide(ctx, aid, user="alice", decision="approve", via="cli", wait_seconds=0)
        assert out.ok
        _wait("the fix to start", lambda: log.exists() and "start" in log.read_text())
        server.kill()  # the fix's command is still running
        server.start()

        def settled() -> bool:
            with ctx.db.session() as s:
                a = s.get(Approval, aid)
                return a is not None and a.status == ApprovalStatus.OUTCOME_UNKNOWN

        _wait("outcome_unknown", settled)
        _wait("its investigation to close", lambda: _inv_status(ctx, aid) == InvestigationStatus.DONE)
        with ctx.db.session() as s:
            texts = [t.text for t in s.scalars(select(TimelineEntry))]
        assert any("check by hand" in t for t in texts)
        time.sleep(4.5)  # the orphaned command finishes by itself; nothing started it again
        assert log.read_text().split().count("start") == 1
    finally:
        server.stop()


def _inv_status(ctx: ToolContext, approval_id: str) -> str | None:
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        inv = s.get(Investigation, a.investigation_id) if a is not None and a.investigation_id else None
        return inv.status if inv is not None else None
