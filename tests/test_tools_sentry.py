"""Sentry tools: issues from stored webhook payloads, and the REST adapter on recorded answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.state.alerts import Alert
from firebreak.tools.registry import ToolError, call_tool
from firebreak.tools.sentry import SentryAPI, SentryAPIError

DATA = Path(__file__).parent / "data" / "sentry"
API = "https://sentry.example.com"
NOW = datetime(2026, 3, 2, 8, 45, tzinfo=UTC)


def _load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((fixtures_dir / name).read_text())  # type: ignore[no-any-return]


def _store(ctx: ToolContext, raw: dict[str, Any], *, fingerprint: str, service: str, title: str,
           started: datetime, count: int = 1, labels: dict[str, str] | None = None) -> None:
    with ctx.db.session() as s:
        s.add(Alert(
            source="sentry", fingerprint=fingerprint, status="firing", service=service, severity="critical",
            title=title, summary="", started_at=started, labels=labels or {}, links=[], raw=raw,
            received_at=started, last_received_at=started, receive_count=count,
        ))


@pytest.fixture
def stored(ctx: ToolContext, fixtures_dir: Path) -> None:
    issue = _load(fixtures_dir, "sentry-issue-created.docs.json")
    _store(ctx, issue, fingerprint="issue:1170820242", service="front-end", title="ReferenceError: blooopy",
           started=datetime(2019, 8, 19, 20, 58, 37, tzinfo=UTC), labels={"short_id": "FRONT-END-9"})
    event = _load(fixtures_dir, "sentry-event-alert-triggered.docs.json")
    _store(ctx, event, fingerprint="issue:1117540176", service="front-end", title="ReferenceError: heck",
           started=datetime(2019, 8, 19, 21, 6, 17, tzinfo=UTC), count=3)
    metric = _load(fixtures_dir, "sentry-metric-alert-resolved.docs.json")
    _store(ctx, metric, fingerprint="metric_alert:4", service="bar", title="Too many errors",
           started=datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC))


def test_list_from_stored_webhooks(ctx: ToolContext, stored: None) -> None:
    out = call_tool(ctx, "list_sentry_issues", {})
    ids = [i["id"] for i in out["issues"]]
    assert ids == ["1117540176", "1170820242"]  # newest last_seen first; the metric alert is not an issue
    issue = out["issues"][1]
    assert issue["short_id"] == "FRONT-END-9" and issue["culprit"] == "?(runner)" and issue["level"] == "error"
    assert issue["first_seen"].startswith("2019-08-19T20:58:37") and issue["count"] == 1
    event = out["issues"][0]
    assert event["count"] == 3 and event["service"] == "front-end"
    assert event["link"] == "https://sentry.io/organizations/test-org/issues/1117540176/"
    assert out["truncated"] is False and out["total"] == 2
    assert call_tool(ctx, "list_sentry_issues", {"service": "nope"})["issues"] == []
    recent = call_tool(ctx, "list_sentry_issues", {"since": "2019-08-19T21:00:00Z"})
    assert [i["id"] for i in recent["issues"]] == ["1117540176"]
    one = call_tool(ctx, "list_sentry_issues", {"limit": 1})
    assert one["truncated"] is True and len(one["issues"]) == 1


def test_issue_detail_from_event_alert_has_frames(ctx: ToolContext, stored: None) -> None:
    out = call_tool(ctx, "sentry_issue", {"issue_id": "1117540176"})
    assert out["exception_type"] == "ReferenceError" and out["exception_value"] == "heck is not defined"
    assert [f["lineno"] for f in out["frames"]] == [1, 1, 3]
    assert out["frames"][0]["filename"] == "/js/prod/runner-4.1.7.min.js" and out["frames"][0]["in_app"] is False
    assert out["event_id"] == "e4874d664c3540c1a32eab185f12c5ab" and out["source"] == "webhook"
    assert out["tags"]["browser"] == "Chrome 75.0.3770"


def test_issue_by_short_id_and_unknown(ctx: ToolContext, stored: None) -> None:
    out = call_tool(ctx, "sentry_issue", {"issue_id": "front-end-9"})
    assert out["id"] == "1170820242" and out["title"] == "ReferenceError: blooopy is not defined"
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "sentry_issue", {"issue_id": "999"})
    assert exc.value.status == 404 and "1117540176" in exc.value.message
    assert "FIREBREAK_SENTRY_API_URL" in exc.value.message
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "sentry_issue", {"issue_id": ""})
    assert exc.value.status == 422


def _api_settings(ctx: ToolContext, org: str | None = "acme") -> None:
    ctx.settings.sentry_api_url = API + "/api/0/"
    ctx.settings.sentry_api_token = SecretStr("sntrys_test_token_value_0123456789abcdef")
    ctx.settings.sentry_org = org


def _recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@respx.mock
def test_api_issue_detail_from_recorded_responses(ctx: ToolContext) -> None:
    _api_settings(ctx)
    route_issue = respx.get(f"{API}/api/0/organizations/acme/issues/4511/").mock(
        return_value=httpx.Response(200, json=_recorded("api-issue-retrieve.json")))
    respx.get(f"{API}/api/0/organizations/acme/issues/4511/events/latest/").mock(
        return_value=httpx.Response(200, json=_recorded("api-issue-event-latest.json")))
    out = call_tool(ctx, "sentry_issue", {"issue_id": "4511"})
    assert route_issue.calls.last.request.headers["Authorization"].startswith("Bearer sntrys_")
    assert out["source"] == "api" and out["short_id"] == "MAILER-1F" and out["count"] == 340
    assert out["release"] == "4.6.2" and out["level"] == "fatal" and out["status"] == "unresolved"
    assert out["first_seen"].startswith("2026-03-02T08:12:04") and out["last_seen"].startswith("2026-03-02T08:41:30")
    assert [(f["function"], f["lineno"], f["in_app"]) for f in out["frames"]] == [
        ("run", 1010, False), ("process", 57, True), ("schedule_retry", 88, True)]
    assert out["link"] == "https://sentry.example.com/organizations/acme/issues/4511/"
    assert out["tags"]["server_name"] == "mailer-7c9f-2"


@respx.mock
def test_api_errors_are_tool_errors(ctx: ToolContext) -> None:
    _api_settings(ctx)
    respx.get(f"{API}/api/0/organizations/acme/issues/1/").mock(
        return_value=httpx.Response(404, json={"detail": "The requested resource does not exist"}))
    respx.get(f"{API}/api/0/organizations/acme/issues/2/").mock(
        return_value=httpx.Response(401, json={"detail": "Invalid token"}))
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "sentry_issue", {"issue_id": "1"})
    assert exc.value.status == 404
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "sentry_issue", {"issue_id": "2"})
    assert exc.value.status == 502 and "FIREBREAK_SENTRY_API_TOKEN" in exc.value.message
    # the token never appears in an error
    assert "sntrys_test_token" not in exc.value.message


@respx.mock
def test_api_down_falls_back_to_stored(ctx: ToolContext, stored: None) -> None:
    _api_settings(ctx)
    respx.get(f"{API}/api/0/organizations/acme/issues/1117540176/").mock(side_effect=httpx.ConnectError("refused"))
    out = call_tool(ctx, "sentry_issue", {"issue_id": "1117540176"})
    assert out["source"] == "webhook" and "Sentry API not used" in out["note"] and out["frames"]


@respx.mock
def test_api_list_merges_with_stored(ctx: ToolContext, stored: None) -> None:
    _api_settings(ctx)
    route = respx.get(f"{API}/api/0/organizations/acme/issues/").mock(
        return_value=httpx.Response(200, json=_recorded("api-organization-issues.json")))
    out = call_tool(ctx, "list_sentry_issues", {"since": "2019-01-01T00:00:00Z"})
    assert "lastSeen:>2019-01-01T00:00:00" in route.calls.last.request.url.params["query"]
    ids = [i["id"] for i in out["issues"]]
    assert ids[:2] == ["4511", "4377"] and "1117540176" in ids
    mailer = call_tool(ctx, "list_sentry_issues", {"service": "mailer"})
    assert [i["id"] for i in mailer["issues"]] == ["4511"]


@respx.mock
def test_adapter_without_org_uses_legacy_paths() -> None:
    respx.get(f"{API}/api/0/issues/4511/").mock(
        return_value=httpx.Response(200, json=_recorded("api-issue-retrieve.json")))
    respx.get(f"{API}/api/0/issues/4511/events/latest/").mock(return_value=httpx.Response(500, text="boom"))
    api = SentryAPI(API, "tok")
    detail = api.issue_detail("4511")
    assert detail.title == "MemoryError: Cannot allocate memory" and detail.frames == []
    assert "latest event unavailable" in detail.note
    with pytest.raises(SentryAPIError):
        api.list_issues()
    api.close()


@respx.mock
def test_api_short_id_lookup(ctx: ToolContext) -> None:
    _api_settings(ctx)
    issue = _recorded("api-issue-retrieve.json")
    respx.get(f"{API}/api/0/organizations/acme/shortids/MAILER-1F/").mock(return_value=httpx.Response(
        200, json={"organizationSlug": "acme", "projectSlug": "mailer", "groupId": "4511", "group": issue,
                   "shortId": "MAILER-1F"}))
    respx.get(f"{API}/api/0/organizations/acme/issues/4511/").mock(return_value=httpx.Response(200, json=issue))
    respx.get(f"{API}/api/0/organizations/acme/issues/4511/events/latest/").mock(
        return_value=httpx.Response(200, json=_recorded("api-issue-event-latest.json")))
    out = call_tool(ctx, "sentry_issue", {"issue_id": "MAILER-1F"})
    assert out["id"] == "4511" and out["frames"][-1]["function"] == "schedule_retry"

