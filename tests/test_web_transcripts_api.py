"""`/api/transcripts` and the timeline reading shared with the web page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.server.api_transcripts import transcript_steps
from tests.test_web_pages import INCIDENT, RUN, seed

AUTH = {"Authorization": "Bearer tkn"}


@pytest.fixture
def client(ctx: ToolContext) -> Iterator[TestClient]:
    from firebreak.server.app import create_app

    seed(ctx)
    ctx.settings.api_token = SecretStr("tkn")
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def test_list_and_get(client: TestClient) -> None:
    assert client.get("/api/transcripts").status_code == 401
    r = client.get("/api/transcripts", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1 and not body["truncated"]
    t = body["transcripts"][0]
    assert t["id"] == RUN and t["incident_id"] == INCIDENT and t["total_tokens"] == 1500
    assert t["tool_call_count"] == 1 and t["review"]["verdict"] is None
    assert client.get(f"/api/transcripts?incident={INCIDENT}&reviewed=false", headers=AUTH).json()["total"] == 1
    assert client.get("/api/transcripts?reviewed=true", headers=AUTH).json()["total"] == 0
    assert client.get("/api/transcripts?limit=0", headers=AUTH).status_code == 422

    full = client.get(f"/api/transcripts/{RUN}", headers=AUTH).json()
    kinds = [s["kind"] for s in full["steps"]]
    assert kinds == ["system", "user", "model", "tool", "model"]
    call = full["steps"][3]
    assert call["tool"] == "recent_changes" and call["args"] == {"service": "mailer"}
    assert call["result"]["changes"][0]["version"] == "4.6.2" and call["duration_ms"] == 180.0
    assert full["steps"][2]["input_tokens"] == 500 and full["steps"][2]["duration_ms"] == 1000.0
    assert full["report"]["hypotheses"][0]["suspect"]["ref"] == "4.6.2"
    r = client.get("/api/transcripts/nope", headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_review_through_api(client: TestClient) -> None:
    r = client.post(f"/api/transcripts/{RUN}/review", json={"verdict": "right", "reviewer": "carol"},
                    headers=AUTH)
    assert r.status_code == 200 and r.json()["review"]["reviewed_by"] == "carol"
    r = client.post(f"/api/transcripts/{RUN}/review", json={"verdict": "so-so", "reviewer": "carol"},
                    headers=AUTH)
    assert r.status_code == 422 and "verdict" in r.json()["detail"]
    assert client.get("/api/transcripts?reviewed=true", headers=AUTH).json()["total"] == 1


def test_steps_from_tool_call_records_only() -> None:
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    steps = transcript_steps([], [
        {"name": "search_logs", "arguments": {"service": "api"}, "output": {"lines": []},
         "started_at": t0.isoformat(), "finished_at": "2026-03-02T08:00:00.250000+00:00"},
        {"tool": "query_metric", "args": '{"service": "api"}', "error": "unknown metric", "seconds": 0.5},
    ])
    assert [s.tool for s in steps] == ["search_logs", "query_metric"]
    assert steps[0].duration_ms == 250.0 and steps[0].result == {"lines": []}
    assert steps[1].args == {"service": "api"} and steps[1].error == "unknown metric"
    assert steps[1].duration_ms == 500.0


def test_steps_from_role_messages_and_junk() -> None:
    steps = transcript_steps(
        [{"role": "system", "content": "be brief"}, {"role": "assistant", "content": [{"text": "hi"}]}, "odd"],
        None,
    )
    assert [s.kind for s in steps] == ["system", "model", "other"]
    assert steps[1].text == "hi"


def test_offsets_count_from_the_first_step_not_the_simulated_start() -> None:
    # A drill: the investigation started at simulated 2026-03-02 08:45, the messages carry the wall clock.
    wall = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)
    messages = [
        {"kind": "request", "timestamp": wall.isoformat(),
         "parts": [{"part_kind": "user-prompt", "content": "triage", "timestamp": wall.isoformat()}]},
        {"kind": "response", "timestamp": wall.replace(second=2).isoformat(), "model_name": "offline",
         "parts": [{"part_kind": "text", "content": "done"}]},
    ]
    steps = transcript_steps(messages, [])
    assert [s.offset_s for s in steps] == [0.0, 2.0]
    assert transcript_steps([], []) == []
