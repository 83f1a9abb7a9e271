"""`rank_suspects`, the LLM path's entry point: it gathers the evidence through the real registry tools
(real stores, the offline plan's calls) and returns the ranked table a model starts from."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from firebreak.agent.investigator import RunRecorder, build_tools
from firebreak.agent.triage.tool import TOOL_NAME, rank_for
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import bench_agent  # noqa: E402  (the benchmark's small world: a mailer deploy, a red-herring deploy)


def test_rank_suspects_gathers_through_the_registry_and_ranks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    ctx = ToolContext(settings=settings, clock=FixedClock(bench_agent.START + timedelta(minutes=45)))
    try:
        incident_id = bench_agent.build_world(ctx, 6500)
        out = rank_for(ctx, incident_id)
    finally:
        ctx.close()
    top = out["suspects"][0]
    assert top["suspect"] == {"kind": "deploy", "service": "mailer", "ref": "4.6.2"}
    assert top["fix"] == {"action": "rollback", "service": "mailer", "to": "4.6.1"}
    assert top["probability"] > max(row["probability"] for row in out["suspects"][1:])
    assert isinstance(out["could_not_see"], list)


def test_the_llm_path_registers_the_tool() -> None:
    names = [t.name for t in build_tools(RunRecorder("test"))]
    assert TOOL_NAME in names and names.index(TOOL_NAME) < names.index("submit_report")
