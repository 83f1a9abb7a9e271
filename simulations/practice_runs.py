"""Where practice runs are kept: the team's state database (even when typed from inside a practice
world), the practice world's folder and marker, and the `DrillRun` rows of open and finished runs.

The trainee investigates with FIREBREAK_DATA_DIR pointing at the practice world; the marker there names
the team's data dir, so `drill answer` finds the run from either terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.settings import Settings, get_settings
from firebreak.state.drills import DrillRun

MARKER = ".firebreak-practice"


class PracticeError(RuntimeError):
    """Something the trainee can fix (no drill running, a data dir that is not a practice dir...)."""


def default_person() -> str:
    return os.environ.get("FIREBREAK_USER") or os.environ.get("USER") or getpass.getuser() or "unknown"


def team_ctx() -> ToolContext:
    """The team's state database (where practice runs are kept), even from inside a practice world."""
    settings = get_settings()
    return ToolContext(settings=team_from_marker(settings) or settings)


def open_run(ctx: ToolContext, person: str | None, run_id: str | None) -> DrillRun:
    """The run `run_id`, or else the latest unanswered practice run (of `person` when given)."""
    with ctx.db.session() as s:
        if run_id:
            row = s.get(DrillRun, run_id)
            if row is None:
                raise PracticeError(f"no drill run {run_id}")
            return row
        query = select(DrillRun).where(DrillRun.mode == "practice", DrillRun.finished_at.is_(None))
        if person:
            query = query.where(DrillRun.person == person)
        row = s.scalars(query.order_by(DrillRun.started_at.desc()).limit(1)).first()
        if row is None:
            who = f" for {person}" if person else ""
            raise PracticeError(f"no practice drill is running{who}: start one with `firebreak drill practice FILE`")
        return row


def prepare_dir(data_dir: str | Path, run_id: str, team: Settings) -> Path:
    """A fresh practice world. Its marker names the run and the team's data dir, so `drill answer`
    finds the run even when typed with FIREBREAK_DATA_DIR pointing at the practice world."""
    path = Path(data_dir).resolve()
    if path.exists():
        if (path / MARKER).exists():
            shutil.rmtree(path)
        elif any(path.iterdir()):
            raise PracticeError(f"{path} is not empty and is not a practice folder: choose another --data-dir")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text(json.dumps({
        "about": "A practice drill's world; `firebreak drill practice` wipes and rebuilds it.",
        "run_id": run_id, "team_data_dir": str(Path(team.data_dir).resolve()),
    }) + "\n")
    return path


def team_from_marker(settings: Settings) -> Settings | None:
    """When the configured data dir is a practice world, the team's settings (its data dir) instead."""
    marker = Path(settings.data_dir) / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    team_dir = info.get("team_data_dir") if isinstance(info, dict) else None
    if not team_dir:
        return None
    return settings.model_copy(update={"data_dir": Path(team_dir)})


def run_row(team: ToolContext, run_id: str) -> Any:
    with team.db.session() as s:
        return s.get(DrillRun, run_id)


def close_unanswered(team: ToolContext, run_id: str) -> None:
    with team.db.session() as s:
        row = s.get(DrillRun, run_id)
        if row is not None and row.finished_at is None:
            row.finished_at = datetime.now(UTC)
            row.result = {**(row.result or {}), "status": "abandoned"}
