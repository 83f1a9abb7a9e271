"""The registered memory tools, through the one code path the agent, API and MCP use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.context import ToolContext
from firebreak.memory.importers import collect
from firebreak.memory.index import get_index
from firebreak.tools.registry import REGISTRY, ToolError, call_tool, load_tools
from tests.test_memory_index import add_incident

DATA = Path(__file__).parent / "data" / "memory"
T0 = datetime(2025, 11, 4, 9, 12, tzinfo=UTC)


def test_tools_are_registered_in_the_memory_family() -> None:
    load_tools()
    assert REGISTRY["similar_incidents"].family == "memory"
    assert REGISTRY["search_runbooks"].family == "memory"
    assert "has this happened before" in REGISTRY["similar_incidents"].description


def test_similar_incidents_sees_incidents_written_just_now(ctx: ToolContext) -> None:
    add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                 symptoms="mailer restarted in a loop", root_cause="unbounded template cache in 4.5.0",
                 countermeasure="rolled back mailer 4.5.0 to 4.4.9", incident_id="INC-2025-031")
    out = call_tool(ctx, "similar_incidents", {"text": "mailer OOMKilled, MemoryError", "k": 3})
    assert [h["id"] for h in out["hits"]] == ["INC-2025-031"]
    # Written after the first search: found without any reindex call.
    add_incident(ctx, title="Mailer memory leak in retry loop", services=["mailer"], at=T0 + timedelta(days=90),
                 symptoms="MemoryError, retries forever", root_cause="retry loop ignores max attempts",
                 incident_id="INC-2026-004")
    out = call_tool(ctx, "similar_incidents", {"text": "mailer MemoryError retries", "k": 1})
    hit = out["hits"][0]
    assert hit["id"] == "INC-2026-004" and out["truncated"] is True
    assert set(hit) >= {"id", "title", "service", "score", "excerpt", "source", "root_cause", "countermeasures"}
    assert hit["service"] == "mailer" and "memoryerror" in hit["matched_identifiers"]
    out = call_tool(ctx, "similar_incidents", {"text": "mailer", "exclude_ids": ["INC-2026-004"],
                                               "since": "2025-01-01T00:00:00Z", "service": "mailer"})
    assert [h["id"] for h in out["hits"]] == ["INC-2025-031"]


def test_open_incident_without_root_cause_is_left_out(ctx: ToolContext) -> None:
    add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                 root_cause="unbounded template cache", incident_id="INC-2025-031")
    add_incident(ctx, title="Mailer OOM, bulk sending stopped", services=["mailer"], at=T0 + timedelta(days=100),
                 symptoms="MemoryError", incident_id="INC-2026-001")  # the incident being triaged
    out = call_tool(ctx, "similar_incidents", {"text": "mailer OOM MemoryError"})
    assert [h["id"] for h in out["hits"]] == ["INC-2025-031"]
    out = call_tool(ctx, "similar_incidents", {"text": "mailer OOM MemoryError", "include_open": True})
    assert [h["id"] for h in out["hits"]] == ["INC-2026-001", "INC-2025-031"]


def test_module_level_sync_for_the_drill_runner(ctx: ToolContext) -> None:
    from firebreak.memory import index

    add_incident(ctx, title="Redis eviction storm", services=["cache"])
    assert index.sync_incidents(ctx).added == 1
    assert index.sync_incidents(ctx).added == 0


def test_search_runbooks_returns_sections_and_threads(ctx: ToolContext) -> None:
    for folder in ("runbooks", "slack"):
        recs, origins = collect(DATA / folder, services=["mailer"])
        get_index(ctx).add_documents(recs, replace_origins=origins)
    out = call_tool(ctx, "search_runbooks", {"text": "MemoryError: Cannot allocate memory in mailer", "k": 3})
    top = out["hits"][0]
    assert top["source"] == "mailer.md#out-of-memory-oomkilled-memoryerror"
    assert top["kind"] == "runbook" and "memoryerror" in top["matched_identifiers"]
    out = call_tool(ctx, "search_runbooks", {"text": "did 4.5.0 go out? rolling back to 4.4.9", "k": 1})
    assert out["hits"][0]["source"] == "slack:#incidents"


def test_empty_memory_answers_no_hits(ctx: ToolContext) -> None:
    assert call_tool(ctx, "similar_incidents", {"text": "anything"}) == {"hits": [], "truncated": False}
    assert call_tool(ctx, "search_runbooks", {"text": "anything"}) == {"hits": [], "truncated": False}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x", "k": 0}, "k"),
        ({"text": "x", "since": "2026-01-01T00:00:00"}, "since"),
        ({"text": "x", "since": "yesterday"}, "since"),
    ],
)
def test_bad_arguments_name_the_field(ctx: ToolContext, args: dict[str, object], field: str) -> None:
    with pytest.raises(ToolError) as err:
        call_tool(ctx, "similar_incidents", args)
    assert err.value.status == 422 and err.value.field == field


def test_unreachable_chroma_server_is_a_503(ctx: ToolContext) -> None:
    ctx.settings.chroma_url = "http://127.0.0.1:9"
    with pytest.raises(ToolError) as err:
        call_tool(ctx, "similar_incidents", {"text": "x"})
    assert err.value.status == 503 and "Chroma" in err.value.message


@pytest.mark.slow
def test_shared_chroma_server(ctx: ToolContext, tmp_path: Path) -> None:
    """FIREBREAK_CHROMA_URL: the index lives in a Chroma server (`chroma run`), nothing in the data dir."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("chroma server binary not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "server"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        ctx.settings.chroma_url = f"http://127.0.0.1:{port}"
        add_incident(ctx, title="Mailer OOM after template cache change", services=["mailer"],
                     root_cause="unbounded template cache", incident_id="INC-2025-031")
        out = call_tool(ctx, "similar_incidents", {"text": "mailer OOMKilled"})
        assert [h["id"] for h in out["hits"]] == ["INC-2025-031"]
        assert not (ctx.settings.data_dir / "chroma").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
