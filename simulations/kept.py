"""Drills kept: every `drill run` leaves its score, report and transcript in the team's data dir.

Why: a drill builds its world in a temporary folder and removes it, so the transcript and the report
went with it and `drill history` had nothing to show (issue 19). The world itself (telemetry stores,
index) is large and rebuilt from the scenario in seconds, so only what a person reviews is kept: one
`DrillRun` row whose `result` holds the spec's score object plus `report` and `transcript` (the same
fields `firebreak transcripts show --json` prints for a live run).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firebreak.context import ToolContext
from firebreak.settings import Settings, get_settings

PREFIX = "drill-"


class KeptDrillNotFound(LookupError):
    """No kept drill run with that id."""


def _person() -> str:
    return os.environ.get("FIREBREAK_USER") or os.environ.get("USER") or getpass.getuser() or "unknown"


def capture(world: ToolContext, result: Any) -> dict[str, Any]:
    """What to keep of a finished drill, read from its world before the world is removed."""
    from firebreak.agent.transcripts import TranscriptError, get_transcript

    kept: dict[str, Any] = {**result.spec_json(), "status": "done"}
    inv_id = (result.details or {}).get("investigation")
    if inv_id:
        try:
            t = get_transcript(world, str(inv_id))
        except TranscriptError:
            t = None
        if t is not None:
            kept["report"] = t.report
            kept["transcript"] = t.model_dump(mode="json")
    kept["incident"] = (result.details or {}).get("incident")
    return kept


def recorder(file: str | Path, *, mode: str = "run", settings: Settings | None = None,
             person: str | None = None) -> tuple[Callable[[ToolContext, Any], None], list[str]]:
    """A callback for `run_drill(on_done=...)` that keeps the drill in the team's database, and the list
    that receives the kept run's id (so the CLI can print where to look)."""
    ids: list[str] = []

    def keep(world: ToolContext, result: Any) -> None:
        data = capture(world, result)
        data["file"] = str(Path(file).resolve())
        ids.append(store(data, mode=mode, settings=settings, person=person))

    return keep, ids


def store(data: dict[str, Any], *, mode: str, settings: Settings | None = None, person: str | None = None) -> str:
    """Write one kept drill; returns its id (`drill-…`)."""
    from firebreak.state.drills import DrillRun

    run_id = PREFIX + uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    started = now
    wall = data.get("wall_seconds")
    if isinstance(wall, int | float):
        started = now - timedelta(seconds=float(wall))
    ctx = ToolContext(settings=settings or get_settings())
    try:
        with ctx.db.session() as s:
            s.add(DrillRun(id=run_id, scenario_id=str(data.get("scenario") or "?"), person=person or _person(),
                           mode=mode, started_at=started, finished_at=now, result=data))
    finally:
        ctx.close()
    return run_id


def load(ctx: ToolContext, run_id: str) -> Any:
    """The kept `DrillRun` row (detached), or KeptDrillNotFound."""
    from firebreak.state.drills import DrillRun

    with ctx.db.session() as s:
        row = s.get(DrillRun, run_id)
        if row is None:
            raise KeptDrillNotFound(f"id: no drill run {run_id}")
        s.expunge(row)
        return row


def kept_transcripts(ctx: ToolContext, limit: int = 50) -> list[Any]:
    """Kept drill runs that carry a transcript, newest first."""
    from sqlalchemy import select

    from firebreak.state.drills import DrillRun

    with ctx.db.session() as s:
        rows = list(s.scalars(select(DrillRun).order_by(DrillRun.started_at.desc()).limit(limit * 4)))
        for r in rows:
            s.expunge(r)
    return [r for r in rows if isinstance(r.result, dict) and r.result.get("transcript")][:limit]
