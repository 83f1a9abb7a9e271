"""Synthetic tool worlds for the agent tests: canned tool outputs in the contract's shapes.

Each world stands in for the registry (tools/*.py belong to other areas and use real stores); the
investigator sees the same tool names, schemas and JSON it sees in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from firebreak.agent.triage.observe import Findings
from firebreak.tools.registry import ToolError, ToolSpec


class AnyInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class AnyOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class World:
    start: datetime
    incident: dict[str, Any] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    patterns: list[dict[str, Any]] = field(default_factory=list)
    sentry: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    flag_events: list[dict[str, Any]] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def at(self, minutes: float) -> str:
        return iso(self.start + timedelta(minutes=minutes))

    def deploy(self, m: float, service: str, version: str, previous: str, note: str = "") -> None:
        self.changes.append(
            {
                "id": len(self.changes) + 1,
                "kind": "deploy",
                "service": service,
                "at": self.at(m),
                "version": version,
                "previous_version": previous,
                "note": note,
            }
        )

    def config(self, m: float, service: str, key: str, old: Any, new: Any) -> None:
        self.changes.append(
            {
                "id": len(self.changes) + 1,
                "kind": "config",
                "service": service,
                "at": self.at(m),
                "key": key,
                "from_value": old,
                "to_value": new,
                "note": "",
            }
        )

    def flag(self, m: float, flag: str, variant: str | None = None, state: str | None = None) -> None:
        self.changes.append(
            {
                "id": len(self.changes) + 1,
                "kind": "flag",
                "service": None,
                "at": self.at(m),
                "flag": flag,
                "variant": variant,
                "state": state,
                "note": "",
            }
        )
        self.flag_events.append({"flag": flag, "at": self.at(m), "variant": variant, "state": state, "previous": "off"})

    def infra(self, m: float, service: str, note: str) -> None:
        self.changes.append(
            {"id": len(self.changes) + 1, "kind": "infra", "service": service, "at": self.at(m), "note": note}
        )

    def anomaly(self, m: float, service: str, name: str, before: float, after: float) -> None:
        ratio = after / before if before else 10.0
        self.anomalies.append(
            {
                "service": service,
                "name": name,
                "onset": self.at(m),
                "before": before,
                "after": after,
                "change_ratio": ratio,
                "direction": "up" if after > before else "down",
                "score": abs(ratio),
            }
        )

    def pattern(
        self,
        service: str,
        level: str,
        template: str,
        before: int,
        after: int,
        first: float | None = None,
        example: str | None = None,
    ) -> None:
        self.patterns.append(
            {
                "template": template,
                "service": service,
                "level": level,
                "count_before": before,
                "count_after": after,
                "first_seen": self.at(first if first is not None else -60),
                "new": before == 0,
                "example": example or template,
            }
        )

    def alert(
        self,
        m: float,
        service: str,
        title: str,
        severity: str = "critical",
        source: str = "grafana",
        status: str = "firing",
        labels: dict[str, str] | None = None,
        summary: str = "",
    ) -> None:
        self.incident.setdefault("alerts", []).append(
            {
                "source": source,
                "service": service,
                "title": title,
                "summary": summary,
                "severity": severity,
                "status": status,
                "started_at": self.at(m),
                "labels": labels or {},
                "links": [],
            }
        )

    def sentry_issue(self, m: float, service: str, title: str, release: str, culprit: str = "") -> None:
        self.sentry.append(
            {
                "id": str(len(self.sentry) + 1),
                "short_id": f"S-{len(self.sentry) + 1}",
                "title": title,
                "culprit": culprit,
                "level": "error",
                "release": release,
                "count": 100,
                "first_seen": self.at(m),
                "last_seen": self.at(m + 5),
                "service": service,
                "link": f"https://sentry.example/issues/{len(self.sentry) + 1}",
            }
        )

    # -- the fake registry ------------------------------------------------------------------

    def answer(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, args))
        if name in self.broken:
            raise ToolError(f"{name}: backend unavailable", status=503)
        if name == "incident_details":
            if args.get("incident_id") != self.incident.get("id"):
                raise ToolError("incident_id: unknown incident", status=404)
            return self.incident
        if name == "recent_changes":
            return {"changes": self.changes, "truncated": False}
        if name == "metric_anomalies":
            return {"anomalies": sorted(self.anomalies, key=lambda a: a["onset"]), "truncated": False}
        if name == "log_patterns":
            return {"patterns": self.patterns, "truncated": False}
        if name == "list_sentry_issues":
            return {"issues": self.sentry, "truncated": False}
        if name == "service_dependencies":
            return {"edges": self.edges}
        if name == "list_flags":
            return {"flags": self.flags}
        if name == "flag_history":
            return {"events": self.flag_events, "truncated": False}
        if name == "similar_incidents":
            return {"hits": self.similar}
        if name == "list_dashboards":
            return {"dashboards": []}
        if name == "search_logs":
            return {"lines": [], "total": 0, "truncated": False}
        raise ToolError(f"unknown tool {name}", status=404)

    def specs(self) -> dict[str, ToolSpec]:
        names = [
            "incident_details",
            "recent_changes",
            "metric_anomalies",
            "log_patterns",
            "list_sentry_issues",
            "service_dependencies",
            "list_flags",
            "flag_history",
            "similar_incidents",
            "list_dashboards",
            "search_logs",
        ]
        return {
            n: ToolSpec(
                name=n,
                family="test",
                kind="query",
                description=f"{n} (test double)",
                input_model=AnyInput,
                output_model=AnyOutput,
                fn=lambda ctx, a: AnyOutput(),
            )
            for n in names
        }


def mailer_like(start: datetime, incident_id: str) -> World:
    """A retry-loop deploy with an unrelated deploy and a flag flip elsewhere (red herrings)."""
    w = World(start=start)
    w.incident = {
        "id": incident_id,
        "title": "Mailer memory high",
        "services": ["mailer"],
        "status": "open",
        "started_at": w.at(41),
    }
    w.edges = [
        {"service": "mailer", "depends_on": "postgres"},
        {"service": "mailer", "depends_on": "smtp-relay"},
        {"service": "api", "depends_on": "postgres"},
    ]
    w.deploy(10, "mailer", "4.6.2", "4.6.1", "retry policy rewrite")
    w.deploy(14, "api", "2.31.1", "2.31.0", "copy changes on settings page")
    w.flag(20, "api-campaign-preview", variant="on")
    w.pattern("mailer", "INFO", "sent batch <*> of <*> mails in <*>ms", 1500, 1800)
    w.pattern("mailer", "WARN", "smtp-relay slow answer <*>ms", 150, 170)
    w.pattern("mailer", "ERROR", "retry attempt <*> for job <*>: smtp timeout after <*>ms", 0, 9000, first=12)
    w.pattern("mailer", "ERROR", "scheduler worker <*> killed: out of memory", 0, 60, first=38)
    w.pattern("api", "WARN", "slow query on campaigns took <*>ms", 300, 330)
    w.anomaly(16, "mailer", "process_resident_memory_bytes", 4.0e8, 3.8e9)
    w.anomaly(38, "mailer", "mails_sent_per_minute", 900, 0.0)
    w.alert(41, "mailer", "MailerMemoryHigh")
    w.alert(42, "mailer", "MemoryError: Cannot allocate memory", source="sentry", severity="critical")
    w.alert(43, "mailer", "MailerThroughputZero")
    w.sentry_issue(42, "mailer", "MemoryError: Cannot allocate memory", "4.6.2", "mailer.jobs.retry in schedule_retry")
    return w


def world_findings(
    w: World, *, now: datetime, pivot: datetime, samples: list[dict[str, Any]] | None = None
) -> Findings:
    """The investigator's Findings for a synthetic world, as the offline model would gather them."""
    f = Findings(now=now, incident=w.incident, changes=w.changes, anomalies=w.anomalies, patterns=w.patterns,
                 sentry=w.sentry, edges=w.edges, flags=w.flags, flag_events=w.flag_events, similar=w.similar)
    f.pattern_window = (pivot, 30.0, 40.0)
    f.log_samples = samples or []
    return f
