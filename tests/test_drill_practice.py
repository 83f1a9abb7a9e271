"""Practice mode: alerts on an accelerated clock, an answer from another process, score and debrief, history."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.settings import Settings, get_settings
from firebreak.simulations.history import drill_history
from firebreak.simulations.practice import practise
from firebreak.simulations.practice_answer import parse_answer, parse_fix, parse_suspect, submit_answer
from firebreak.simulations.practice_runs import PracticeError
from firebreak.state.alerts import Alert
from firebreak.state.drills import DrillRun

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


@pytest.fixture
def team(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The team's state database, where practice runs and answers are kept."""
    team_dir = tmp_path / "team"
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(team_dir))
    monkeypatch.setenv("FIREBREAK_APPROVERS", "alice,bob")
    monkeypatch.setenv("USER", "alice")
    get_settings.cache_clear()
    yield team_dir
    get_settings.cache_clear()


def test_parse_answers() -> None:
    assert parse_suspect("deploy:4.6.2@mailer").model_dump() == {"kind": "deploy", "service": "mailer", "ref": "4.6.2"}
    assert parse_suspect("infra:maintenance: failover to db-2").ref == "maintenance: failover to db-2"
    assert parse_fix("rollback service=mailer to=4.6.1") == {"action": "rollback", "service": "mailer", "to": "4.6.1"}
    for bad, msg in (("memory", "kind:ref"), ("gremlin:x", "unknown kind")):
        with pytest.raises(ValueError, match=msg):
            parse_suspect(bad)
    for bad, msg in (("reboot service=x", "unknown action"), ("rollback service=x", "needs to"),
                     ("rollback service=x to=1 colour=red", "takes service, to"), ("rollback x", "key=value")):
        with pytest.raises(ValueError, match=msg):
            parse_fix(bad)
    with pytest.raises(ValueError, match="severity"):
        parse_answer(["deploy:1"], None, "apocalyptic")


def test_practice_round_trip(team: Path, tmp_path: Path) -> None:
    world = tmp_path / "practice"
    answered: list[object] = []
    stop = threading.Event()

    def trainee() -> None:
        deadline = time.monotonic() + 60
        ctx = ToolContext(settings=get_settings())
        try:
            while not (world / ".firebreak-practice").exists() and not stop.is_set():
                time.sleep(0.05)
            while time.monotonic() < deadline and not stop.is_set():
                # Wait until the alerts have reached the practice world, as a trainee would.
                try:
                    p_ctx = ToolContext(settings=Settings(data_dir=world, _env_file=None))  # type: ignore[call-arg]
                    with p_ctx.db.session() as s:
                        n = len(list(s.scalars(select(Alert))))
                    p_ctx.close()
                except Exception:  # the world is still being built
                    n = 0
                if n >= 3:
                    break
                time.sleep(0.2)
            if stop.is_set():
                return
            answer = parse_answer(["resource:memory@worker", "deploy:1.1.0@worker"],
                                  "rollback service=worker to=1.0.0", "major", "the errors start with 1.1.0")
            answered.append(submit_answer(answer, with_investigator=False))
        finally:
            ctx.close()

    thread = threading.Thread(target=trainee)
    thread.start()
    try:
        debrief = practise(TINY, speed=600, data_dir=world, timeout=90, console=Console(quiet=True))
    finally:
        stop.set() if not answered else None
        thread.join(30)
    assert debrief is not None and answered
    t = debrief.trainee
    assert (t.rank, t.hit_at_1, t.hit_at_3, t.mitigation_ok, t.severity_ok) == (2, False, True, True, True)
    assert debrief.person == "alice" and "TRUTH-ROOT-CAUSE-MARKER" in debrief.truth["root_cause"]
    # The practice world never held the truth or the debrief.
    for path in world.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"TRUTH-ROOT-CAUSE-MARKER" not in data and b"SECRET-DEBRIEF-MARKER" not in data

    ctx = ToolContext(settings=get_settings())
    with ctx.db.session() as s:
        [run] = list(s.scalars(select(DrillRun)))
        assert run.mode == "practice" and run.finished_at is not None and run.result["rank"] == 2
        assert run.answer is not None and run.answer["fix"]["action"] == "rollback"
    hist = drill_history(days=30, ctx=ctx)
    ctx.close()
    assert [p.person for p in hist.people] == ["alice"] and hist.people[0].answered == 1
    assert hist.not_lately == ["bob"]
    with pytest.raises(PracticeError, match="no practice drill is running"):
        submit_answer(parse_answer(["deploy:1.1.0"], None, None), with_investigator=False)


def test_cli_answer_and_history_without_a_drill(team: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["drill", "answer", "--suspect", "deploy:1.1.0@worker"])
    assert res.exit_code == 2 and "no practice drill is running" in res.output
    res = runner.invoke(app, ["drill", "answer", "--suspect", "nonsense"])
    assert res.exit_code == 2 and "kind:ref" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["drill", "history"])
    assert res.exit_code == 0 and "Not practised in the last 30 days: alice, bob" in res.output


def test_practice_alerts_reach_slack_and_unanswered_runs_close(
    team: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_slack import FakeSlack

    with FakeSlack() as slack:
        monkeypatch.setenv("FIREBREAK_SLACK_BOT_TOKEN", slack.token)
        monkeypatch.setenv("FIREBREAK_SLACK_CHANNEL", "C0PRACTICE")
        monkeypatch.setenv("FIREBREAK_SLACK_API_URL", slack.api_url)
        get_settings.cache_clear()
        result = practise(TINY, speed=1200, data_dir=tmp_path / "p", timeout=3, console=Console(quiet=True))
        texts = [c.get("text", "") for c in slack.calls("chat.postMessage")]
    assert result is None
    assert any("WorkerJobsStalled" in t for t in texts) and any("RESOLVED" in t for t in texts)
    assert all(t.startswith("[practice drill, alice]") for t in texts)
    ctx = ToolContext(settings=get_settings())
    with ctx.db.session() as s:
        [run] = list(s.scalars(select(DrillRun)))
        assert run.finished_at is not None and run.result["status"] == "abandoned"
    ctx.close()


def test_investigator_column_is_its_own_scored_run(settings: Settings) -> None:
    """The debrief's investigator column: a separate drill of the same scenario, scored by the same rules."""
    from firebreak.simulations.practice_answer import investigator_side
    from firebreak.simulations.scenario import load_scenario

    side = investigator_side(load_scenario(TINY))
    assert side is not None
    assert side.suspects[0].model_dump() == {"kind": "deploy", "service": "worker", "ref": "1.1.0"}
    assert (side.rank, side.hit_at_1, side.mitigation_ok, side.severity_ok) == (1, True, True, True)
    assert side.fix == {"action": "rollback", "service": "worker", "to": "1.0.0"} and side.severity == "major"
