"""The index follows the incident log without hooks, filters, and repairs itself from the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.memory import incident_log as il
from firebreak.memory.index import INCIDENTS, MemoryIndex, MemoryRecord, get_index

T0 = datetime(2025, 11, 4, 9, 12, tzinfo=UTC)


def add_incident(ctx: ToolContext, *, title: str, services: list[str], at: datetime = T0, symptoms: str = "",
                 root_cause: str = "", countermeasure: str | None = None, incident_id: str | None = None) -> str:
    with ctx.db.session() as s:
        inc = il.open_incident(s, title=title, services=services, severity="major", at=at, actor="test",
                               started_at=at, symptoms=symptoms, incident_id=incident_id)
        if root_cause:
            il.update_incident(s, inc, {"root_cause": root_cause}, at=at, actor="test")
        if countermeasure:
            il.add_countermeasure(s, inc, what=countermeasure, by="test", at=at)
        return inc.id


@pytest.fixture
def seeded(ctx: ToolContext) -> ToolContext:
    add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                 symptoms="mailer restarted in a loop, campaigns delayed",
                 root_cause="unbounded template cache introduced in mailer 4.5.0",
                 countermeasure="rolled back mailer 4.5.0 to 4.4.9", incident_id="INC-2025-031")
    add_incident(ctx, title="Checkout timeouts after pricing flag", services=["checkout", "pricing"],
                 at=T0 + timedelta(days=30), symptoms="p95 latency 8s, TimeoutError calling pricing",
                 root_cause="flag checkout-new-pricing enabled a slow path", countermeasure="disabled the flag",
                 incident_id="INC-2025-032")
    add_incident(ctx, title="Login failures: certificate expired on auth.example.com", services=["auth"],
                 at=T0 + timedelta(days=60), symptoms="TLS handshake errors, users cannot log in",
                 root_cause="certificate for auth.example.com expired", incident_id="INC-2025-033")
    return ctx


def search_ids(ctx: ToolContext, text: str, **kw: object) -> list[str]:
    index = get_index(ctx)
    index.sync_incidents(ctx.db)
    return [h.id for h in index.search(text, **kw)]  # type: ignore[arg-type]


def test_finds_the_similar_incident_with_its_fix(seeded: ToolContext) -> None:
    index = get_index(seeded)
    index.sync_incidents(seeded.db)
    hits = index.search("mailer pods OOMKilled after deploy, memory keeps growing", k=3)
    top = hits[0]
    assert top.id == "INC-2025-031"
    assert top.countermeasures == ["rolled back mailer 4.5.0 to 4.4.9"]
    assert top.root_cause.startswith("unbounded template cache")
    assert top.source == "incident-log:INC-2025-031"
    assert 0 < top.score <= 1 and top.excerpt
    assert hits[0].score >= hits[-1].score


def test_identifier_match_is_reported(seeded: ToolContext) -> None:
    hits = get_index(seeded)
    hits.sync_incidents(seeded.db)
    top = hits.search("TLS errors from auth.example.com", k=1)[0]
    assert "auth.example.com" in top.matched_identifiers


def test_filters_service_since_and_exclude(seeded: ToolContext) -> None:
    assert search_ids(seeded, "latency timeouts", service="checkout") == ["INC-2025-032"]
    assert search_ids(seeded, "latency timeouts", service="PRICING") == ["INC-2025-032"]
    since = T0 + timedelta(days=45)
    assert search_ids(seeded, "anything went wrong", since=since) == ["INC-2025-033"]
    assert "INC-2025-031" not in search_ids(seeded, "mailer OOM", exclude=["INC-2025-031"])
    for mode in ("dense", "lexical"):
        assert search_ids(seeded, "mailer template cache OOM", mode=mode)[0] == "INC-2025-031"


def test_sync_is_incremental_and_sees_same_timestamp_edits(seeded: ToolContext) -> None:
    index = get_index(seeded)
    first = index.sync_incidents(seeded.db)
    assert (first.added, first.updated, first.removed) == (3, 0, 0)
    again = index.sync_incidents(seeded.db)
    assert (again.added, again.updated) == (0, 0)
    # An edit with the same timestamp (fixed drill clock) and a countermeasure written "in the past".
    with seeded.db.session() as s:
        inc = il.get_incident(s, "INC-2025-033")
        il.update_incident(s, inc, {"root_cause": "cert-manager renewal job disabled"}, at=inc.updated_at,
                           actor="t")
        old = il.get_incident(s, "INC-2025-031")
        il.add_countermeasure(s, old, what="restarted the scheduler", by="t", at=T0 - timedelta(days=1))
    stats = index.sync_incidents(seeded.db)
    assert stats.updated == 2
    top = index.search("mailer OOM", k=1)[0]
    assert "restarted the scheduler" in top.countermeasures
    assert index.search("cert-manager renewal", k=1)[0].id == "INC-2025-033"


def test_new_old_incident_and_deletion_are_picked_up(seeded: ToolContext) -> None:
    from firebreak.state.incidents import Incident

    index = get_index(seeded)
    index.sync_incidents(seeded.db)
    index.full_check_seconds = 0  # the periodic full id comparison (every 30 s by default) is due
    add_incident(seeded, title="Redis eviction storm", services=["cache"], at=T0 - timedelta(days=300))
    with seeded.db.session() as s:
        s.delete(s.get(Incident, "INC-2025-032"))
    stats = index.sync_incidents(seeded.db)
    assert (stats.added, stats.removed) == (1, 1)
    ids = [h.id for h in index.search("redis eviction", k=5)]
    assert ids[0] != "INC-2025-032" and "INC-2025-032" not in ids


def test_old_timestamped_insert_is_found_by_count(seeded: ToolContext) -> None:
    index = get_index(seeded)
    index.sync_incidents(seeded.db)
    add_incident(seeded, title="Redis eviction storm", services=["cache"], at=T0 - timedelta(days=300))
    assert index.sync_incidents(seeded.db).added == 1


def test_reindex_is_idempotent(seeded: ToolContext) -> None:
    index = get_index(seeded)
    a = index.reindex(seeded.db)
    b = index.reindex(seeded.db)
    assert (a.incidents, b.incidents) == (3, 3)
    assert index.counts()["incidents"] == 3


def test_a_new_process_reuses_the_persisted_index(seeded: ToolContext) -> None:
    get_index(seeded).sync_incidents(seeded.db)
    other = MemoryIndex(seeded.settings)
    assert other.sync_incidents(seeded.db).added == 0
    assert other.search("certificate expired", k=1)[0].id == "INC-2025-033"


def test_corrupt_index_is_rebuilt_from_the_database(seeded: ToolContext) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    get_index(seeded).sync_incidents(seeded.db)
    seeded.close()
    SharedSystemClient.clear_system_cache()
    chroma = seeded.settings.data_dir / "chroma"
    (chroma / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    fresh = MemoryIndex(seeded.settings)
    stats = fresh.sync_incidents(seeded.db)
    assert stats.added == 3 and fresh.rebuilt_from_scratch
    assert fresh.search("mailer OOM", k=1)[0].id == "INC-2025-031"
    assert any(p.name.startswith("chroma.corrupt-") for p in seeded.settings.data_dir.iterdir())


def test_missing_index_is_rebuilt(seeded: ToolContext) -> None:
    import shutil

    from chromadb.api.shared_system_client import SharedSystemClient

    get_index(seeded).sync_incidents(seeded.db)
    seeded.close()
    SharedSystemClient.clear_system_cache()
    shutil.rmtree(seeded.settings.data_dir / "chroma")
    fresh = MemoryIndex(seeded.settings)
    assert fresh.sync_incidents(seeded.db).added == 3


def test_index_built_with_another_model_is_rebuilt(seeded: ToolContext) -> None:
    class Fake:
        name = "fake-3d"

        def embed(self, texts: list[str]) -> list[list[float]]:  # type: ignore[override]
            return [[1.0, 0.0, 0.0] for _ in texts]

    get_index(seeded).sync_incidents(seeded.db)
    seeded.close()
    other = MemoryIndex(seeded.settings, embedder=Fake())  # type: ignore[arg-type]
    assert other.sync_incidents(seeded.db).added == 3
    meta = other._mirror(INCIDENTS).collection.metadata
    assert meta["embedder"] == "fake-3d"


def test_documents_survive_a_lost_index(ctx: ToolContext, tmp_path: Path) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    index = get_index(ctx)
    rec = MemoryRecord(id="runbook:x", kind="runbook", title="Failover", text="Failover\nPromote the replica db-2",
                       source="db.md#failover", origin="/r/db.md")
    assert index.add_documents([rec], replace_origins={"/r/db.md"}) == 1
    assert index.add_documents([rec], replace_origins={"/r/db.md"}) == 0  # unchanged: not re-embedded
    ctx.close()
    SharedSystemClient.clear_system_cache()
    import shutil

    shutil.rmtree(ctx.settings.data_dir / "chroma")
    fresh = MemoryIndex(ctx.settings)
    hits = fresh.search("promote replica", collection="documents", k=3)
    assert [h.id for h in hits] == ["runbook:x"]
    # Re-importing the origin without that section removes it.
    assert fresh.add_documents([], replace_origins={"/r/db.md"}) == 0
    assert fresh.search("promote replica", collection="documents") == []


def test_empty_text_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(ValueError, match="text"):
        get_index(ctx).search("  ")


def test_drill_clock_is_not_needed(settings: object) -> None:
    # The index never reads the wall clock for incident data: a fixed clock context works the same.
    ctx = ToolContext(settings=settings, clock=FixedClock(T0))  # type: ignore[arg-type]
    add_incident(ctx, title="Queue backlog on billing", services=["billing"])
    assert search_ids(ctx, "billing backlog") == ["INC-2025-001"]
    ctx.close()


def test_progress_follows_long_embeddings_then_is_quiet(ctx: ToolContext) -> None:
    index = get_index(ctx)
    seen: list[tuple[int, int]] = []
    index.on_progress = lambda done, total: seen.append((done, total))
    records = [MemoryRecord(id=f"doc-{i}", kind="runbook", title=f"step {i}", text=f"restart worker {i}",
                            source="runbooks/x.md", origin="runbooks/x.md") for i in range(300)]
    assert index.add_documents(records, replace_origins=["runbooks/x.md"]) == 300
    assert seen[0] == (0, 300) and seen[-1] == (300, 300) and len(seen) >= 3
    seen.clear()
    assert index.add_documents(records, replace_origins=["runbooks/x.md"]) == 0  # unchanged: nothing embedded
    assert seen == []


def test_search_all_ranks_incidents_and_documents_together(seeded: ToolContext) -> None:
    index = get_index(seeded)
    index.sync_incidents(seeded.db)
    index.add_documents([MemoryRecord(id="rb-1", kind="runbook", title="Mailer out of memory",
                                      text="When the mailer is OOMKilled, roll back the last deploy.",
                                      source="runbooks/mailer.md", origin="runbooks/mailer.md")],
                        replace_origins=["runbooks/mailer.md"])
    hits = index.search_all("mailer OOMKilled roll back", k=10)
    assert {h.id for h in hits[:2]} == {"INC-2025-031", "rb-1"}  # the mailer incident and its runbook lead
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only = index.search_all("mailer OOMKilled roll back", k=10, kinds={"runbook"})
    assert [h.id for h in only] == ["rb-1"]


class _Counting:
    """A 3-d embedder that counts texts and can fail on its n-th call (a model crash mid-import)."""

    name = "counting-3d"

    def __init__(self, fail_on_call: int = 0) -> None:
        self.calls = 0
        self.texts = 0
        self.fail_on_call = fail_on_call

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            from firebreak.memory.embeddings import EmbeddingError

            raise EmbeddingError("model crashed")
        self.texts += len(texts)
        return [[1.0, float(len(t) % 7), 0.5] for t in texts]


def test_interrupted_import_keeps_written_chunks_and_resumes(ctx: ToolContext) -> None:
    from firebreak.memory.embeddings import EmbeddingError
    from firebreak.memory.index import DOCUMENTS

    records = [MemoryRecord(id=f"doc-{i}", kind="runbook", title=f"step {i}", text=f"restart worker {i}",
                            source="runbooks/x.md", origin="runbooks/x.md") for i in range(300)]
    index = MemoryIndex(ctx.settings, embedder=_Counting(fail_on_call=3))  # type: ignore[arg-type]
    with pytest.raises(EmbeddingError):
        index.add_documents(records, replace_origins=["runbooks/x.md"])
    written = index._mirror(DOCUMENTS).collection.count()
    assert written == 256  # the two chunks embedded before the crash were written
    ctx.close()
    resumed = _Counting()
    again = MemoryIndex(ctx.settings, embedder=resumed)  # type: ignore[arg-type]
    assert again.counts()["documents"] == 300
    assert resumed.texts == 300 - written  # only the missing ones embedded


def test_one_query_embedding_for_incidents_and_documents(seeded: ToolContext) -> None:
    emb = _Counting()
    index = MemoryIndex(seeded.settings, embedder=emb)  # type: ignore[arg-type]
    index.sync_incidents(seeded.db)
    index.add_documents([MemoryRecord(id="rb-1", kind="runbook", title="Mailer", text="Mailer OOM: roll back",
                                      source="runbooks/mailer.md", origin="runbooks/mailer.md")],
                        replace_origins=["runbooks/mailer.md"])
    before = emb.calls
    assert index.search_all("mailer OOM", k=5)
    assert emb.calls == before + 1
