"""`GET /api/incidents` and `/api/incidents/{id}`: auth, alerts with `alert_count`, approvals, bounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory.incident_log import add_countermeasure, get_incident
from firebreak.server.intake.service import ingest_alerts
from firebreak.state.approvals import Approval
from tests.test_intake_common import API_TOKEN, alert, bearer, client, configure, fixture_bytes

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_api_needs_the_token(ctx: ToolContext) -> None:
    c = client(ctx)
    r = c.get("/api/incidents")
    assert r.status_code == 401 and "FIREBREAK_API_TOKEN" in r.json()["detail"]
    configure(ctx)
    assert c.get("/api/incidents").status_code == 401
    assert c.get("/api/incidents", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/incidents", headers=AUTH).status_code == 200


def test_incident_detail_after_alertmanager_delivery(ctx: ToolContext, fixtures_dir: Path, clock: FixedClock) -> None:
    configure(ctx)
    c = client(ctx)
    body = fixture_bytes(fixtures_dir, "alertmanager-0.25.0-webhook-firing.json")
    inc_id = c.post("/webhooks/alertmanager", content=body, headers=bearer()).json()["incidents_opened"][0]
    with ctx.db.session() as s:
        inc = get_incident(s, inc_id)
        inc.report = {"summary": "checkout 5xx", "severity": "critical", "hypotheses": []}
        s.add(Approval(id="ap1", incident_id=inc_id, action="rollback", parameters={"service": "checkout",
                       "to": "8.2.0"}, rationale="deploy 8.3.0", status="pending", requested_at=clock.now(),
                       idempotency_key="k1"))
        add_countermeasure(s, inc, what="rolled back", by="alice", at=clock.now(), worked=True)

    listing = c.get("/api/incidents", headers=AUTH).json()
    assert listing["total"] == 1 and not listing["truncated"]
    (item,) = listing["incidents"]
    assert item["id"] == inc_id and item["alert_count"] == 2 and len(item["alerts"]) == 2
    assert item["alerts"][0]["raw"] is None

    detail = c.get(f"/api/incidents/{inc_id}", headers=AUTH).json()
    assert detail["alert_count"] == 2 and detail["severity"] == "critical" and detail["status"] == "open"
    assert {a["fingerprint"] for a in detail["alerts"]} == {"3ad9878359a0f14f", "711c95e367dfcd66"}
    assert detail["report"]["summary"] == "checkout 5xx"
    (ap,) = detail["approvals"]
    assert ap["action"] == "rollback" and ap["parameters"]["to"] == "8.2.0" and ap["status"] == "pending"
    assert ap["decided_by"] is None and ap["requested_at"].startswith("2026-03-02T08:45")
    assert detail["countermeasures"][0]["what"] == "rolled back"
    assert detail["remediations"] == []
    kinds = [t["kind"] for t in detail["timeline"]]
    assert kinds[0] == "created" and kinds.count("alert") == 2
    (inv,) = detail["investigations"]
    assert inv["status"] == "queued"
    raw = c.get(f"/api/incidents/{inc_id}?include_raw=true", headers=AUTH).json()
    assert raw["alerts"][0]["raw"]["labels"]["job"] == "checkout"


def test_list_filters_and_bounds(ctx: ToolContext, clock: FixedClock) -> None:
    configure(ctx)
    now = clock.now()
    ingest_alerts(ctx, [alert("api", f"a{i}", now) for i in range(30)])
    clock.advance(timedelta(hours=1))
    ingest_alerts(ctx, [alert("web", "w", clock.now())])
    c = client(ctx)
    body = c.get("/api/incidents?service=api&alerts_limit=5", headers=AUTH).json()
    assert body["total"] == 1
    assert body["incidents"][0]["alert_count"] == 30 and len(body["incidents"][0]["alerts"]) == 5
    assert [i["services"] for i in c.get("/api/incidents", headers=AUTH).json()["incidents"]] == [["web"], ["api"]]
    assert c.get("/api/incidents?limit=1", headers=AUTH).json()["truncated"] is True
    since = (now + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert c.get(f"/api/incidents?since={since}", headers=AUTH).json()["total"] == 1
    api_id = body["incidents"][0]["id"]
    detail = c.get(f"/api/incidents/{api_id}?alerts_limit=10&timeline_limit=3", headers=AUTH).json()
    assert detail["alerts_truncated"] and len(detail["alerts"]) == 10
    assert detail["timeline_truncated"] and len(detail["timeline"]) == 3 and detail["timeline_count"] > 30


def test_bad_queries_are_4xx(ctx: ToolContext) -> None:
    configure(ctx)
    c = client(ctx)
    r = c.get("/api/incidents/INC-1999-999", headers=AUTH)
    assert r.status_code == 404 and "INC-1999-999" in r.json()["detail"]
    assert c.get("/api/incidents?status=bogus", headers=AUTH).status_code == 422
    assert c.get("/api/incidents?limit=0", headers=AUTH).status_code == 422
    r = c.get("/api/incidents?since=2026-03-02T08:00:00", headers=AUTH)
    assert r.status_code == 422 and "since" in r.json()["detail"]
