"""Tool calls and model requests are durable steps (issue 14): kill -9 in the middle of an investigation,
and the recovered workflow replays the recorded outputs instead of calling the tools and the model again.

Real DBOS on SQLite in a temp data dir, a real SIGKILL of a real process (a small script that launches
the engine), the real registry tools over seeded state, and the real openai client against the local
fake server (tests/fake_openai.py). The seam itself (`firebreak.steps`) is checked in process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firebreak.agent.investigator import queue_investigation
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.state.changes import Change
from firebreak.steps import StepKind, canonical_json, run_step, use_runner, wrap_model
from firebreak.tools.registry import ToolError, call_tool
from tests.fake_openai import FakeOpenAI, tool_results
from tests.fake_slack import open_incident, seed_flags

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 8, 45, tzinfo=UTC)
LATER = NOW + timedelta(minutes=7)  # the restarted process's clock: a replay must not see it

# One `firebreak serve`-like process: launch the engine (which recovers this executor's pending
# workflows), optionally enqueue the investigation, log every registry tool call actually made, and
# SIGKILL itself inside the (kill_after + 1)-th call. Prints the investigation once it has a report.
CHILD = r'''
import dataclasses, json, os, signal, sys, time
from datetime import datetime
from pydantic import SecretStr
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.state.investigations import Investigation
from firebreak.tools import registry
from firebreak.workflows import engine

cfg = json.loads(sys.argv[1])
settings = Settings(_env_file=None, data_dir=cfg["data"], replica_id="durable-test", model=cfg["model"],
                    openai_base_url=cfg.get("base_url"), openai_api_key=SecretStr("test"))
ctx = ToolContext(settings=settings, clock=FixedClock(datetime.fromisoformat(cfg["now"])))
made = [0]
for name, spec in list(registry.load_tools().items()):
    def counted(c, a, _fn=spec.fn, _name=name):
        made[0] += 1
        with open(cfg["log"], "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "name": _name, "args": a.model_dump(mode="json")}) + "\n")
        if cfg.get("kill_after") is not None and made[0] > cfg["kill_after"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return _fn(c, a)
    registry.REGISTRY[name] = dataclasses.replace(spec, fn=counted)
if cfg["model"] != "offline":  # the agent-side hook the lead applies in make_llm, applied here by hand
    import firebreak.agent.investigator as inv_mod
    from firebreak.steps import wrap_model
    plain = inv_mod.make_llm
    inv_mod.make_llm = lambda c: wrap_model(plain(c))
engine.launch(ctx)
if cfg["enqueue"]:
    engine.enqueue(cfg["inv"])
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    with ctx.db.session() as s:
        inv = s.get(Investigation, cfg["inv"])
        if inv.status in ("awaiting_approval", "done", "failed") and (inv.report or inv.status == "failed"):
            out = {"status": inv.status, "report": inv.report, "error": inv.error, "fallback": inv.fallback,
                   "calls": [c["name"] for c in inv.tool_calls]}
            break
    time.sleep(0.2)
else:
    out = {"status": "timeout"}
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)
'''


def _seed(data: Path) -> str:
    """An open checkout incident with a deploy just before it and a flag on; returns a queued investigation."""
    ctx = ToolContext(settings=Settings(_env_file=None, data_dir=data), clock=FixedClock(NOW))  # type: ignore[call-arg]
    inc = open_incident(ctx)
    seed_flags(ctx)
    with ctx.db.session() as s:
        s.add(Change(kind="deploy", service="checkout", at=NOW - timedelta(minutes=12), version="2.4.0",
                     previous_version="2.3.9", author="ci", note="pricing service client"))
    inv = queue_investigation(ctx, inc)
    ctx.close()
    return inv


def _child(tmp: Path, cfg: dict[str, Any], *, killed: bool) -> dict[str, Any]:
    script = tmp / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("FIREBREAK_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, str(script), json.dumps(cfg)], env=env, cwd=tmp, capture_output=True,
                          text=True, timeout=300)
    if killed:
        assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])
        return {}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.returncode, proc.stderr[-3000:])
    return json.loads(lines[-1].removeprefix("RESULT "))  # type: ignore[no-any-return]


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_offline_run_killed_after_n_tool_calls_replays_them_and_ends_with_the_same_report(tmp_path: Path) -> None:
    crashed, reference = tmp_path / "crashed", tmp_path / "reference"
    inv = _seed(crashed)
    shutil.copytree(crashed, reference)  # the same state, run once without a crash
    ref_log = tmp_path / "reference.log"
    ref = _child(tmp_path, {"data": str(reference), "inv": inv, "model": "offline", "now": NOW.isoformat(),
                            "log": str(ref_log), "enqueue": True}, killed=False)
    assert ref["status"] in ("awaiting_approval", "done") and ref["report"]["hypotheses"], ref
    made = [(c["name"], c["args"]) for c in _calls(ref_log)]
    n = 5
    assert len(made) > n + 2, made  # the kill lands mid-run, with calls left to make after it

    log = tmp_path / "crashed.log"
    _child(tmp_path, {"data": str(crashed), "inv": inv, "model": "offline", "now": NOW.isoformat(),
                      "log": str(log), "enqueue": True, "kill_after": n}, killed=True)
    first = _calls(log)
    assert len(first) == n + 1  # n recorded, the (n+1)-th died inside its step
    out = _child(tmp_path, {"data": str(crashed), "inv": inv, "model": "offline", "now": LATER.isoformat(),
                            "log": str(log), "enqueue": False}, killed=False)
    second = [c for c in _calls(log) if c["pid"] != first[0]["pid"]]
    # The n recorded outputs were replayed: the restarted process called only the rest, with the same
    # arguments as the uncrashed run (its time ranges come from the recorded clock, not from LATER).
    assert [(c["name"], c["args"]) for c in second] == made[n:]
    assert out["status"] == ref["status"] and out["calls"] == ref["calls"]
    assert out["report"] == ref["report"]


def _llm_report() -> dict[str, Any]:
    return {
        "summary": "checkout 2.4.0 calls the pricing service in a loop", "severity": "major",
        "severity_reason": "checkout failing", "user_impact": "Some orders fail.", "symptoms": ["5xx"],
        "hypotheses": [{"title": "deploy 2.4.0", "confidence": 0.8,
                        "suspect": {"kind": "deploy", "service": "checkout", "ref": "2.4.0"},
                        "evidence": [{"tool": "recent_changes", "finding": "deploy 12 min before"}]}],
        "proposed_fix": {"action": "rollback", "parameters": {"service": "checkout", "to": "2.3.9"},
                         "rationale": "undo 2.4.0", "risk": "low", "undo": "redeploy 2.4.0"},
    }


def _scripted(incident_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    plan: list[list[tuple[str, dict[str, Any]]]] = [
        [("incident_details", {"incident_id": incident_id})],
        [("recent_changes", {"since": "2026-03-02T07:00:00Z"}), ("metric_anomalies", {})],
        [("list_flags", {})],
        [("service_dependencies", {"service": "checkout"})],
    ]

    def respond(req: dict[str, Any]) -> dict[str, Any]:
        done = tool_results(req)
        for step in plan:
            if step[0][0] not in done:
                return {"tool_calls": [{"name": n, "arguments": a} for n, a in step]}
        if "submit_report" not in done:
            return {"tool_calls": [{"name": "submit_report", "arguments": {"report": _llm_report()}}]}
        if "request_action" not in done:
            return {"tool_calls": [{"name": "request_action", "arguments": _llm_report()["proposed_fix"]}]}
        return {"content": "Report submitted; waiting for approval."}

    return respond


@pytest.mark.slow
def test_llm_run_killed_mid_investigation_does_not_ask_the_model_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    inv = _seed(data)
    with ToolContext(settings=Settings(_env_file=None, data_dir=data)).db.session() as s:  # type: ignore[call-arg]
        from firebreak.state.investigations import Investigation

        row = s.get(Investigation, inv)
        assert row is not None
        incident_id = row.incident_id
    log = tmp_path / "calls.log"
    with FakeOpenAI(_scripted(incident_id)) as fake:
        cfg = {"data": str(data), "inv": inv, "model": "openai:fake-model", "base_url": fake.base_url,
               "now": NOW.isoformat(), "log": str(log), "enqueue": True, "kill_after": 3}
        _child(tmp_path, cfg, killed=True)  # killed inside list_flags, the 4th tool call
        assert len(fake.requests) == 3 and len(_calls(log)) == 4
        out = _child(tmp_path, {**cfg, "enqueue": False, "kill_after": None, "now": LATER.isoformat()},
                     killed=False)
        # Recovered: the three answered model requests and the three finished tool calls were replayed;
        # the model was asked only for the turns after the crash (list_flags' answer onwards).
        assert len(fake.requests) == 6, [tool_results(r) for r in fake.requests]
        assert "list_flags" in tool_results(fake.requests[3])
    names = [c["name"] for c in _calls(log)]
    assert names == ["incident_details", "recent_changes", "metric_anomalies", "list_flags", "list_flags",
                     "service_dependencies"]
    assert out["status"] == "awaiting_approval" and not out["fallback"], out
    assert out["report"]["proposed_fix"]["parameters"] == {"service": "checkout", "to": "2.3.9"}


# ------------------------------------------------------------------------------------ the seam, in process


class _Recorder:
    """A StepRunner that records like a durable engine, and replays when told to."""

    def __init__(self) -> None:
        self.book: list[tuple[str, str, str, Any]] = []
        self.replay: list[Any] | None = None

    def run(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], Any]) -> Any:
        if self.replay:
            return self.replay.pop(0)
        out = fn()
        self.book.append((kind, name, args_json, out))
        return out

    async def arun(self, kind: StepKind, name: str, args_json: str, fn: Callable[[], Any]) -> Any:
        return await fn()

    def wrap_model(self, model: Any) -> Any:
        return ("wrapped", model)


def test_without_a_runner_nothing_changes_and_with_one_each_call_is_a_recorded_step(ctx: ToolContext) -> None:
    inc = open_incident(ctx)
    plain = call_tool(ctx, "incident_details", {"incident_id": inc})
    assert wrap_model("m") == "m" and run_step(StepKind.CLOCK, "now", "", lambda: 1) == 1
    rec = _Recorder()
    with use_runner(rec):
        assert call_tool(ctx, "incident_details", {"incident_id": inc}) == plain
        with pytest.raises(ToolError) as bad:
            call_tool(ctx, "incident_details", {"incident_id": "inc-missing"})
        assert wrap_model("m") == ("wrapped", "m")
    assert [(k, n) for k, n, _, _ in rec.book] == [("tool", "incident_details")] * 2
    assert rec.book[0][2] == canonical_json({"incident_id": inc})
    assert rec.book[0][3] == {"ok": plain}  # the redacted output is what is recorded
    assert rec.book[1][3]["error"]["status"] == bad.value.status  # an error is an answer, recorded too
    # Replayed: the recorded answers come back, error included, without touching the store.
    rec.replay = [{"ok": {"from": "the record"}}, rec.book[1][3]]
    with use_runner(rec):
        assert call_tool(ctx, "incident_details", {"incident_id": inc}) == {"from": "the record"}
        with pytest.raises(ToolError, match=re.escape(bad.value.message)):
            call_tool(ctx, "incident_details", {"incident_id": inc})


def test_validation_errors_are_not_steps(ctx: ToolContext) -> None:
    rec = _Recorder()
    with use_runner(rec), pytest.raises(ToolError) as bad:
        call_tool(ctx, "incident_details", {})
    assert bad.value.status == 422 and rec.book == []


def test_canonical_json_is_order_free() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
