"""Small canned tool outputs (the shapes docs/TOOLS_CONTRACT.md gives) for the triage tests: one world
with a deploy that breaks a service's pool, red herrings, a third party and traces; one with a
certificate, damaged data and a traffic source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from firebreak.agent.triage.observe import Findings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def pattern(
    service: str,
    template: str,
    *,
    level: str = "ERROR",
    before: int = 0,
    after: int = 300,
    first: float | None = 14,
    example: str | None = None,
) -> dict[str, Any]:
    return {
        "service": service,
        "level": level,
        "template": template,
        "example": example or template,
        "count_before": before,
        "count_after": after,
        "new": before == 0,
        "first_seen": at(first) if first is not None and before == 0 else None,
    }


def anomaly(service: str, name: str, minute: float, before: float, after: float, score: float = 40.0) -> dict[str, Any]:
    return {
        "service": service,
        "name": name,
        "onset": at(minute),
        "before": before,
        "after": after,
        "change_ratio": after / before if before else None,
        "direction": "up" if after > before else "down",
        "score": score,
    }


def pool_world() -> Findings:
    """api 2.0 ('connection pool rewrite') at 10 min exhausts its pool to db from 14 min; web, which calls
    api, fails louder; an unrelated web deploy at 12, a config change on db after the onset, a third party
    with a fallback flag, a memory rise on api, traces showing api's own time grew."""
    f = Findings(now=T0 + timedelta(minutes=40))
    f.incident = {
        "id": "INC-1",
        "title": "web errors",
        "services": ["web"],
        "started_at": at(20),
        "alerts": [
            {
                "service": "web",
                "title": "HighErrorRate",
                "severity": "critical",
                "status": "firing",
                "started_at": at(20),
                "labels": {},
            }
        ],
    }
    f.changes = [
        {
            "id": 1,
            "kind": "deploy",
            "service": "api",
            "at": at(10),
            "version": "2.0",
            "previous_version": "1.9",
            "note": "connection pool rewrite",
        },
        {
            "id": 2,
            "kind": "deploy",
            "service": "web",
            "at": at(12),
            "version": "5.1",
            "previous_version": "5.0",
            "note": "copy changes on settings page",
        },
        {
            "id": 3,
            "kind": "config",
            "service": "db",
            "at": at(30),
            "key": "db.log_level",
            "from_value": "info",
            "to_value": "debug",
        },
        {"id": 4, "kind": "flag", "service": None, "at": at(13), "flag": "web-dark-mode", "variant": "on"},
    ]
    f.flags = [
        {
            "key": "smsco-fallback-provider",
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "default_variant": "off",
            "description": "route SMS to the backup provider",
        },
        {"key": "web-dark-mode", "state": "ENABLED", "variants": {"on": True, "off": False}, "default_variant": "on"},
    ]
    f.flag_events = [{"flag": "web-dark-mode", "at": at(13), "variant": "on", "previous": "off"}]
    f.patterns = [
        pattern("api", "connection pool exhausted talking to db: timeout after <NUM>ms", first=14),
        pattern("web", "upstream api returned 503 for <PATH>", first=15, after=900),
        pattern("web", "sms send failed: smsco timed out", first=16, after=20),
        pattern("db", "slow query took <NUM>ms", level="WARN", before=60, after=62, first=None),
    ]
    f.pattern_window = (T0 + timedelta(minutes=8), 30.0, 32.0)
    f.anomalies = [
        anomaly("api", "process_resident_memory_bytes", 13, 4e8, 9e8),
        anomaly("web", "http_errors_ratio", 15, 0.01, 0.4),
    ]
    f.sentry = [
        {
            "service": "api",
            "title": "PoolTimeout",
            "culprit": "api.db.pool",
            "release": "2.0",
            "level": "error",
            "first_seen": at(14),
            "short_id": "API-1",
        }
    ]
    f.edges = [
        {"service": "web", "depends_on": "api"},
        {"service": "api", "depends_on": "db"},
        {"service": "web", "depends_on": "smsco"},
    ]
    f.similar = [
        {
            "id": "INC-0",
            "service": "api",
            "score": 0.7,
            "root_cause": "deploy 1.4 leaked pool connections",
            "title": "api pool",
        }
    ]
    f.trace_errors = [{"service": "api", "operation": "GET /orders", "errors": 40, "errors_before": 0, "new": True}]
    f.latency = [
        {"service": "api", "before": {"self_ms": 20.0}, "after": {"self_ms": 200.0}, "shift": "own_time_grew"},
        {"service": "web", "before": {"self_ms": 5.0}, "after": {"self_ms": 5.0}, "shift": "waiting_on_callees"},
    ]
    return f


def signals_world() -> Findings:
    """A certificate error naming a host, NULL totals in a table, and one client carrying a request surge."""
    f = Findings(now=T0 + timedelta(minutes=40))
    f.incident = {
        "id": "INC-2",
        "title": "gateway trouble",
        "services": ["gateway"],
        "started_at": at(20),
        "alerts": [
            {
                "service": "gateway",
                "title": "GatewayErrors",
                "severity": "critical",
                "status": "firing",
                "started_at": at(20),
                "labels": {"client_id": "bulkbot-7"},
            }
        ],
    }
    f.changes = [
        {
            "id": 1,
            "kind": "deploy",
            "service": "billing",
            "at": at(5),
            "version": "3.1",
            "previous_version": "3.0",
            "note": "nightly import of invoices",
        }
    ]
    f.patterns = [
        pattern("gateway", "x509: certificate has expired for ledger.internal.example", first=12),
        pattern("billing", "null value in invoice total for table invoices", first=13),
        pattern("reports", "invoice total is NaN reading table invoices", first=14),
        pattern("gateway", "rate limit exceeded client_id=bulkbot-7", first=11, level="WARN"),
    ]
    f.pattern_window = (T0 + timedelta(minutes=8), 30.0, 32.0)
    f.anomalies = [
        anomaly("gateway", "http_requests_per_minute", 10, 100, 600),
        anomaly("billing", "rows_invoices", 13, 1000, 100),
    ]
    f.log_samples = [
        {
            "service": "gateway",
            "text": "client_id",
            "lines": [{"message": "GET /x client_id=bulkbot-7"}] * 8 + [{"message": "GET /y client_id=web"}] * 2,
        }
    ]
    f.edges = [{"service": "gateway", "depends_on": "ledger"}, {"service": "reports", "depends_on": "billing"}]
    return f
