"""The investigator end to end: agent loop, transcript, report, deferred approval, resume, fallback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import firebreak.agent.agent_tools as tools_mod
import firebreak.agent.investigator as inv_mod
from firebreak.agent.investigator import InvestigationError, investigate, queue_investigation, resume
from firebreak.agent.report import TriageReport
from firebreak.agent.worker import InvestigationWorker, run_due
from firebreak.context import ToolContext
from firebreak.memory.incident_log import open_incident
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident, TimelineEntry
from firebreak.state.investigations import Investigation
from tests.fake_openai import FakeOpenAI, tool_results
from tests.test_agent_world import World, mailer_like

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def incident_id(ctx: ToolContext) -> str:
    ctx.clock.set(START + timedelta(minutes=45))  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        inc = open_incident(
            s, title="Mailer memory high", services=["mailer"], severity="major", at=ctx.clock.now(), actor="test"
        )
        return inc.id


@pytest.fixture
def use_world(monkeypatch: pytest.MonkeyPatch) -> Callable[[World], World]:
    """Serve a World's canned answers as the registry tools (same names, docstrings, JSON)."""

    def install(world: World) -> World:
        specs = world.specs()
        monkeypatch.setattr(tools_mod, "load_tools", lambda: specs)
        monkeypatch.setattr(tools_mod, "call_tool", lambda ctx, name, args: world.answer(name, dict(args)))
        return world

    return install


@pytest.fixture
def world(incident_id: str, use_world: Callable[[World], World]) -> World:
    return use_world(mailer_like(START, incident_id))


def _inv(ctx: ToolContext, inv_id: str) -> Investigation:
    with ctx.db.session() as s:
        row = s.get(Investigation, inv_id)
        assert row is not None
        return row


def _approval(ctx: ToolContext, inv_id: str) -> Approval:
    with ctx.db.session() as s:
        row = s.scalars(
            select(Approval).where(Approval.investigation_id == inv_id, Approval.tool_call_id.is_not(None))
        ).one()
        return row


def _approve(ctx: ToolContext, approval_id: str, decision: str = "approve") -> None:
    with ctx.db.session() as s:
        a = s.get(Approval, approval_id)
        assert a is not None
        a.status = "approved" if decision == "approve" else "rejected"
        a.decision = decision
        a.decided_by = "alice"
        a.decided_at = ctx.clock.now()


def test_offline_run_stops_on_the_approval_with_a_full_transcript(
    ctx: ToolContext, world: World, incident_id: str
) -> None:
    inv_id = queue_investigation(ctx, incident_id)
    report = investigate(ctx, inv_id)
    top = report.hypotheses[0]
    assert (top.suspect.kind, top.suspect.service, top.suspect.ref) == ("deploy", "mailer", "4.6.2")
    assert report.proposed_fix is not None
    assert report.proposed_fix.flat() == {"action": "rollback", "service": "mailer", "to": "4.6.1"}
    assert report.next_update_due == ctx.clock.now() + timedelta(minutes=ctx.settings.update_minutes)
    assert report.investigator == "offline" and not report.fallback
    assert report.severity in ("major", "critical") and report.severity_reason
    assert report.user_impact and report.customer_message and report.internal_update
    # The same agent loop called the tools, in a sensible order, and stored every call with timings.
    row = _inv(ctx, inv_id)
    assert row.status == "awaiting_approval"
    names = [c["name"] for c in row.tool_calls]
    assert names[0] == "incident_details"
    assert {"recent_changes", "metric_anomalies", "log_patterns", "list_sentry_issues", "similar_incidents"} <= set(
        names
    )
    assert names[-1] == "submit_report"
    assert all(isinstance(c["duration_ms"], float) for c in row.tool_calls)
    assert row.messages and row.usage["requests"] >= 4 and row.wall_seconds is not None
    assert row.report == report.model_dump(mode="json")
    # The fix is a pending approval tied to the deferred tool call; nothing has run.
    appr = _approval(ctx, inv_id)
    assert appr.status == "pending" and appr.action == "rollback" and appr.executed_at is None
    assert appr.tool_call_id in row.usage["pending_tool_call_ids"]
    with ctx.db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None and inc.report is not None and inc.report["summary"] == report.summary
        kinds = [e.kind for e in s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id))]
        assert "report" in kinds
    # Red herrings lose: the api deploy and the flag flip elsewhere are not in the top 2.
    refs = [h.suspect.ref for h in report.hypotheses[:2]]
    assert "2.31.1" not in refs and "api-campaign-preview" not in refs
    # A second call returns the stored report instead of running again.
    assert investigate(ctx, inv_id) == TriageReport.model_validate(row.report)


def test_resume_after_approval_executes_once_and_closes_the_transcript(
    ctx: ToolContext, world: World, incident_id: str
) -> None:
    inv_id = queue_investigation(ctx, incident_id)
    investigate(ctx, inv_id)
    appr = _approval(ctx, inv_id)
    _approve(ctx, appr.id)
    text = resume(ctx, appr.id)
    assert "Action finished" in text
    row = _inv(ctx, inv_id)
    assert row.status == "done" and row.usage["approved"] is True
    assert [c for c in row.tool_calls if c["name"] == "request_action"]
    with ctx.db.session() as s:
        done = s.get(Approval, appr.id)
        assert done is not None and done.status in ("executed", "manual", "failed")
        first_result = (done.status, done.result)
    # Safe to call twice: the stored outcome comes back, nothing runs again.
    assert resume(ctx, appr.id) == text
    with ctx.db.session() as s:
        again = s.get(Approval, appr.id)
        assert again is not None and (again.status, again.result) == first_result


def test_resume_after_rejection_runs_nothing(ctx: ToolContext, world: World, incident_id: str) -> None:
    inv_id = queue_investigation(ctx, incident_id)
    investigate(ctx, inv_id)
    appr = _approval(ctx, inv_id)
    _approve(ctx, appr.id, "reject")
    text = resume(ctx, appr.id)
    assert "not run" in text.lower() or "rejected" in text.lower()
    row = _inv(ctx, inv_id)
    assert row.status == "done" and row.usage["approved"] is False
    with ctx.db.session() as s:
        a = s.get(Approval, appr.id)
        assert a is not None and a.status == "rejected" and a.executed_at is None


def test_resume_refuses_a_pending_approval(ctx: ToolContext, world: World, incident_id: str) -> None:
    inv_id = queue_investigation(ctx, incident_id)
    investigate(ctx, inv_id)
    appr = _approval(ctx, inv_id)
    with pytest.raises(InvestigationError, match="pending"):
        resume(ctx, appr.id)
    with pytest.raises(InvestigationError, match="approval_id"):
        resume(ctx, "apr-nope")


def test_decide_through_the_approval_flow(ctx: ToolContext, world: World, incident_id: str) -> None:
    approvals = pytest.importorskip("firebreak.server.approvals")
    ctx.settings.approvers = ["alice"]
    inv_id = queue_investigation(ctx, incident_id)
    investigate(ctx, inv_id)
    appr = _approval(ctx, inv_id)
    out = approvals.decide(ctx, appr.id, user="alice", decision="approve", via="cli")
    assert out.ok
    assert _inv(ctx, inv_id).status == "done"
    with ctx.db.session() as s:
        a = s.get(Approval, appr.id)
        assert a is not None and a.status in ("executed", "manual", "failed")


def test_missing_tools_and_broken_backends_still_give_a_report(
    ctx: ToolContext, world: World, incident_id: str
) -> None:
    world.broken |= {"log_patterns", "list_sentry_issues"}
    report = investigate(ctx, queue_investigation(ctx, incident_id))
    assert report.hypotheses and any(h.suspect.ref == "4.6.2" for h in report.hypotheses[:3])
    assert any("log_patterns" in n for n in report.notes)
    assert "could not see" in report.summary.lower() or "no cause identified" in report.summary.lower()


@pytest.mark.xfail(strict=True, reason="known gap of the fitted ranking: without log patterns and Sentry, the "
                   "memory symptom outranks the deploy that caused it")
def test_broken_backends_still_put_the_deploy_first(ctx: ToolContext, world: World, incident_id: str) -> None:
    world.broken |= {"log_patterns", "list_sentry_issues"}
    report = investigate(ctx, queue_investigation(ctx, incident_id))
    assert report.hypotheses[0].suspect.ref == "4.6.2"


def test_unknown_ids_are_clear_errors(ctx: ToolContext, world: World) -> None:
    with pytest.raises(InvestigationError, match="investigation_id"):
        investigate(ctx, "inv-missing")
    with pytest.raises(InvestigationError, match="incident_id"):
        queue_investigation(ctx, "INC-1999-999")


# ------------------------------------------------------------------------------------------ worker


def test_run_due_respects_not_before(ctx: ToolContext, world: World, incident_id: str) -> None:
    later = queue_investigation(ctx, incident_id, not_before=ctx.clock.now() + timedelta(seconds=30))
    assert run_due(ctx) == []
    assert _inv(ctx, later).status == "queued"
    ctx.clock.advance(timedelta(seconds=31))  # type: ignore[attr-defined]
    assert run_due(ctx) == [later]
    assert _inv(ctx, later).status == "awaiting_approval"
    assert run_due(ctx) == []


def test_worker_thread_picks_up_queued_runs(ctx: ToolContext, world: World, incident_id: str) -> None:
    import time

    inv_id = queue_investigation(ctx, incident_id)
    worker = InvestigationWorker(ctx, interval=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _inv(ctx, inv_id).status in ("queued", "running"):
            time.sleep(0.05)
    finally:
        worker.stop()
    assert not worker.running
    assert _inv(ctx, inv_id).status == "awaiting_approval"


# ------------------------------------------------------------------------------------------ LLM path


def _llm_report(incident_id: str) -> dict[str, Any]:
    return {
        "summary": "mailer 4.6.2 retries forever and runs out of memory",
        "severity": "major",
        "severity_reason": "bulk mail stopped",
        "user_impact": "Campaign mails are delayed; nothing is lost.",
        "symptoms": ["memory rising", "throughput zero"],
        "hypotheses": [
            {
                "title": "retry loop in 4.6.2",
                "confidence": 0.8,
                "suspect": {"kind": "deploy", "service": "mailer", "ref": "4.6.2"},
                "evidence": [{"tool": "recent_changes", "finding": "deploy 2 min before errors"}],
            }
        ],
        "proposed_fix": {
            "action": "rollback",
            "parameters": {"service": "mailer", "to": "4.6.1"},
            "rationale": "undo 4.6.2",
            "risk": "low",
            "undo": "redeploy 4.6.2",
        },
    }


def _scripted(incident_id: str, *, submit: bool = True, request: bool = True) -> Callable[[dict[str, Any]], Any]:
    def respond(req: dict[str, Any]) -> dict[str, Any]:
        done = tool_results(req)
        if "incident_details" not in done:
            return {"tool_calls": [{"name": "incident_details", "arguments": {"incident_id": incident_id}}]}
        if "recent_changes" not in done:
            return {
                "tool_calls": [
                    {"name": "recent_changes", "arguments": {"since": "2026-03-02T07:00:00Z"}},
                    {"name": "metric_anomalies", "arguments": {}},
                ]
            }
        if submit and "submit_report" not in done:
            return {"tool_calls": [{"name": "submit_report", "arguments": {"report": _llm_report(incident_id)}}]}
        if request and "request_action" not in done:
            fix = _llm_report(incident_id)["proposed_fix"]
            return {"tool_calls": [{"name": "request_action", "arguments": fix}]}
        return {"content": "Report submitted; waiting for approval."}

    return respond


def _use_llm(ctx: ToolContext, fake: FakeOpenAI) -> None:
    ctx.settings.model = "openai:fake-model"
    ctx.settings.openai_base_url = fake.base_url


def test_llm_run_against_a_fake_openai_server(ctx: ToolContext, world: World, incident_id: str) -> None:
    with FakeOpenAI(_scripted(incident_id)) as fake:
        _use_llm(ctx, fake)
        inv_id = queue_investigation(ctx, incident_id)
        report = investigate(ctx, inv_id)
        # The model saw every registry tool with its description and schema, and the two agent tools.
        tools = {t["function"]["name"]: t["function"] for t in fake.requests[0]["tools"]}
        assert {"incident_details", "log_patterns", "submit_report", "request_action"} <= set(tools)
        assert tools["log_patterns"]["description"] and "parameters" in tools["log_patterns"]
        assert "untrusted" in json.dumps(fake.requests[0]["messages"])
    assert report.investigator == "openai:fake-model" and not report.fallback
    assert report.summary.startswith("mailer 4.6.2")
    assert report.customer_message and report.internal_update  # drafted from the templates
    assert report.proposed_fix is not None and report.proposed_fix.flat()["to"] == "4.6.1"
    row = _inv(ctx, inv_id)
    assert row.status == "awaiting_approval" and row.model == "openai:fake-model"
    assert row.usage["input_tokens"] > 0
    assert _approval(ctx, inv_id).status == "pending"


def test_llm_that_forgets_to_request_the_action_is_asked_again(
    ctx: ToolContext, world: World, incident_id: str
) -> None:
    asked: list[int] = []

    def respond(req: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(req["messages"][-1])
        if "Now call request_action" in text:
            asked.append(1)
            return {"tool_calls": [{"name": "request_action", "arguments": _llm_report(incident_id)["proposed_fix"]}]}
        return _scripted(incident_id, request=False)(req)

    with FakeOpenAI(respond) as fake:
        _use_llm(ctx, fake)
        inv_id = queue_investigation(ctx, incident_id)
        investigate(ctx, inv_id)
    assert asked and _inv(ctx, inv_id).status == "awaiting_approval"


@pytest.mark.parametrize("failure", ["http_error", "no_report", "budget"])
def test_llm_failures_fall_back_to_the_offline_report(
    ctx: ToolContext, world: World, incident_id: str, failure: str
) -> None:
    responder: Callable[[dict[str, Any]], Any]
    if failure == "http_error":

        def responder(req: dict[str, Any]) -> Any:
            return (400, {"error": {"message": "model overloaded", "type": "invalid_request_error"}})
    elif failure == "no_report":
        responder = _scripted(incident_id, submit=False, request=False)
    else:
        responder = _scripted(incident_id)
        ctx.settings.max_tool_calls = 2
    with FakeOpenAI(responder) as fake:
        _use_llm(ctx, fake)
        inv_id = queue_investigation(ctx, incident_id)
        report = investigate(ctx, inv_id)
    assert report.fallback and report.investigator == "offline"
    assert report.hypotheses[0].suspect.ref == "4.6.2"
    row = _inv(ctx, inv_id)
    assert row.fallback and row.fallback_reason
    assert row.status == "awaiting_approval"
    if failure == "budget":
        assert "limit" in row.fallback_reason.lower()


def test_wall_time_budget_falls_back(ctx: ToolContext, world: World, incident_id: str) -> None:
    import time

    def slow(req: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.6)
        return _scripted(incident_id)(req)

    with FakeOpenAI(slow) as fake:
        _use_llm(ctx, fake)
        ctx.settings.max_wall_seconds = 0.3
        inv_id = queue_investigation(ctx, incident_id)
        report = investigate(ctx, inv_id)
    assert report.fallback
    assert _inv(ctx, inv_id).fallback_reason == "wall-time budget exhausted"


def test_llm_resume_after_approval(ctx: ToolContext, world: World, incident_id: str) -> None:
    with FakeOpenAI(_scripted(incident_id)) as fake:
        _use_llm(ctx, fake)
        inv_id = queue_investigation(ctx, incident_id)
        investigate(ctx, inv_id)
        appr = _approval(ctx, inv_id)
        _approve(ctx, appr.id)
        text = resume(ctx, appr.id)
    assert text == "Report submitted; waiting for approval."
    row = _inv(ctx, inv_id)
    assert row.status == "done"
    action = [c for c in row.tool_calls if c["name"] == "request_action"]
    assert action and action[0]["result"]["status"] in ("executed", "manual", "failed")


def test_function_model_stands_in_for_an_llm(
    ctx: ToolContext, world: World, incident_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic-ai's FunctionModel drives the LLM path without HTTP (same tools, same checks)."""
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models.function import FunctionModel

    from firebreak.agent.offline import collect

    def fn(messages: list[Any], info: Any) -> ModelResponse:
        results = collect(messages)
        subs = [r for n, _, r in results if n == "submit_report"]
        if not subs:  # first try: a fix with a missing parameter, refused with a retry prompt
            bad = _llm_report(incident_id)
            bad["proposed_fix"] = {"action": "rollback", "parameters": {"service": "mailer"}}
            return ModelResponse(parts=[ToolCallPart("submit_report", {"report": bad})])
        if all(isinstance(r, dict) and "error" in r for r in subs):
            assert "missing" in str(subs[-1])
            return ModelResponse(parts=[ToolCallPart("submit_report", {"report": _llm_report(incident_id)})])
        return ModelResponse(parts=[ToolCallPart("request_action", _llm_report(incident_id)["proposed_fix"])])

    monkeypatch.setattr(inv_mod, "make_llm", lambda ctx: FunctionModel(fn, model_name="scripted"))
    ctx.settings.model = "scripted:model"
    inv_id = queue_investigation(ctx, incident_id)
    report = investigate(ctx, inv_id)
    assert not report.fallback and report.proposed_fix is not None
    assert report.proposed_fix.parameters == {"service": "mailer", "to": "4.6.1"}
    assert _inv(ctx, inv_id).status == "awaiting_approval"


@pytest.fixture(autouse=True)
def _no_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
