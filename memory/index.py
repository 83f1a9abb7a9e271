"""The searchable memory: past incidents, runbooks/FAQ and Slack threads in chromadb, hybrid retrieval.

Two chroma collections hold the vectors: incidents (rebuilt from the state database, the source of
truth) and documents (runbook/FAQ sections and Slack threads; their text is also kept in a JSON-lines
file in the data dir so a lost index can be rebuilt without the original files). Next to the dense
search an in-process BM25 index matches words and, with extra weight, exact identifiers (error types
like MemoryError, versions like 4.6.2, flag keys, hosts): embeddings blur exactly those tokens.

The index keeps itself in sync without hooks in the incident log: `sync_incidents` (called before
every incident search) re-embeds incidents changed since the newest one it holds, found with a few
cheap queries and content hashes. chromadb and the embedding model are imported lazily.

This module is the service (opening, repair, sync, documents, search entry points); the parts live in
`search_records` (records, hits), `lexical` (BM25, glossary, excerpts), `mirror` (a collection and its
in-process copy) and `search` (scoring). Their public names are re-exported here for existing callers.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from firebreak.memory.embeddings import Embedder, get_embedder
from firebreak.memory.lexical import STOPWORDS, LexicalIndex, analyze, concepts, excerpt, is_identifier
from firebreak.memory.mirror import Mirror
from firebreak.memory.search import Query, candidates, ranked
from firebreak.memory.search_records import (
    Hit,
    Kind,
    MemoryError_,
    MemoryRecord,
    Mode,
    ReindexStats,
    SyncStats,
    incident_record,
)

if TYPE_CHECKING:
    from firebreak.context import ToolContext
    from firebreak.db import Database
    from firebreak.settings import Settings

__all__ = [
    "DOCUMENTS", "INCIDENTS", "STOPWORDS", "Hit", "Kind", "LexicalIndex", "MemoryError_", "MemoryIndex",
    "MemoryRecord", "Mode", "ReindexStats", "SyncStats", "analyze", "concepts", "excerpt", "get_index",
    "incident_record", "is_identifier", "sync_incidents",
]

log = logging.getLogger(__name__)

INCIDENTS = "firebreak-incidents"
DOCUMENTS = "firebreak-documents"
DOCUMENTS_FILE = "memory_documents.jsonl"


class MemoryIndex:
    """Incidents and documents in chromadb, kept in sync with the state database; thread-safe."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.RLock()
        self._client: Any = None
        self._mirrors: dict[str, Mirror] = {}
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

    def _mirror(self, name: str) -> Mirror:
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

    def _open_collection(self, name: str) -> Mirror:
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
        mirror = Mirror(col)
        mirror.load()
        return mirror

    def _fresh(self, name: str) -> Mirror:
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

    def _documents(self) -> Mirror:
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
        query = Query(text, lambda: self.embedder)
        with self._lock:
            mirror = self._fresh(INCIDENTS) if collection == "incidents" else self._documents()
            found = candidates(mirror, query, k, service, since, kinds, set(exclude), mode, include_open)
            return ranked([found], text, k, mode)

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
        query = Query(text, lambda: self.embedder)  # embedded once for both collections
        with self._lock:
            if "incident" in wanted:
                found.append(candidates(self._fresh(INCIDENTS), query, k, service, since, wanted, set(), mode, True))
            if wanted & {"runbook", "slack"}:  # documents have no start time: `since` is about incidents
                found.append(candidates(self._documents(), query, k, service, None, wanted, set(), mode, True))
            return ranked(found, text, k, mode)



def get_index(ctx: ToolContext) -> MemoryIndex:
    """The context's memory index, opened once (its data dir, its Chroma server)."""
    return ctx.resource("firebreak.memory.index", lambda: MemoryIndex(ctx.settings))


def sync_incidents(ctx: ToolContext) -> SyncStats:
    """Bring the context's index up to the incident log now (the drill runner calls it after history)."""
    return get_index(ctx).sync_incidents(ctx.db)
