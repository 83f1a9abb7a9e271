"""The searchable memory: past incidents, runbooks/FAQ and Slack threads in chromadb, hybrid retrieval.

Two chroma collections hold the vectors: incidents (rebuilt from the state database, the source of
truth) and documents (runbook/FAQ sections and Slack threads; their text is also kept in a JSON-lines
file in the data dir so a lost index can be rebuilt without the original files). Next to the dense
search an in-process BM25 index matches words and, with extra weight, exact identifiers (error types
like MemoryError, versions like 4.6.2, flag keys, hosts): embeddings blur exactly those tokens.

The index keeps itself in sync without hooks in the incident log: `sync_incidents` (called before
every incident search) re-embeds incidents changed since the newest one it holds, found with a few
cheap queries. chromadb and the embedding model are imported lazily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from memory.embeddings import Embedder, get_embedder

if TYPE_CHECKING:
    from firebreak.db import Database
    from firebreak.settings import Settings
    from memory.models import Incident
    from tools.context import ToolContext

log = logging.getLogger(__name__)

INCIDENTS = "firebreak-incidents"
DOCUMENTS = "firebreak-documents"
DOCUMENTS_FILE = "memory_documents.jsonl"
Kind = Literal["incident", "runbook", "slack"]
Mode = Literal["hybrid", "dense", "lexical"]

# Hybrid scoring: cosine similarity blended with BM25 normalised by the best lexical score of the query.
DENSE_WEIGHT = 0.6
IDENT_WEIGHT = 3.0  # a query identifier counts this many times a plain word
DENSE_CANDIDATES = 50
EXCERPT_CHARS = 240


class MemoryError_(RuntimeError):
    """The index cannot be opened or written (bad Chroma URL, unreadable files)."""


# --------------------------------------------------------------------------------------------- records


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
    url: str | None = None

    def content_hash(self) -> str:
        data = self.model_dump(mode="json", exclude={"updated_at"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]

    def to_metadata(self) -> dict[str, Any]:
        """Chroma metadata: scalars only; services also as boolean keys so `where` can filter on them."""
        meta: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title[:500],
            "source": self.source[:500],
            "services": json.dumps(self.services),
            "root_cause": self.root_cause[:2000],
            "countermeasures": json.dumps(self.countermeasures),
            "hash": self.content_hash(),
        }
        for key, value in (
            ("status", self.status),
            ("severity", self.severity),
            ("url", self.url),
        ):
            if value:
                meta[key] = value
        if self.started_at is not None:
            meta["started_ts"] = int(self.started_at.timestamp())
            meta["started_at"] = self.started_at.isoformat()
        if self.updated_at is not None:
            meta["updated_at"] = self.updated_at.isoformat()
        for svc in self.services:
            meta[_service_key(svc)] = True
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
            url=meta.get("url"),
        )


def _service_key(service: str) -> str:
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
    )


# -------------------------------------------------------------------------------------------- lexical

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_SPLIT = re.compile(r"[._:/\-]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from into onto over under is are was were be been
    being it its this that these those as not no so we our us you your they them their he she i me my
    has have had do does did can could should would will shall may might must than then there here what
    which who whom when where why how all any some just also very again after before since about up out
    off get got after seems seem like still now""".split()
)


def _stem(word: str) -> str:
    """A deliberately small suffix stripper (restarts/restarted/restarting -> restart)."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def is_identifier(token: str) -> bool:
    """Error types, versions, flag keys, config keys, hosts: tokens people search for exactly."""
    if _SPLIT.search(token) and any(c.isalnum() for c in token):
        return True  # 4.6.2, mailer-retry-v2, db.pool_size, api.example.com
    if re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+", token):
        return True  # MemoryError, ConnectionResetError
    if re.fullmatch(r"[A-Za-z]+\d+[A-Za-z0-9]*", token) and any(c.isdigit() for c in token):
        return True  # http503, ipv6, oom2
    return bool(re.fullmatch(r"[A-Z]{2,}[A-Z0-9]*", token) and len(token) >= 3)  # OOM, TLS, DNS


def analyze(text: str) -> tuple[list[str], set[str]]:
    """Terms for BM25 (stemmed words and identifier parts) and the identifiers kept whole."""
    terms: list[str] = []
    idents: set[str] = set()
    for match in _TOKEN.finditer(text or ""):
        raw = match.group(0)
        if is_identifier(raw):
            ident = raw.lower()
            idents.add(ident)
            terms.append(ident)
            parts = [p for chunk in _SPLIT.split(raw) for p in _CAMEL.findall(chunk)]
            if len(parts) > 1:
                for part in parts:
                    low = part.lower()
                    if low not in STOPWORDS and not low.isdigit() and len(low) > 1:
                        terms.append(_stem(low))
            continue
        low = raw.lower()
        if low in STOPWORDS or (low.isdigit() and len(low) < 3) or len(low) < 2:
            continue
        terms.append(_stem(low))
    return terms, idents


class LexicalIndex:
    """BM25 over analysed terms, in memory; rebuilt from the chroma documents when a process opens it."""

    K1 = 1.2
    B = 0.75

    def __init__(self) -> None:
        self.postings: dict[str, dict[str, int]] = {}
        self.doc_terms: dict[str, Counter[str]] = {}
        self.doc_idents: dict[str, set[str]] = {}
        self.total_len = 0

    def __len__(self) -> int:
        return len(self.doc_terms)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        terms, idents = analyze(text)
        counts = Counter(terms)
        self.doc_terms[doc_id] = counts
        self.doc_idents[doc_id] = idents
        self.total_len += sum(counts.values())
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[doc_id] = tf

    def remove(self, doc_id: str) -> None:
        counts = self.doc_terms.pop(doc_id, None)
        self.doc_idents.pop(doc_id, None)
        if counts is None:
            return
        self.total_len -= sum(counts.values())
        for term in counts:
            plist = self.postings.get(term)
            if plist is not None:
                plist.pop(doc_id, None)
                if not plist:
                    del self.postings[term]

    def search(
        self, text: str, *, allowed: Callable[[str], bool] | None = None, limit: int = 50
    ) -> list[tuple[str, float]]:
        terms, idents = analyze(text)
        if not terms or not self.doc_terms:
            return []
        weights: dict[str, float] = {}
        for term in terms:
            weights[term] = max(weights.get(term, 0.0), IDENT_WEIGHT if term in idents else 1.0)
        n = len(self.doc_terms)
        avgdl = self.total_len / n if n else 1.0
        scores: dict[str, float] = {}
        for term, qw in weights.items():
            plist = self.postings.get(term)
            if not plist:
                continue
            df = len(plist)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for doc_id, tf in plist.items():
                dl = sum(self.doc_terms[doc_id].values()) if False else None  # noqa: F841 (kept simple)
                length = self._len(doc_id)
                denom = tf + self.K1 * (1 - self.B + self.B * length / avgdl)
                scores[doc_id] = scores.get(doc_id, 0.0) + qw * idf * tf * (self.K1 + 1) / denom
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if allowed is not None:
            ranked = [kv for kv in ranked if allowed(kv[0])]
        return ranked[:limit]

    def _len(self, doc_id: str) -> int:
        return self._lengths.get(doc_id) or self._compute_len(doc_id)

    @property
    def _lengths(self) -> dict[str, int]:
        cache: dict[str, int] | None = getattr(self, "_length_cache", None)
        if cache is None or len(cache) != len(self.doc_terms):
            cache = {d: sum(c.values()) for d, c in self.doc_terms.items()}
            self._length_cache = cache
        return cache

    def _compute_len(self, doc_id: str) -> int:
        return sum(self.doc_terms.get(doc_id, Counter()).values())

    def matched_identifiers(self, doc_id: str, text: str) -> list[str]:
        _, idents = analyze(text)
        return sorted(idents & self.doc_idents.get(doc_id, set()))
