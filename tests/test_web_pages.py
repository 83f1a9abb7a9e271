"""The web page through FastAPI's TestClient: sign-in, CSRF, incident, approvals, indicators, review."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Hypothesis, Suspect, TriageReport
from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.server.users import add_user
from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.drills import DrillRun
from firebreak.state.investigations import Investigation

INCIDENT = "INC-2026-001"
APPROVAL = "apr-web-1"
RUN = "inv-web-1"


def seed(ctx: ToolContext, *, approvers: tuple[str, ...] = ("alice",)) -> None:
    """An incident with two alerts, a report, a transcript, a pending approval, a drill run and two users."""
    ctx.settings.approvers = list(approvers)
    now = ctx.clock.now()
    t0 = now - timedelta(minutes=40)
    report = TriageReport(
        summary="Mailer 4.6.2 retries jobs forever and runs out of memory.",
        severity="major", severity_reason="bulk email stopped for every customer",
        user_impact="campaign emails delayed",
        symptoms=["mailer memory at 95%", "MemoryError in Sentry"],
        hypotheses=[
            Hypothesis(
                title="Deploy 4.6.2 broke the retry limit", confidence=0.82, status="likely",
                suspect=Suspect(kind="deploy", service="mailer", ref="4.6.2"),
                evidence=[
                    Evidence(tool="recent_changes", finding="mailer 4.6.2 deployed 2 min before onset",
                             ref="change 7"),
                    Evidence(tool="log_patterns", finding="new pattern: retry attempt N for job J",
                             link="http://grafana.local/d/mailer"),
                    Evidence(tool="sentry_issue", finding="javascript link is not rendered",
                             link="javascript:alert(1)"),
                ],
                confirm="attempt counts above max_attempts", rule_out="same errors before 4.6.2",
            ),
            Hypothesis(
                title="Memory leak in the template cache", confidence=0.2,
                suspect=Suspect(kind="resource", service="mailer", ref="memory"),
            ),
        ],
        proposed_fix=ProposedFix(action="rollback", parameters={"service": "mailer", "to": "4.6.1"},
                                 rationale="4.6.1 ran fine for weeks", risk="low", undo="redeploy 4.6.2"),
    )
    with ctx.db.session() as s:
        inc = incident_log.open_incident(
            s, title="Bulk email sending stopped", services=["mailer"], severity="major", at=t0, actor="intake",
            started_at=t0 - timedelta(minutes=5), incident_id=INCIDENT, source="alert",
        )
        inc.report = report.model_dump(mode="json")
        for i, (src, title) in enumerate([("grafana", "MailerMemoryHigh"), ("sentry", "MemoryError")]):
            s.add(Alert(source=src, fingerprint=f"fp-{i}", status="firing", service="mailer", severity="critical",
                        title=title, summary="memory above 90%", started_at=t0, labels={}, raw={},
                        links=[{"kind": "dashboard", "url": "http://grafana.local/d/mailer", "label": "dashboard"}],
                        received_at=t0, last_received_at=t0, incident_id=INCIDENT))
        s.add(Investigation(
            id=RUN, incident_id=INCIDENT, status="done", model="test:model", queued_at=t0, started_at=t0,
            finished_at=t0 + timedelta(seconds=3), wall_seconds=3.0, report=inc.report,
            usage={"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500, "requests": 2},
            messages=[
                {"kind": "request", "timestamp": t0.isoformat(), "parts": [
                    {"part_kind": "system-prompt", "content": "You are an incident investigator."},
                    {"part_kind": "user-prompt", "content": "Incident INC-2026-001: bulk email stopped"}]},
                {"kind": "response", "timestamp": (t0 + timedelta(seconds=1)).isoformat(), "model_name": "test:model",
                 "usage": {"input_tokens": 500, "output_tokens": 40}, "parts": [
                     {"part_kind": "text", "content": "Checking recent changes first."},
                     {"part_kind": "tool-call", "tool_name": "recent_changes", "tool_call_id": "c1",
                      "args": '{"service": "mailer"}'}]},
                {"kind": "request", "timestamp": (t0 + timedelta(seconds=1.2)).isoformat(), "parts": [
                    {"part_kind": "tool-return", "tool_name": "recent_changes", "tool_call_id": "c1",
                     "content": {"changes": [{"kind": "deploy", "version": "4.6.2"}], "truncated": False},
                     "timestamp": (t0 + timedelta(seconds=1.2)).isoformat()}]},
                {"kind": "response", "timestamp": (t0 + timedelta(seconds=3)).isoformat(), "model_name": "test:model",
                 "usage": {"input_tokens": 700, "output_tokens": 260}, "parts": [
                     {"part_kind": "text", "content": "The deploy of 4.6.2 is the likely culprit."}]},
            ],
            tool_calls=[{"tool": "recent_changes", "tool_call_id": "c1", "args": {"service": "mailer"},
                         "duration_ms": 180.0, "at": (t0 + timedelta(seconds=1)).isoformat()}],
        ))
        s.add(Approval(
            id=APPROVAL, incident_id=INCIDENT, investigation_id=RUN, tool_call_id="fix-1", action="rollback",
            parameters={"service": "mailer", "to": "4.6.1"}, rationale="4.6.1 ran fine for weeks",
            status="pending", requested_at=t0 + timedelta(seconds=4), idempotency_key=f"{INCIDENT}:{RUN}:fix-1",
        ))
        s.add(DrillRun(id="drill-1", scenario_id="mailer-retry-loop", person="agent", mode="agent",
                       started_at=now - timedelta(days=1), finished_at=now - timedelta(days=1) + timedelta(seconds=5),
                       result={"rank": 1, "hit_at_1": True, "hit_at_3": True, "mitigation_ok": True,
                               "severity_ok": False, "wall_seconds": 4.2}))
        add_user(s, "alice", "alice-password", at=now)
        add_user(s, "bob", "bob-password!", at=now)


@pytest.fixture
def client(ctx: ToolContext) -> Iterator[TestClient]:
    from firebreak.server.app import create_app

    seed(ctx)
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf token in the page"
    return m.group(1)


def sign_in(c: TestClient, name: str, password: str) -> None:
    page = c.get("/login")
    r = c.post("/login", data={"name": name, "password": password, "csrf": csrf_of(page.text), "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text


def test_pages_need_sign_in(client: TestClient) -> None:
    for path in ("/", f"/incidents/{INCIDENT}", "/indicators", "/drills", "/transcripts", f"/transcripts/{RUN}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")


def test_wrong_password_and_missing_csrf_are_refused(client: TestClient) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"name": "alice", "password": "nope-nope", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "Wrong name or password" in r.text
    r = client.post("/login", data={"name": "alice", "password": "alice-password", "csrf": "forged"})
    assert r.status_code == 403 and "csrf" in r.json()["detail"]
    assert client.get("/", follow_redirects=False).status_code == 303


def test_forged_cookie_is_ignored(client: TestClient) -> None:
    sign_in(client, "alice", "alice-password")
    cookie = client.cookies.get("firebreak_session")
    assert cookie
    body, _, mac = cookie.rpartition(".")
    client.cookies.clear()
    client.cookies.set("firebreak_session", body + "." + ("0" * len(mac)))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_in_redirects_only_to_local_paths(client: TestClient) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"name": "bob", "password": "bob-password!", "csrf": csrf_of(page.text),
                                    "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_incident_list_and_page(client: TestClient) -> None:
    sign_in(client, "bob", "bob-password!")
    r = client.get("/")
    assert r.status_code == 200
    assert INCIDENT in r.text and "Bulk email sending stopped" in r.text and "1 to approve" in r.text
    r = client.get(f"/incidents/{INCIDENT}")
    assert r.status_code == 200
    html = r.text
    assert "Deploy 4.6.2 broke the retry limit" in html and "82%" in html
    assert html.index("Deploy 4.6.2 broke") < html.index("Memory leak in the template cache")
    assert 'href="http://grafana.local/d/mailer"' in html
    assert "javascript:alert" not in html  # evidence links are only http(s)
    assert "MailerMemoryHigh" in html and "rollback(service=mailer, to=4.6.1)" in html
    assert f'href="/transcripts/{RUN}"' in html
    assert "Incident opened" in html  # timeline
    assert "not in FIREBREAK_APPROVERS" in html  # bob is warned before he clicks
    assert client.get("/incidents/INC-1999-999").status_code == 404


def test_non_approver_is_refused_and_approver_decides_once(client: TestClient, ctx: ToolContext) -> None:
    sign_in(client, "bob", "bob-password!")
    page = client.get(f"/incidents/{INCIDENT}")
    url = f"/incidents/{INCIDENT}/approvals/{APPROVAL}"
    r = client.post(url, data={"decision": "approve", "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "not allowed to approve" in r.text
    with ctx.db.session() as s:
        assert s.get(Approval, APPROVAL).status == "pending"  # type: ignore[union-attr]

    client.cookies.clear()
    sign_in(client, "alice", "alice-password")
    page = client.get(f"/incidents/{INCIDENT}")
    assert client.post(url, data={"decision": "approve", "csrf": "stale"}).status_code == 403
    r = client.post(url, data={"decision": "approve", "csrf": csrf_of(page.text)})
    assert r.status_code == 200
    with ctx.db.session() as s:
        row = s.get(Approval, APPROVAL)
        assert row is not None and row.status not in ("pending", "rejected")
        assert row.decided_by == "alice" and row.decided_at is not None
    assert "by <strong>alice</strong>" in r.text
    r = client.post(url, data={"decision": "reject", "csrf": csrf_of(r.text)})
    assert "error:" in r.text  # a second decision changes nothing
    with ctx.db.session() as s:
        assert s.get(Approval, APPROVAL).decision == "approve"  # type: ignore[union-attr]


def test_bad_decision_value(client: TestClient) -> None:
    sign_in(client, "alice", "alice-password")
    page = client.get(f"/incidents/{INCIDENT}")
    r = client.post(f"/incidents/{INCIDENT}/approvals/{APPROVAL}", data={"decision": "maybe",
                                                                        "csrf": csrf_of(page.text)})
    assert "decision must be approve or reject" in r.text
    r = client.post(f"/incidents/{INCIDENT}/approvals/nope", data={"decision": "approve",
                                                                  "csrf": csrf_of(r.text)})
    assert "no approval nope" in r.text


def test_transcript_timeline_and_review(client: TestClient, ctx: ToolContext) -> None:
    sign_in(client, "bob", "bob-password!")
    r = client.get("/transcripts")
    assert RUN in r.text and "1500" in r.text
    r = client.get(f"/transcripts/{RUN}")
    html = r.text
    assert r.status_code == 200
    assert "Checking recent changes first." in html and "recent_changes" in html
    assert "180 ms" in html and "500 in / 40 out tokens" in html
    assert "&#34;service&#34;: &#34;mailer&#34;" in html or "&quot;service&quot;" in html
    assert "<details class=\"result\">" in html and "4.6.2" in html
    r = client.post(f"/transcripts/{RUN}/review", data={"verdict": "wrong", "note": "missed the flag",
                                                        "csrf": csrf_of(html)})
    assert "Review saved: wrong" in r.text and "missed the flag" in r.text
    with ctx.db.session() as s:
        inv = s.get(Investigation, RUN)
        assert inv is not None and inv.review_verdict == "wrong" and inv.reviewed_by == "bob"
        assert inv.review_note == "missed the flag"
    r = client.post(f"/transcripts/{RUN}/review", data={"verdict": "meh", "csrf": csrf_of(r.text)})
    assert "verdict: choose right or wrong" in r.text
    assert "reviewed" in client.get("/transcripts?reviewed=yes").text


def test_indicators_and_drills(client: TestClient, ctx: ToolContext) -> None:
    with ctx.db.session() as s:
        inc = incident_log.get_incident(s, INCIDENT)
        incident_log.set_status(s, inc, "mitigated", at=ctx.clock.now() - timedelta(minutes=5), actor="alice")
    sign_in(client, "alice", "alice-password")
    r = client.get("/indicators?weeks=4")
    assert r.status_code == 200
    assert r.text.count("<svg") == 2 and "<rect" in r.text
    assert "40 min" in r.text  # MTTM: started 45 min before now, mitigated 5 min before now
    r = client.get("/drills")
    assert "mailer-retry-loop" in r.text and "4.2 s" in r.text


def test_static_css_and_no_path_escape(client: TestClient) -> None:
    r = client.get("/static/app.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert client.get("/static/..%2Fweb.py").status_code == 404


def test_sign_out(client: TestClient) -> None:
    sign_in(client, "alice", "alice-password")
    page = client.get("/")
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_odd_report_and_empty_transcript_still_render(client: TestClient, ctx: ToolContext) -> None:
    """Reports and runs written by other investigator versions: missing fields render as blanks."""
    with ctx.db.session() as s:
        inc = incident_log.get_incident(s, INCIDENT)
        inc.report = {"summary": "partial <b>report</b>", "hypotheses": [{"title": "no suspect here"}]}
        s.add(Investigation(id="inv-empty", incident_id=INCIDENT, status="failed", queued_at=ctx.clock.now(),
                            messages=[], tool_calls=[], usage={}, error="model unreachable"))
    sign_in(client, "bob", "bob-password!")
    r = client.get(f"/incidents/{INCIDENT}")
    assert r.status_code == 200 and "no suspect here" in r.text
    assert "partial &lt;b&gt;report&lt;/b&gt;" in r.text  # escaped, never markup
    r = client.get("/transcripts/inv-empty")
    assert r.status_code == 200 and "model unreachable" in r.text and "recorded no message" in r.text
    assert client.get("/transcripts/nope").status_code == 404


def test_signed_in_session_reaches_the_api(client: TestClient, ctx: ToolContext) -> None:
    from pydantic import SecretStr

    ctx.settings.api_token = SecretStr("some-token")
    assert client.get("/api/tools").status_code == 401
    sign_in(client, "bob", "bob-password!")
    assert client.get("/api/tools").status_code == 200


def test_dashboard_page_draws_each_panel_from_the_metric_store(client: TestClient, ctx: ToolContext) -> None:
    from firebreak.tools.metric_store import Dashboard, MetricPoint, Panel, get_metric_store

    store = get_metric_store(ctx)
    now = ctx.clock.now()
    store.ingest(MetricPoint(ts=now - timedelta(minutes=m), service="mailer", name="memory_bytes",
                             value=1e8 + (30 - m) * 1e6) for m in range(30))
    store.upsert_dashboard(Dashboard(uid="mailer-overview", title="Mailer overview", panels=[
        Panel(title="Memory", service="mailer", metric="memory_bytes"),
        Panel(title="Missing", service="mailer", metric="no_such_metric")]))
    sign_in(client, "bob", "bob-password!")
    page = client.get("/dashboards/mailer-overview")
    assert page.status_code == 200
    assert "Mailer overview" in page.text and "<polyline" in page.text and 'id="panel-1"' in page.text
    assert "no_such_metric" in page.text  # the second panel says why it is empty instead of failing
    assert client.get("/dashboards/nope").status_code == 404
