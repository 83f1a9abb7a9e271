"""Incident-log tools (tools/incidents.py): details with alerts, listing, dependency graph."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firebreak.context import ToolContext
from firebreak.memory import incident_log
from firebreak.state.alerts import Alert
from firebreak.tools.registry import ToolError, call_tool

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _seed(ctx: ToolContext) -> str:
    with ctx.db.session() as s:
        old = incident_log.open_incident(
            s, title="Mailer OOM after template cache change", services=["mailer"], severity="major",
            at=datetime(2025, 11, 4, 9, 12, tzinfo=UTC), actor="import", incident_id="INC-2025-031",
            root_cause="unbounded template cache introduced in 4.5.0", root_cause_category="deploy",
        )
        incident_log.set_status(s, old, "resolved", at=datetime(2025, 11, 4, 10, 40, tzinfo=UTC), actor="import")
        incident_log.open_incident(s, title="API latency", services=["api"], severity="minor",
                                   at=T0 - timedelta(days=1), actor="intake")
        inc = incident_log.open_incident(
            s, title="Bulk email sending stopped", services=["mailer"], severity="critical",
            at=T0 + timedelta(minutes=41), actor="intake", started_at=T0 + timedelta(minutes=15), source="grafana",
        )
        for i, (source, title) in enumerate((("grafana", "MailerMemoryHigh"), ("sentry", "MemoryError"))):
            s.add(Alert(
                source=source, fingerprint=f"fp{i}", status="firing", service="mailer", severity="critical",
                title=title, summary="contact ops: oncall@example.com", started_at=T0 + timedelta(minutes=41 + i),
                labels={"team": "ops"}, links=[{"kind": source, "url": "https://grafana.example/d/x"}], raw={},
                received_at=T0, last_received_at=T0, receive_count=2, incident_id=inc.id,
            ))
        incident_log.add_countermeasure(s, inc, what="restarted mailer", by="alice", at=T0 + timedelta(minutes=43))
        return inc.id


def test_incident_details(ctx: ToolContext) -> None:
    inc_id = _seed(ctx)
    out = call_tool(ctx, "incident_details", {"incident_id": inc_id})
    assert out["title"] == "Bulk email sending stopped" and out["services"] == ["mailer"]
    assert out["started_at"].startswith("2026-03-02T08:15") and out["severity"] == "critical"
    assert [a["title"] for a in out["alerts"]] == ["MailerMemoryHigh", "MemoryError"]
    assert out["alerts"][0]["labels"] == {"team": "ops"} and out["alerts_total"] == 2
    assert out["alerts"][0]["summary"] == "contact ops: [REDACTED:email]"
    assert out["countermeasures"][0]["what"] == "restarted mailer"
    assert out["timeline"][0]["kind"] == "created"
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "incident_details", {"incident_id": "INC-1999-001"})
    assert exc.value.status == 404 and inc_id in exc.value.message


def test_list_incidents(ctx: ToolContext) -> None:
    inc_id = _seed(ctx)
    out = call_tool(ctx, "list_incidents", {})
    assert out["incidents"][0]["id"] == inc_id and out["total"] == 3
    mailer = call_tool(ctx, "list_incidents", {"service": "mailer"})
    assert [i["id"] for i in mailer["incidents"]] == [inc_id, "INC-2025-031"]
    assert mailer["incidents"][1]["root_cause"].startswith("unbounded template cache")
    resolved = call_tool(ctx, "list_incidents", {"status": "resolved"})
    assert [i["id"] for i in resolved["incidents"]] == ["INC-2025-031"]
    recent = call_tool(ctx, "list_incidents", {"since": "2026-01-01T00:00:00Z", "limit": 1})
    assert len(recent["incidents"]) == 1 and recent["truncated"] is True
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "list_incidents", {"status": "closed"})
    assert exc.value.field == "status"


def test_service_dependencies(ctx: ToolContext) -> None:
    assert "no dependencies configured" in call_tool(ctx, "service_dependencies", {})["note"]
    ctx.settings.dependencies = {"api": ["mailer", "postgres"], "mailer": ["postgres", "smtp-relay"]}
    everything = call_tool(ctx, "service_dependencies", {})
    assert len(everything["edges"]) == 4
    out = call_tool(ctx, "service_dependencies", {"service": "mailer"})
    assert {(e["service"], e["depends_on"]) for e in out["edges"]} == {
        ("api", "mailer"), ("mailer", "postgres"), ("mailer", "smtp-relay")}
    assert out["depends_on"] == ["postgres", "smtp-relay"] and out["dependents"] == ["api"]
    assert call_tool(ctx, "service_dependencies", {"service": "postgres"})["dependents"] == ["api", "mailer"]
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "service_dependencies", {"service": "mailr"})
    assert exc.value.status == 404 and "mailer" in exc.value.message
