"""What the memory index stores and answers: records (incidents, runbook sections, Slack threads), hits, stats.

Kept apart from the index service so importers (runbook and Slack parsers, the CLI) can build records
without loading chromadb or the embedding model.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from firebreak.state.incidents import Incident

Kind = Literal["incident", "runbook", "slack"]
Mode = Literal["hybrid", "dense", "lexical"]


class MemoryError_(RuntimeError):
    """The index cannot be opened or written (bad Chroma URL, unreadable files)."""


class MemoryRecord(BaseModel):
    """One searchable unit: an incident, a runbook section or a Slack thread."""

    id: str
    kind: Kind
    title: str
    text: str
    source: str = Field(description="where it came from: incident log, a file path and heading, a Slack channel")
    services: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None
    severity: str | None = None
    root_cause: str = ""
    countermeasures: list[str] = Field(default_factory=list)
    # Long-term fixes (remediations, the post-mortem's action items) with their state.
    action_items: list[str] = Field(default_factory=list)
    url: str | None = None
    origin: str | None = Field(default=None, description="file or channel it was imported from")
    last_countermeasure_id: int = 0
    last_remediation_id: int = 0

    def content_hash(self) -> str:
        data = self.model_dump(mode="json", exclude={"updated_at"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]

    def to_metadata(self, digest: str | None = None) -> dict[str, Any]:
        """Chroma metadata: scalars only; services also as boolean keys so `where` can filter on them.
        `digest`: the content hash when the caller has it already."""
        meta: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title[:500],
            "source": self.source[:500],
            "services": json.dumps(self.services),
            "root_cause": self.root_cause[:2000],
            "countermeasures": json.dumps(self.countermeasures),
            "action_items": json.dumps(self.action_items),
            "hash": digest or self.content_hash(),
        }
        for key, value in (
            ("status", self.status),
            ("severity", self.severity),
            ("url", self.url),
            ("origin", self.origin),
        ):
            if value:
                meta[key] = value
        if self.started_at is not None:
            meta["started_ts"] = int(self.started_at.timestamp())
            meta["started_at"] = self.started_at.isoformat()
        if self.updated_at is not None:
            meta["updated_at"] = self.updated_at.isoformat()
        if self.last_countermeasure_id:
            meta["cm_id"] = self.last_countermeasure_id
        if self.last_remediation_id:
            meta["rem_id"] = self.last_remediation_id
        for svc in self.services:
            meta[service_key(svc)] = True
        return meta

    @classmethod
    def from_chroma(cls, rid: str, document: str, meta: dict[str, Any]) -> MemoryRecord:
        started = meta.get("started_at")
        updated = meta.get("updated_at")
        return cls(
            id=rid,
            kind=meta.get("kind", "incident"),
            title=meta.get("title", ""),
            text=document or "",
            source=meta.get("source", ""),
            services=json.loads(meta.get("services") or "[]"),
            started_at=datetime.fromisoformat(started) if started else None,
            updated_at=datetime.fromisoformat(updated) if updated else None,
            status=meta.get("status"),
            severity=meta.get("severity"),
            root_cause=meta.get("root_cause", ""),
            countermeasures=json.loads(meta.get("countermeasures") or "[]"),
            action_items=json.loads(meta.get("action_items") or "[]"),
            url=meta.get("url"),
            origin=meta.get("origin"),
            last_countermeasure_id=int(meta.get("cm_id", 0)),
            last_remediation_id=int(meta.get("rem_id", 0)),
        )


def service_key(service: str) -> str:
    """The boolean metadata key that marks records naming `service` (chroma filters on it)."""
    return "svc:" + service.strip().lower()


def incident_record(inc: Incident) -> MemoryRecord:
    """The text of an incident-log entry as it is embedded: title first, then what a responder reads."""
    services = [str(s) for s in (inc.services or [])]
    cms = [c.what for c in inc.countermeasures]
    rems = [r.what + (f" ({r.verification})" if r.verification else "") for r in inc.remediations]
    lines = [inc.title.strip()]
    if services:
        lines.append("Services: " + ", ".join(services))
    if inc.symptoms:
        lines.append("Symptoms: " + inc.symptoms.strip())
    if inc.user_impact:
        lines.append("Impact: " + inc.user_impact.strip())
    if inc.root_cause:
        cat = f" ({inc.root_cause_category})" if inc.root_cause_category not in ("", "unknown") else ""
        lines.append(f"Root cause{cat}: " + inc.root_cause.strip())
    report = inc.report or {}
    if not inc.root_cause and isinstance(report, dict) and report.get("summary"):
        lines.append("Triage summary: " + str(report["summary"]).strip())
    if cms:
        lines.append("Countermeasures: " + "; ".join(cms))
    if rems:
        lines.append("Remediation: " + "; ".join(rems))
    if inc.tags:
        lines.append("Tags: " + ", ".join(str(t) for t in inc.tags))
    return MemoryRecord(
        id=inc.id,
        kind="incident",
        title=inc.title,
        text="\n".join(lines),
        source=f"incident-log:{inc.id}",
        services=services,
        started_at=inc.started_at or inc.detected_at or inc.created_at,
        updated_at=inc.updated_at,
        status=inc.status,
        severity=inc.severity,
        root_cause=inc.root_cause or "",
        countermeasures=cms,
        action_items=[f"{r.what} ({r.status}, owner {r.owner})" for r in inc.remediations],
        last_countermeasure_id=max((c.id or 0 for c in inc.countermeasures), default=0),
        last_remediation_id=max((r.id or 0 for r in inc.remediations), default=0),
    )


class Hit(BaseModel):
    """One search result, with enough text to judge it without opening the source."""

    id: str
    kind: Kind
    title: str
    source: str
    services: list[str] = Field(default_factory=list)
    score: float = Field(description="hybrid relevance, 0..1, higher is closer")
    dense_score: float | None = Field(default=None, description="cosine similarity of the embeddings")
    lexical_score: float | None = Field(default=None, description="BM25 relative to the best match, 0..1")
    matched_identifiers: list[str] = Field(default_factory=list)
    excerpt: str
    status: str | None = None
    severity: str | None = None
    started_at: datetime | None = None
    root_cause: str = ""
    countermeasures: list[str] = Field(default_factory=list)
    action_items: list[str] = Field(default_factory=list)
    url: str | None = None


class SyncStats(BaseModel):
    added: int = 0
    updated: int = 0
    removed: int = 0
    seconds: float = 0.0


class ReindexStats(BaseModel):
    incidents: int
    documents: int
    seconds: float
