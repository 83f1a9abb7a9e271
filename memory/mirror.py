"""One chroma collection and its in-process copy: records, hashes, vectors, a BM25 index, a service map.

Why a copy: a search needs each hit's record, a lexical index over every text and, for filtered
queries, an exact cosine over the vectors; reading them from chroma per query cost more than the search.
`upsert` embeds the next chunk while the current one is written, so the chroma write and the lexical
index (single-threaded) overlap with the model (which keeps both cores busy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from firebreak.memory.embeddings import Embedder
from firebreak.memory.lexical import LexicalIndex
from firebreak.memory.search_records import MemoryRecord, service_key

log = logging.getLogger(__name__)


class Mirror:
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
        self, records: Sequence[MemoryRecord], embedder: Embedder, chunk_size: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Embed and write in chunks: a long first indexing keeps what it did if it is interrupted.
        The next chunk is embedded while this one is written. `progress(done, total)` follows each
        chunk (a bar for a person at a terminal)."""
        if not records:
            return
        if progress is not None:
            progress(0, len(records))
        chunks = [records[i : i + chunk_size] for i in range(0, len(records), chunk_size)]
        done = 0
        with ThreadPoolExecutor(1, thread_name_prefix="memory-embed") as ahead:
            pending = ahead.submit(_vectors, embedder, chunks[0])
            for n, chunk in enumerate(chunks):
                vectors = pending.result()
                if n + 1 < len(chunks):
                    pending = ahead.submit(_vectors, embedder, chunks[n + 1])
                self._write(chunk, vectors)
                done += len(chunk)
                if progress is not None:
                    progress(done, len(records))
                if len(chunks) > 1:
                    log.info("memory index: %d/%d embedded", done, len(records))

    def _write(self, chunk: Sequence[MemoryRecord], vectors: Any) -> None:
        digests = [r.content_hash() for r in chunk]
        self.collection.upsert(
            ids=[r.id for r in chunk],
            embeddings=vectors,
            documents=[r.text for r in chunk],
            metadatas=[r.to_metadata(digest) for r, digest in zip(chunk, digests, strict=True)],
        )
        for rec, digest, vec in zip(chunk, digests, vectors, strict=True):
            self._remember(rec, digest, vec)

    def delete(self, ids: Iterable[str]) -> int:
        ids = [i for i in ids]
        if not ids:
            return 0
        self.collection.delete(ids=ids)
        for rid in ids:
            self._forget(rid)
        return len(ids)


def matches(rec: MemoryRecord, service: str | None, since: datetime | None, kinds: set[str] | None,
             exclude: set[str], include_open: bool = True) -> bool:
    if rec.id in exclude or (kinds is not None and rec.kind not in kinds):
        return False
    if not include_open and rec.kind == "incident" and rec.status == "open" and not rec.root_cause:
        return False
    if service is not None and service.strip().lower() not in {s.lower() for s in rec.services}:
        return False
    return not (since is not None and (rec.started_at is None or rec.started_at < since))


def where(service: str | None, since: datetime | None, kinds: set[str] | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if service is not None:
        clauses.append({service_key(service): True})
    if since is not None:
        clauses.append({"started_ts": {"$gte": int(since.timestamp())}})
    if kinds is not None:
        clauses.append({"kind": {"$in": sorted(kinds)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _vectors(embedder: Embedder, records: Sequence[MemoryRecord]) -> Any:
    """The records' vectors as one float32 array (no per-number Python lists on the way to chroma)."""
    import numpy as np

    texts = [r.text for r in records]
    embed_array = getattr(embedder, "embed_array", None)
    if embed_array is not None:
        return np.asarray(embed_array(texts), dtype=np.float32)
    return np.asarray(embedder.embed(texts), dtype=np.float32)
