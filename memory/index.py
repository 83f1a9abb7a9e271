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

import functools
import hashlib
import heapq
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

from firebreak.memory.embeddings import Embedder, _single_thread_blas, get_embedder

if TYPE_CHECKING:
    from firebreak.context import ToolContext
    from firebreak.db import Database
    from firebreak.settings import Settings
    from firebreak.state.incidents import Incident

log = logging.getLogger(__name__)

INCIDENTS = "firebreak-incidents"
DOCUMENTS = "firebreak-documents"
DOCUMENTS_FILE = "memory_documents.jsonl"
Kind = Literal["incident", "runbook", "slack"]
Mode = Literal["hybrid", "dense", "lexical"]

# Hybrid scoring: cosine similarity blended with BM25 normalised by the best lexical score of the query.
DENSE_WEIGHT = 0.5
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
    # Long-term fixes (remediations, the post-mortem's action items) with their state.
    action_items: list[str] = Field(default_factory=list)
    url: str | None = None
    origin: str | None = Field(default=None, description="file or channel it was imported from")
    last_countermeasure_id: int = 0
    last_remediation_id: int = 0

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
            "action_items": json.dumps(self.action_items),
            "hash": self.content_hash(),
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
            action_items=json.loads(meta.get("action_items") or "[]"),
            url=meta.get("url"),
            origin=meta.get("origin"),
            last_countermeasure_id=int(meta.get("cm_id", 0)),
            last_remediation_id=int(meta.get("rem_id", 0)),
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
        action_items=[f"{r.what} ({r.status}, owner {r.owner})" for r in inc.remediations],
        last_countermeasure_id=max((c.id or 0 for c in inc.countermeasures), default=0),
        last_remediation_id=max((r.id or 0 for r in inc.remediations), default=0),
    )


# -------------------------------------------------------------------------------------------- lexical

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_SPLIT = re.compile(r"[._:/\-]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP_TEXT = """a an the and or but if of to in on at by for with from into onto over under is are was were be been
    being it its this that these those as not no so we our us you your they them their he she i me my
    has have had do does did can could should would will shall may might must than then there here what
    which who whom when where why how all any some just also very again after before since about up out
    off get got after seems seem like still now"""
STOPWORDS = frozenset(_STOP_TEXT.split())


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


# Error identifiers and phrasings that name the same failure. Matched on lowercased text, each adds one
# concept term (weighted like an identifier) to documents and queries alike, so "OOMKilled" finds
# "MemoryError: Cannot allocate memory" and "EAI_AGAIN" finds "Temporary failure in name resolution":
# the words differ, embeddings of such tokens are weak, the failure is the same.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("~oom", r"oomkill|out of memory|outofmemory|memoryerror|cannot allocate memory|oom\b|heap space"
             r"|exit code 137|memory pressure|memory leak"),
    ("~disk-full", r"no space left|enospc|disk full|disk (?:is |at )?(?:100|9\d)\s?%|disk watermark"
                   r"|volume (?:is )?(?:at )?100\s?%|filled the volume|out of disk"),
    ("~dns", r"eai_again|enotfound|unknownhostexception|gaierror|name resolution|nxdomain|dns\b|coredns"
             r"|kube-dns|resolv"),
    ("~rate-limit", r"\b429\b|too many requests|rate.?limit|throttl|quota|\b421\b|try again later"),
    ("~bad-gateway", r"\b502\b|bad gateway"),
    ("~unavailable", r"\b503\b|service unavailable|unhealthy|not ready|notready"),
    ("~gateway-timeout", r"\b504\b|gateway timeout"),
    ("~fd-limit", r"emfile|too many open files|file descriptor|nofile"),
    ("~cert", r"x509|certificate|ssl|tls handshake|err_cert"),
    ("~unauthorized", r"\b401\b|unauthori[sz]ed|invalid api key|api key (?:invalid|expired|revoked)"),
    ("~forbidden", r"\b403\b|forbidden|accessdenied|access denied|permission denied"),
    ("~conn-pool", r"pool (?:limit|exhaust|starv|size)|queuepool|hikaripool|connection is not available"
                   r"|no connection available|acquir\w* a (?:database )?connection|pool_size|poolsize"),
    ("~replica-lag", r"replica(?:tion)? (?:lag|delay)|read-only transaction|stale (?:data|reads)|old data"
                     r"|failover|failed over|switched over"),
    ("~lock", r"lock wait|table lock|access exclusive|metadata lock|deadlock|locked"),
    ("~consumer-lag", r"consumer (?:group )?lag|\blag\b|rebalanc|behind by"),
    ("~gc", r"\bgc\b|garbage collect|full gc|stop-the-world"),
    ("~clock-skew", r"clock (?:skew|drift)|ntp|chrony|iat in the future|used before issued"),
    ("~dst", r"daylight saving|\bdst\b|clock change|clocks changed|clock went back"),
    ("~cache-miss", r"cache hit (?:rate|ratio)|cache miss|stampede|thundering herd|flushall|evict"),
    ("~deploy", r"\bdeploy|\brelease|rolled out|rollout|new version"),
    ("~config", r"\bconfig|configuration|helm values|settings change"),
    ("~flag", r"feature flag|\bflag\b|experiment|cohort|rollout percentage|\bbeta\b"),
    ("~traffic-surge", r"traffic (?:spike|surge)|\d+x normal|spike in|campaign|autoscaler (?:is )?(?:at )?max"),
    ("~queue-backlog", r"backlog|queue depth|queue (?:is )?growing|oldest message|redeliver|dead letter|dlq"),
    ("~thread-pool", r"thread pool|threads? busy|worker threads|workers? (?:all )?(?:busy|stuck|timing out)"
                     r"|worker timeout|rejectedexecution|executor"),
    ("~cpu-throttle", r"cpu throttl|cfs_throttled|throttled periods|cpu limit"),
    ("~bad-data", r"backfill|data migration|migration script|wrong (?:balances|prices)|prices? (?:show )?"
                  r"(?:as )?zero|duplicate (?:rows|orders)|restore[ds]? from (?:snapshot|backup)"),
    ("~duplicate-run", r"ran twice|running twice|run twice|overlap|two instances|concurrent(?:ly)? run"),
    ("~cdn", r"\bcdn\b|cloudfront|cache purge|purged|old (?:javascript|js|bundle)|stale (?:javascript|js)"),
    ("~sso", r"\bsso\b|saml|oauth|invalid_grant|sign in with|identity provider|\bidp\b"),
    ("~node", r"node (?:pool|image)|notready|evicted|kubelet|\bnodes?\b"),
    ("~search-index", r"reindex|mapper_parsing|index alias|\bmapping\b|not findable|no results"),
)
_GLOSSARY = tuple((concept, re.compile(pattern)) for concept, pattern in GLOSSARY)


def concepts(text: str) -> list[str]:
    low = (text or "").lower()
    return [concept for concept, rx in _GLOSSARY if rx.search(low)]


def analyze(text: str) -> tuple[list[str], set[str]]:
    """Terms for BM25 (stemmed words, identifier parts, glossary concepts) and the identifiers kept whole."""
    terms, idents = _analyze_cached(text or "")
    return list(terms), set(idents)


def _analyze(text: str) -> tuple[tuple[str, ...], frozenset[str]]:
    terms: list[str] = []
    idents: set[str] = set()
    for concept in concepts(text):
        terms.append(concept)
        idents.add(concept)
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
    return tuple(terms), frozenset(idents)


# Queries and excerpt lines are analysed several times per search (BM25, each hit's excerpt and matched
# identifiers); whole documents go through `_analyze` once, uncached, when indexed.
_analyze_cached = functools.lru_cache(maxsize=4096)(_analyze)


class LexicalIndex:
    """BM25 over analysed terms, in memory; rebuilt from the chroma documents when a process opens it."""

    K1 = 1.2
    B = 0.75

    def __init__(self) -> None:
        self.postings: dict[str, dict[str, int]] = {}
        self.doc_terms: dict[str, Counter[str]] = {}
        self.doc_len: dict[str, int] = {}
        self.doc_idents: dict[str, frozenset[str]] = {}
        self.total_len = 0

    def __len__(self) -> int:
        return len(self.doc_terms)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        terms, idents = _analyze(text)
        counts = Counter(terms)
        self.doc_terms[doc_id] = counts
        self.doc_len[doc_id] = len(terms)
        self.doc_idents[doc_id] = idents
        self.total_len += len(terms)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[doc_id] = tf

    def remove(self, doc_id: str) -> None:
        counts = self.doc_terms.pop(doc_id, None)
        self.doc_idents.pop(doc_id, None)
        self.total_len -= self.doc_len.pop(doc_id, 0)
        for term in counts or ():
            plist = self.postings.get(term)
            if plist is not None:
                plist.pop(doc_id, None)
                if not plist:
                    del self.postings[term]

    def search(
        self, text: str, *, allowed: Callable[[str], bool] | None = None, limit: int = 50
    ) -> list[tuple[str, float]]:
        """Best `limit` documents for `text`; query identifiers weigh IDENT_WEIGHT times a word."""
        terms, idents = analyze(text)
        if not terms or not self.doc_terms:
            return []
        weights: dict[str, float] = {}
        for term in terms:
            weights[term] = max(weights.get(term, 0.0), IDENT_WEIGHT if term in idents else 1.0)
        n = len(self.doc_terms)
        avgdl = (self.total_len / n) or 1.0
        k1, b, doc_len = self.K1, self.B, self.doc_len
        scores: dict[str, float] = {}
        for term, qw in weights.items():
            plist = self.postings.get(term)
            if not plist:
                continue
            df = len(plist)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            factor = qw * idf * (k1 + 1)
            for doc_id, tf in plist.items():
                denom = tf + k1 * (1 - b + b * doc_len[doc_id] / avgdl)
                scores[doc_id] = scores.get(doc_id, 0.0) + factor * tf / denom
        if allowed is None:
            best = heapq.nlargest(limit, scores, key=scores.__getitem__)
            return [(doc_id, scores[doc_id]) for doc_id in best]
        ranked: list[tuple[str, float]] = []
        for doc_id in sorted(scores, key=scores.__getitem__, reverse=True):
            if allowed(doc_id):  # walked best first, so a filter stops as soon as `limit` pass
                ranked.append((doc_id, scores[doc_id]))
                if len(ranked) >= limit:
                    break
        return ranked

    def matched_identifiers(self, doc_id: str, text: str) -> list[str]:
        _, idents = analyze(text)
        return sorted(idents & self.doc_idents.get(doc_id, frozenset()))


# ------------------------------------------------------------------------------------------- the index


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


class _Mirror:
    """A chroma collection plus the in-process copy of its records and their BM25 index."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.records: dict[str, MemoryRecord] = {}
        self.hashes: dict[str, str] = {}
        # Vectors kept in process too: a lexical-only candidate gets its cosine without a second query.
        self.vectors: dict[str, Any] = {}
        self.by_service: dict[str, set[str]] = {}
        self.lexical = LexicalIndex()
        self._matrix: tuple[list[str], Any, Any, dict[str, int]] | None = None

    def load(self) -> None:
        import numpy as np

        self.records.clear()
        self.hashes.clear()
        self.vectors.clear()
        self.by_service.clear()
        self._matrix = None
        self.lexical = LexicalIndex()
        got = self.collection.get(include=["documents", "metadatas", "embeddings"])
        embeddings = got.get("embeddings")
        if embeddings is None:
            embeddings = [None] * len(got["ids"])
        for rid, doc, meta, vec in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], embeddings, strict=False
        ):
            rec = MemoryRecord.from_chroma(rid, doc or "", dict(meta or {}))
            self._remember(rec, str((meta or {}).get("hash", "")), None if vec is None else np.asarray(vec))

    def matrix(self) -> tuple[list[str], Any, Any, dict[str, int]]:
        """(ids, normalised vectors as one n x d array, start timestamps, row of each id) for exact
        filtered scoring; rebuilt lazily after the records change."""
        import numpy as np

        if self._matrix is None:
            ids = [rid for rid in self.records if rid in self.vectors]
            if ids:
                mat = np.stack([self.vectors[rid] for rid in ids]).astype(np.float32)
                norms = np.linalg.norm(mat, axis=1, keepdims=True)
                mat /= np.where(norms == 0, 1.0, norms)
            else:
                mat = np.zeros((0, 1), dtype=np.float32)
            started = np.array(
                [r.started_at.timestamp() if (r := self.records[rid]).started_at else -np.inf for rid in ids],
                dtype=np.float64,
            )
            self._matrix = (ids, mat, started, {rid: i for i, rid in enumerate(ids)})
        return self._matrix

    def service_ids(self, service: str) -> list[str]:
        """Ids of the records that name `service` (case-insensitive)."""
        return sorted(self.by_service.get(service.strip().lower(), ()))

    def _forget(self, rid: str) -> None:
        self._matrix = None
        old = self.records.pop(rid, None)
        for svc in old.services if old is not None else ():
            ids = self.by_service.get(svc.lower())
            if ids is not None:
                ids.discard(rid)
        self.hashes.pop(rid, None)
        self.vectors.pop(rid, None)
        self.lexical.remove(rid)

    def _remember(self, rec: MemoryRecord, digest: str, vector: Any) -> None:
        self._matrix = None
        if rec.id in self.records:
            self._forget(rec.id)
        for svc in rec.services:
            self.by_service.setdefault(svc.lower(), set()).add(rec.id)
        self.records[rec.id] = rec
        self.hashes[rec.id] = digest
        if vector is not None:
            self.vectors[rec.id] = vector
        self.lexical.add(rec.id, rec.text)

    def upsert(
        self, records: Sequence[MemoryRecord], embedder: Embedder, chunk_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Embed and write in chunks: a long first indexing keeps what it did if it is interrupted.
        `progress(done, total)` follows each chunk (a bar for a person at a terminal)."""
        import numpy as np

        if progress is not None and records:
            progress(0, len(records))
        for start in range(0, len(records), chunk_size):
            chunk = records[start : start + chunk_size]
            vectors = embedder.embed([r.text for r in chunk])
            self.collection.upsert(
                ids=[r.id for r in chunk],
                embeddings=vectors,
                documents=[r.text for r in chunk],
                metadatas=[r.to_metadata() for r in chunk],
            )
            for rec, vec in zip(chunk, vectors, strict=True):
                self._remember(rec, rec.content_hash(), np.asarray(vec, dtype=np.float32))
            if progress is not None:
                progress(min(start + chunk_size, len(records)), len(records))
            if len(records) > chunk_size:
                log.info("memory index: %d/%d embedded", min(start + chunk_size, len(records)), len(records))

    def delete(self, ids: Iterable[str]) -> int:
        ids = [i for i in ids]
        if not ids:
            return 0
        self.collection.delete(ids=ids)
        for rid in ids:
            self._forget(rid)
        return len(ids)


def _matches(rec: MemoryRecord, service: str | None, since: datetime | None, kinds: set[str] | None,
             exclude: set[str], include_open: bool = True) -> bool:
    if rec.id in exclude or (kinds is not None and rec.kind not in kinds):
        return False
    if not include_open and rec.kind == "incident" and rec.status == "open" and not rec.root_cause:
        return False
    if service is not None and service.strip().lower() not in {s.lower() for s in rec.services}:
        return False
    return not (since is not None and (rec.started_at is None or rec.started_at < since))


def _where(service: str | None, since: datetime | None, kinds: set[str] | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if service is not None:
        clauses.append({_service_key(service): True})
    if since is not None:
        clauses.append({"started_ts": {"$gte": int(since.timestamp())}})
    if kinds is not None:
        clauses.append({"kind": {"$in": sorted(kinds)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def excerpt(text: str, query: str, limit: int = EXCERPT_CHARS) -> str:
    """The line of `text` sharing most terms with the query (title line skipped), cut around the first hit."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    body = [ln for ln in lines[1:] if not ln.startswith(("Services:", "Tags:"))] or lines
    q_terms, q_idents = analyze(query)
    wanted = set(q_terms) | q_idents
    q_concepts = [rx for concept, rx in _GLOSSARY if concept in wanted]

    def overlap(line: str) -> int:
        # Plain words plus only the query's glossary concepts: running the whole glossary over every
        # line of every hit cost ~3 ms a search.
        low = line.lower()
        words = {w for raw in _TOKEN.findall(low) for w in (raw, _stem(raw))}
        return len(wanted & words) + sum(1 for rx in q_concepts if rx.search(low))

    best = max(body, key=overlap)
    if len(best) <= limit:
        return best
    low = best.lower()
    first = min((low.find(w) for w in wanted if w and low.find(w) >= 0), default=0)
    start = max(0, min(first - limit // 4, len(best) - limit))
    cut = best[start : start + limit - 2]
    return ("…" if start else "") + cut + "…"


class MemoryIndex:
    """Incidents and documents in chromadb, kept in sync with the state database; thread-safe."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.RLock()
        self._client: Any = None
        self._mirrors: dict[str, _Mirror] = {}
        self._docs_restored = False
        self.rebuilt_from_scratch = False
        # Besides the cheap checks, look at everything now and then: catches writes that bypass the
        # incident log (no timeline entry) and a deletion that coincides with an insert (counts equal).
        self.full_check_seconds = 30.0
        self._last_full_check = float("-inf")
        self._fingerprint: tuple[Any, ...] | None = None
        # Called as (done, total) while records are embedded; the CLI shows a progress bar with it.
        self.on_progress: Callable[[int, int], None] | None = None

    # -- opening -------------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.settings)
        return self._embedder

    @property
    def chroma_path(self) -> Path:
        return self.settings.data_dir / "chroma"

    @property
    def documents_file(self) -> Path:
        return self.settings.data_dir / DOCUMENTS_FILE

    def _make_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        url = self.settings.chroma_url
        if url:
            from urllib.parse import urlparse

            parsed = urlparse(url if "://" in url else f"http://{url}")
            if not parsed.hostname:
                raise MemoryError_(f"chroma_url: cannot read a host from {url!r} (e.g. http://chroma:8000)")
            ssl = parsed.scheme == "https"
            try:
                return chromadb.HttpClient(
                    host=parsed.hostname, port=parsed.port or (443 if ssl else 8000), ssl=ssl,
                    settings=chroma_settings,
                )
            except Exception as exc:
                raise MemoryError_(f"chroma_url: cannot reach the Chroma server at {url}: {exc}") from exc
        self.settings.ensure_data_dir()
        return chromadb.PersistentClient(path=str(self.chroma_path), settings=chroma_settings)

    def _quarantine(self, reason: BaseException) -> None:
        """A corrupt embedded index is moved aside (kept for inspection) and rebuilt from the database."""
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        self._client = None
        self._mirrors.clear()
        self._fingerprint = None
        if self.chroma_path.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = self.chroma_path.with_name(f"chroma.corrupt-{stamp}")
            shutil.move(str(self.chroma_path), str(target))
            log.warning("memory index at %s unreadable (%s); moved to %s, rebuilding", self.chroma_path,
                        reason, target)
        self.rebuilt_from_scratch = True
        self._docs_restored = False

    def _mirror(self, name: str) -> _Mirror:
        mirror = self._mirrors.get(name)
        if mirror is not None:
            return mirror
        for attempt in (1, 2):
            try:
                if self._client is None:
                    self._client = self._make_client()
                mirror = self._open_collection(name)
                break
            except MemoryError_:
                raise
            except Exception as exc:
                if self.settings.chroma_url or attempt == 2:
                    raise MemoryError_(f"memory index unavailable: {exc}") from exc
                self._quarantine(exc)
        assert mirror is not None
        self._mirrors[name] = mirror
        return mirror

    def _open_collection(self, name: str) -> _Mirror:
        """Open (or create) a collection; one embedded with another model is dropped and rebuilt."""
        emb_name = self.embedder.name
        col = self._client.get_or_create_collection(
            name, metadata={"hnsw:space": "cosine", "embedder": emb_name}, embedding_function=None
        )
        if (col.metadata or {}).get("embedder") != emb_name:
            log.warning("memory collection %s was embedded with %s; rebuilding with %s", name,
                        (col.metadata or {}).get("embedder"), emb_name)
            self._client.delete_collection(name)
            col = self._client.create_collection(
                name, metadata={"hnsw:space": "cosine", "embedder": emb_name}, embedding_function=None
            )
        mirror = _Mirror(col)
        mirror.load()
        return mirror

    def _fresh(self, name: str) -> _Mirror:
        """The mirror, reloaded when the collection changed under us (a shared Chroma server)."""
        mirror = self._mirror(name)
        try:
            count = mirror.collection.count()
        except Exception as exc:
            if self.settings.chroma_url:
                raise MemoryError_(f"memory index unavailable: {exc}") from exc
            self._quarantine(exc)
            return self._mirror(name)
        if count != len(mirror.records):
            mirror.load()
        return mirror

    def close(self) -> None:
        with self._lock:
            self._mirrors.clear()
            self._client = None
            self._fingerprint = None

    # -- incidents -----------------------------------------------------------------------------------

    def sync_incidents(self, db: Database) -> SyncStats:
        """Bring the incident collection up to the database: cheap (a few small queries) when unchanged."""
        import time

        from sqlalchemy import func, select
        from sqlalchemy.orm import selectinload

        from firebreak.state.incidents import Countermeasure, Incident, Remediation, TimelineEntry

        t0 = time.perf_counter()
        stats = SyncStats()
        with self._lock:
            mirror = self._fresh(INCIDENTS)
            recs = mirror.records
            now = time.monotonic()
            full = now - self._last_full_check >= self.full_check_seconds
            with db.session() as s:
                # One statement of primary-key lookups tells whether anything changed: every incident-log
                # write adds a timeline entry, so its max id moves even when a fixed drill clock keeps
                # updated_at still. Writes that bypass the log are caught by the periodic full check.
                fingerprint = tuple(s.execute(select(
                    select(func.count(Incident.id)).scalar_subquery(),
                    select(func.max(TimelineEntry.id)).scalar_subquery(),
                    select(func.max(Countermeasure.id)).scalar_subquery(),
                    select(func.max(Remediation.id)).scalar_subquery(),
                )).one())
                if not full and fingerprint == self._fingerprint and len(recs) == fingerprint[0]:
                    stats.seconds = time.perf_counter() - t0
                    return stats
                total = int(fingerprint[0] or 0)
                watermark = max((r.updated_at for r in recs.values() if r.updated_at), default=None)
                last_cm = max((r.last_countermeasure_id for r in recs.values()), default=0)
                last_rem = max((r.last_remediation_id for r in recs.values()), default=0)
                q = select(Incident.id)
                if watermark is not None:
                    q = q.where(Incident.updated_at >= watermark)
                candidates = set(s.scalars(q))
                candidates |= set(s.scalars(select(Countermeasure.incident_id).where(Countermeasure.id > last_cm)))
                candidates |= set(s.scalars(select(Remediation.incident_id).where(Remediation.id > last_rem)))
                if self._fingerprint is not None and self._fingerprint[1] is not None:
                    candidates |= set(s.scalars(
                        select(TimelineEntry.incident_id).where(TimelineEntry.id > self._fingerprint[1])
                    ))
                gone: set[str] = set()
                if full or len(set(recs) | candidates) != total:
                    self._last_full_check = now
                    all_ids = set(s.scalars(select(Incident.id)))
                    candidates |= all_ids - set(recs)
                    gone = set(recs) - all_ids
                changed: list[MemoryRecord] = []
                if candidates:
                    rows = s.scalars(
                        select(Incident)
                        .where(Incident.id.in_(candidates))
                        .options(selectinload(Incident.countermeasures), selectinload(Incident.remediations))
                    ).all()
                    for inc in rows:
                        rec = incident_record(inc)
                        if mirror.hashes.get(rec.id) != rec.content_hash():
                            changed.append(rec)
                            if rec.id in recs:
                                stats.updated += 1
                            else:
                                stats.added += 1
            mirror.upsert(changed, self.embedder, progress=self.on_progress)
            stats.removed = mirror.delete(gone)
            self._fingerprint = fingerprint
        stats.seconds = time.perf_counter() - t0
        return stats

    # -- documents -----------------------------------------------------------------------------------

    def _read_documents_file(self) -> dict[str, MemoryRecord]:
        out: dict[str, MemoryRecord] = {}
        if not self.documents_file.exists():
            return out
        for n, line in enumerate(self.documents_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = MemoryRecord.model_validate_json(line)
            except ValueError:
                log.warning("%s line %d unreadable, skipped", self.documents_file, n)
                continue
            out[rec.id] = rec
        return out

    def _write_documents_file(self, records: dict[str, MemoryRecord]) -> None:
        self.settings.ensure_data_dir()
        tmp = self.documents_file.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records.values():
                fh.write(rec.model_dump_json() + "\n")
        tmp.replace(self.documents_file)

    def _documents(self) -> _Mirror:
        """The documents collection, restored from the JSON-lines copy once per process if it drifted."""
        mirror = self._fresh(DOCUMENTS)
        if not self._docs_restored:
            stored = self._read_documents_file()
            stale = [r for r in stored.values() if mirror.hashes.get(r.id) != r.content_hash()]
            mirror.upsert(stale, self.embedder, progress=self.on_progress)
            mirror.delete([rid for rid in list(mirror.records) if rid not in stored])
            self._docs_restored = True
        return mirror

    def add_documents(self, records: Sequence[MemoryRecord], *, replace_origins: Iterable[str] = ()) -> int:
        """Store runbook sections / Slack threads; earlier records from the same origins are replaced."""
        with self._lock:
            mirror = self._documents()
            stored = self._read_documents_file()
            origins = set(replace_origins)
            new_ids = {r.id for r in records}
            dropped = [rid for rid, r in stored.items() if r.origin in origins and rid not in new_ids]
            for rid in dropped:
                stored.pop(rid)
            for rec in records:
                stored[rec.id] = rec
            self._write_documents_file(stored)
            changed = [r for r in records if mirror.hashes.get(r.id) != r.content_hash()]
            mirror.upsert(changed, self.embedder, progress=self.on_progress)
            mirror.delete(dropped)
            return len(changed)

    # -- maintenance ---------------------------------------------------------------------------------

    def reindex(self, db: Database) -> ReindexStats:
        """Drop both collections and rebuild them from the database and the documents file (idempotent)."""
        import time

        t0 = time.perf_counter()
        with self._lock:
            for name in (INCIDENTS, DOCUMENTS):
                self._mirror(name)  # opens (or repairs) the client
                try:
                    self._client.delete_collection(name)
                except Exception as exc:  # absent already
                    log.debug("delete %s: %s", name, exc)
                self._mirrors.pop(name, None)
            self._docs_restored = False
            self._fingerprint = None
            self.sync_incidents(db)
            docs = self._documents()
            incidents = len(self._mirror(INCIDENTS).records)
            return ReindexStats(incidents=incidents, documents=len(docs.records),
                                seconds=round(time.perf_counter() - t0, 3))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"incidents": len(self._fresh(INCIDENTS).records), "documents": len(self._documents().records)}

    # -- search --------------------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        collection: Literal["incidents", "documents"] = "incidents",
        k: int = 5,
        service: str | None = None,
        since: datetime | None = None,
        kinds: set[str] | None = None,
        exclude: Iterable[str] = (),
        mode: Mode = "hybrid",
        include_open: bool = True,
    ) -> list[Hit]:
        """Top `k` records for `text`: dense (chroma) and lexical (BM25 + identifiers) candidates, fused.

        `include_open=False` leaves out open incidents with no root cause yet (the one being triaged,
        or a sibling of it): nothing to learn from them.
        """
        if not text.strip():
            raise ValueError("text: must not be empty")
        with self._lock:
            found = self._candidates(collection, text, k, service, since, kinds, set(exclude), mode, include_open)
            return self._ranked([found], text, k, mode)

    def search_all(
        self,
        text: str,
        *,
        k: int = 5,
        kinds: set[str] | None = None,
        service: str | None = None,
        since: datetime | None = None,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """One ranking over past incidents, runbooks and Slack threads (each hit says its `kind`).

        Why one list: a person asking "what do we know about X" should not have to know which
        collection holds the answer (issue 19). Lexical scores are scaled by the best match over both
        collections, so a weak runbook match is not lifted to 1.0 just because it leads its own.
        """
        if not text.strip():
            raise ValueError("text: must not be empty")
        wanted = set(kinds) if kinds else {"incident", "runbook", "slack"}
        found = []
        with self._lock:
            if "incident" in wanted:
                found.append(self._candidates("incidents", text, k, service, since, wanted, set(), mode, True))
            if wanted & {"runbook", "slack"}:  # documents have no start time: `since` is about incidents
                found.append(self._candidates("documents", text, k, service, None, wanted, set(), mode, True))
            return self._ranked(found, text, k, mode)

    def _candidates(
        self, collection: str, text: str, k: int, service: str | None, since: datetime | None,
        kinds: set[str] | None, excluded: set[str], mode: Mode, include_open: bool,
    ) -> tuple[_Mirror, dict[str, float], dict[str, float]]:
        """Dense (cosine) and raw lexical (BM25) scores of the records of one collection that pass the
        filters. Caller holds the lock."""
        mirror = self._fresh(INCIDENTS) if collection == "incidents" else self._documents()
        recs = mirror.records

        def allowed(rid: str) -> bool:
            rec = recs.get(rid)
            return rec is not None and _matches(rec, service, since, kinds, excluded, include_open)

        pool = max(DENSE_CANDIDATES, k * 4)
        dense: dict[str, float] = {}
        lexical: dict[str, float] = {}
        query_vec: list[float] | None = None
        if mode != "lexical" and recs:
            query_vec = self.embedder.embed([text])[0]
            selective = service is not None or since is not None or kinds is not None
            if selective and len(mirror.vectors) == len(recs):
                # A chroma `where` on service/start/kind cost ~20 ms at 10k records (measured): the
                # metadata filter runs before the vector search. The mirrored vectors give the exact
                # answer in ~2 ms: one matrix product, the filter as a mask.
                dense = self._exact_dense(mirror, query_vec, pool, service, since, kinds, allowed)
            else:
                n = min(pool + len(excluded), len(recs))
                res = mirror.collection.query(
                    query_embeddings=[query_vec], n_results=n, where=_where(service, since, kinds),
                    include=["distances"],
                )
                for rid, dist in zip(res["ids"][0], res["distances"][0], strict=False):
                    if allowed(rid):
                        dense[rid] = 1.0 - float(dist)
        if mode != "dense" and recs:
            lexical = dict(mirror.lexical.search(text, allowed=allowed, limit=pool))
            if mode == "hybrid" and query_vec is not None:
                self._fill_dense(mirror, query_vec, [rid for rid in lexical if rid not in dense], dense)
        return mirror, dense, lexical

    @staticmethod
    def _ranked(
        found: list[tuple[_Mirror, dict[str, float], dict[str, float]]], text: str, k: int, mode: Mode
    ) -> list[Hit]:
        """Fuse dense and lexical scores (lexical relative to the best match over all `found`), top k."""
        best_lex = max((v for _, _, lex in found for v in lex.values()), default=0.0) or 1.0
        scored: list[tuple[float, str, int]] = []
        for n, (_, dense, lexical) in enumerate(found):
            for rid in set(dense) | set(lexical):
                d = dense.get(rid, 0.0)
                lx = lexical.get(rid, 0.0) / best_lex
                if mode == "dense":
                    score = d
                elif mode == "lexical":
                    score = lx
                else:
                    score = DENSE_WEIGHT * d + (1 - DENSE_WEIGHT) * lx
                scored.append((score, rid, n))
        scored.sort(key=lambda sr: (-sr[0], sr[1]))
        hits: list[Hit] = []
        for score, rid, n in scored[:k]:
            mirror, dense, lexical = found[n]
            rec = mirror.records[rid]
            hits.append(
                Hit(
                    id=rec.id, kind=rec.kind, title=rec.title, source=rec.source, services=rec.services,
                    score=round(max(0.0, score), 4),
                    dense_score=round(dense[rid], 4) if rid in dense else None,
                    lexical_score=round(lexical.get(rid, 0.0) / best_lex, 4) if mode != "dense" else None,
                    matched_identifiers=mirror.lexical.matched_identifiers(rid, text),
                    excerpt=excerpt(rec.text, text), status=rec.status, severity=rec.severity,
                    started_at=rec.started_at, root_cause=rec.root_cause,
                    countermeasures=rec.countermeasures, action_items=rec.action_items, url=rec.url,
                )
            )
        return hits

    @staticmethod
    def _exact_dense(mirror: _Mirror, query_vec: list[float], pool: int, service: str | None,
                     since: datetime | None, kinds: set[str] | None,
                     allowed: Callable[[str], bool]) -> dict[str, float]:
        import numpy as np

        ids, mat, started, rows = mirror.matrix()
        if not ids:
            return {}
        q = np.asarray(query_vec, dtype=np.float32)
        limiter = _single_thread_blas()  # threaded BLAS spins against itself on a busy small machine
        if limiter is None:
            scores = mat @ (q / (np.linalg.norm(q) or 1.0))
        else:
            with limiter:
                scores = mat @ (q / (np.linalg.norm(q) or 1.0))
        mask = np.ones(len(ids), dtype=bool)
        if since is not None:
            mask &= started >= since.timestamp()
        if service is not None:
            svc_mask = np.zeros(len(ids), dtype=bool)
            svc_mask[[rows[rid] for rid in mirror.service_ids(service) if rid in rows]] = True
            mask &= svc_mask
        scores = np.where(mask, scores, -np.inf)
        top = min(len(ids), pool * 2)
        best = np.argpartition(-scores, top - 1)[:top]
        out: dict[str, float] = {}
        for i in best[np.argsort(-scores[best])]:
            if scores[i] == -np.inf or len(out) >= pool:
                break
            rid = ids[int(i)]
            if allowed(rid):  # kinds, excluded ids, open incidents
                out[rid] = float(scores[i])
        return out

    @staticmethod
    def _fill_dense(mirror: _Mirror, query_vec: list[float], ids: list[str], dense: dict[str, float]) -> None:
        """Cosine for candidates the ANN query did not return: from memory, else one query by id."""
        import numpy as np

        if not ids:
            return
        q = np.asarray(query_vec, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        known = [rid for rid in ids if rid in mirror.vectors]
        unknown = [rid for rid in ids if rid not in mirror.vectors]
        if known:
            mat = np.stack([mirror.vectors[rid] for rid in known]).astype(np.float32, copy=False)
            norms = np.linalg.norm(mat, axis=1)
            norms[norms == 0] = 1.0
            for rid, cos in zip(known, (mat @ q) / norms, strict=True):
                dense[rid] = float(cos)
        if unknown:
            res = mirror.collection.query(query_embeddings=[query_vec], n_results=len(unknown), ids=unknown,
                                          include=["distances"])
            for rid, dist in zip(res["ids"][0], res["distances"][0], strict=False):
                dense[rid] = 1.0 - float(dist)


def get_index(ctx: ToolContext) -> MemoryIndex:
    """The context's memory index, opened once (its data dir, its Chroma server)."""
    return ctx.resource("firebreak.memory.index", lambda: MemoryIndex(ctx.settings))


def sync_incidents(ctx: ToolContext) -> SyncStats:
    """Bring the context's index up to the incident log now (the drill runner calls it after history)."""
    return get_index(ctx).sync_incidents(ctx.db)
