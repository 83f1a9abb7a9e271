"""Practice works as printed: the answer reaches the drill from a terminal pointed at the practice world,
and the default world lives under the data dir and is gone afterwards (issue 19)."""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from firebreak.settings import Settings, get_settings
from firebreak.simulations.practice import instructions, practise
from firebreak.simulations.practice_answer import parse_answer, submit_answer

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


@pytest.fixture
def team(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    team_dir = tmp_path / "team"
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(team_dir))
    monkeypatch.setenv("USER", "alice")
    get_settings.cache_clear()
    yield team_dir
    get_settings.cache_clear()


def test_printed_commands_name_their_data_dirs_and_the_run() -> None:
    lines = instructions("alice", "abc123", 10, Path("/data/practice/abc123"), Path("/data"))
    text = "\n".join(lines)
    assert "FIREBREAK_DATA_DIR=/data/practice/abc123 firebreak incidents list" in text
    assert "FIREBREAK_DATA_DIR=/data firebreak drill answer --run abc123 --suspect" in text
    assert "export" not in text


def test_answer_typed_in_the_practice_world_reaches_the_drill(team: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(
        practise(TINY, speed=600, timeout=60, console=Console(file=out, width=200))))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "--run " not in out.getvalue():
            time.sleep(0.05)
        [marker] = list((team / "practice").glob("*/.firebreak-practice"))
        world = marker.parent
        assert not (tmp_path / ".firebreak-practice").exists()  # nothing in the working tree
        run_id = re.search(r"--run (\w+)", out.getvalue())
        assert run_id is not None and run_id.group(1) == world.name
        # Another terminal that exported the practice world's data dir, as the old instructions said.
        os.environ["FIREBREAK_DATA_DIR"] = str(world)
        get_settings.cache_clear()
        try:
            debrief = submit_answer(parse_answer(["deploy:1.1.0@worker"], "rollback service=worker to=1.0.0", None),
                                    with_investigator=False)
        finally:
            os.environ["FIREBREAK_DATA_DIR"] = str(team)
            get_settings.cache_clear()
        assert debrief.run_id == world.name
    finally:
        thread.join(60)
    assert result and result[0] is not None
    assert not world.exists()  # the default world goes with the drill
