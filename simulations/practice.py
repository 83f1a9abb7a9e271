"""Practice drills for people: a blank incident on an accelerated clock, answered from the terminal.

`firebreak drill practice FILE` builds the world in its own data dir, shifted so that the whole run
lies in the past of the wall clock (the CLI tools in another terminal see it with their usual
windows), feeds telemetry as simulated time passes (nothing from the future is visible), delivers
the alerts through the real intake and prints them (and posts them to Slack when configured).
`firebreak drill answer` records the trainee's hypotheses and fix in the team's state database,
scores them, runs the investigator on the same scenario in a separate world, and prints the debrief
side by side with the truth. The practice world never contains the truth.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from firebreak.agent.actions import ACTION_FIELDS
from firebreak.clock import ScaledClock
from firebreak.context import ToolContext
from firebreak.settings import Settings, get_settings
from firebreak.simulations.generator import build_world
from firebreak.simulations.scenario import Scenario, load_scenario
from firebreak.simulations.scorer import SuspectIn, describe_truth, score

MARKER = ".firebreak-practice"
SUSPECT_KINDS = ("deploy", "config", "flag", "dependency", "resource", "traffic", "certificate", "data", "infra")
TICK_SECONDS = 0.5


class PracticeError(RuntimeError):
    """Something the trainee can fix (no drill running, a data dir that is not a practice dir...)."""


class Answer(BaseModel):
    suspects: list[SuspectIn] = Field(min_length=1)
    fix: dict[str, Any] | None = None
    severity: str | None = None
    note: str = ""


class Side(BaseModel):
    """One column of the debrief: the trainee's or the investigator's answer and its score."""

    suspects: list[SuspectIn] = Field(default_factory=list)
    fix: dict[str, Any] | None = None
    severity: str | None = None
    rank: int | None = None
    hit_at_1: bool = False
    hit_at_3: bool = False
    mitigation_ok: bool = False
    severity_ok: bool | None = None


class Debrief(BaseModel):
    run_id: str
    scenario: str
    title: str
    person: str
    summary: str
    truth: dict[str, Any]
    trainee: Side
    investigator: Side | None = None
    answer_seconds: float | None = None
    simulated_minutes: float | None = None
    note: str = ""


def default_person() -> str:
    return os.environ.get("FIREBREAK_USER") or os.environ.get("USER") or getpass.getuser() or "unknown"


# --------------------------------------------------------------------------------------------- answer


def parse_suspect(text: str) -> SuspectIn:
    """`kind:ref` or `kind:ref@service` (e.g. `deploy:4.6.2@mailer`, `config:db.pool_size@api`)."""
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest.strip():
        raise ValueError(f"--suspect {text!r}: write kind:ref or kind:ref@service, e.g. deploy:4.6.2@mailer")
    if kind not in SUSPECT_KINDS:
        raise ValueError(f"--suspect {text!r}: unknown kind {kind!r} ({', '.join(SUSPECT_KINDS)})")
    ref, service = rest.strip(), None
    if "@" in ref:
        head, _, tail = ref.rpartition("@")
        if head and tail and all(c.isalnum() or c in "-_." for c in tail):
            ref, service = head.strip(), tail.strip()
    return SuspectIn(kind=kind, ref=ref, service=service)


def parse_fix(text: str) -> dict[str, Any]:
    """`rollback service=mailer to=4.6.1` -> {"action": "rollback", "service": "mailer", "to": "4.6.1"}."""
    parts = shlex.split(text)
    if not parts:
        raise ValueError("--fix: give an action, e.g. \"rollback service=mailer to=4.6.1\"")
    action = parts[0]
    if action not in ACTION_FIELDS:
        raise ValueError(f"--fix: unknown action {action!r} ({', '.join(ACTION_FIELDS)})")
    fix: dict[str, Any] = {"action": action}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"--fix: {part!r} is not key=value")
        if key not in ACTION_FIELDS[action]:
            raise ValueError(f"--fix: {action} takes {', '.join(ACTION_FIELDS[action])}, not {key!r}")
        fix[key] = value
    missing = [k for k, required in ACTION_FIELDS[action].items() if required and k not in fix]
    if missing:
        raise ValueError(f"--fix: {action} needs {', '.join(missing)}")
    return fix


def parse_answer(suspects: list[str], fix: str | None, severity: str | None, note: str = "") -> Answer:
    if not suspects:
        raise ValueError("give at least one --suspect")
    if severity is not None and severity not in ("minor", "major", "critical"):
        raise ValueError(f"--severity: {severity!r} is not minor, major or critical")
    return Answer(suspects=[parse_suspect(s) for s in suspects], fix=parse_fix(fix) if fix else None,
                  severity=severity, note=note)


def _team_ctx() -> ToolContext:
    """The team's state database (where practice runs are kept), even from inside a practice world."""
    settings = get_settings()
    return ToolContext(settings=_team_from_marker(settings) or settings)


def _open_run(ctx: ToolContext, person: str | None, run_id: str | None) -> Any:
    from firebreak.state.drills import DrillRun

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


def _side(answer_suspects: list[SuspectIn], fix: dict[str, Any] | None, severity: str | None, sc: Scenario) -> Side:
    sco = score(answer_suspects, fix, severity, sc.truth)
    return Side(suspects=answer_suspects, fix=fix, severity=severity, rank=sco.rank, hit_at_1=sco.hit_at_1,
                hit_at_3=sco.hit_at_3, mitigation_ok=sco.mitigation_ok, severity_ok=sco.severity_ok)


def investigator_side(sc: Scenario) -> Side | None:
    """The investigator on the same scenario, in a world of its own (so the trainee's is never spoiled)."""
    from firebreak.simulations.runner import run_drill

    try:
        res = run_drill(sc)
    except Exception:
        return None
    suspects = [SuspectIn(kind=str(h.suspect.get("kind")), service=h.suspect.get("service"),
                          ref=str(h.suspect.get("ref"))) for h in res.hypotheses]
    return Side(suspects=suspects, fix=res.proposed_fix, severity=res.details.get("severity"), rank=res.rank,
                hit_at_1=res.hit_at_1, hit_at_3=res.hit_at_3, mitigation_ok=res.mitigation_ok,
                severity_ok=res.severity_ok)


def submit_answer(answer: Answer, *, person: str | None = None, run_id: str | None = None,
                  with_investigator: bool = True) -> Debrief:
    """Record the answer on the open practice run, score it, and keep the debrief with the run."""
    from firebreak.state.drills import DrillRun

    ctx = _team_ctx()
    try:
        row = _open_run(ctx, person or (None if run_id else default_person()), run_id)
        if row.finished_at is not None and row.answer is not None:
            raise PracticeError(f"drill run {row.id} was already answered")
        info = dict(row.result or {})
        sc = load_scenario(info["file"])
        now = datetime.now(UTC)
        elapsed = (now - row.started_at).total_seconds()
        debrief = Debrief(
            run_id=row.id, scenario=sc.id, title=sc.title, person=row.person, summary=sc.summary.strip(),
            truth=describe_truth(sc.truth), trainee=_side(answer.suspects, answer.fix, answer.severity, sc),
            investigator=investigator_side(sc) if with_investigator else None, answer_seconds=round(elapsed, 1),
            simulated_minutes=round(elapsed * float(info.get("speed", 1.0)) / 60.0, 1), note=answer.note,
        )
        t = debrief.trainee
        with ctx.db.session() as s:
            fresh = s.get(DrillRun, row.id)
            assert fresh is not None
            fresh.answer = answer.model_dump(mode="json")
            fresh.finished_at = now
            fresh.result = {**info, "status": "answered", "rank": t.rank, "hit_at_1": t.hit_at_1,
                            "hit_at_3": t.hit_at_3, "mitigation_ok": t.mitigation_ok,
                            "severity_ok": t.severity_ok, "wall_seconds": debrief.answer_seconds,
                            "debrief": debrief.model_dump(mode="json")}
        return debrief
    finally:
        ctx.close()


def _fmt_suspect(s: SuspectIn | None) -> str:
    if s is None:
        return "–"
    return f"{s.kind}: {s.ref}" + (f" ({s.service})" if s.service else "")


def _fmt_fix(fix: dict[str, Any] | None) -> str:
    if not fix:
        return "–"
    return fix.get("action", "?") + "(" + ", ".join(f"{k}={v}" for k, v in fix.items() if k != "action") + ")"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("right" if ok else "wrong")


def print_debrief(d: Debrief, console: Console) -> None:
    """Score and debrief: the trainee, the investigator and the truth side by side."""
    console.print(f"\n[bold]Debrief: {d.title}[/bold] ({d.scenario}), {d.person}", highlight=False)
    if d.answer_seconds is not None:
        console.print(f"answered after {d.answer_seconds:.0f} s ({d.simulated_minutes} simulated minutes)",
                      highlight=False)
    table = Table(show_lines=True)
    table.add_column("")
    for header in ("You", "Investigator", "Truth"):
        table.add_column(header, overflow="fold")  # a fix is read whole, never cut with an ellipsis
    inv = d.investigator
    truth_culprit = d.truth["culprit"]
    table.add_row(
        "Top suspect", _fmt_suspect(d.trainee.suspects[0] if d.trainee.suspects else None),
        _fmt_suspect(inv.suspects[0] if inv and inv.suspects else None),
        _fmt_suspect(SuspectIn(**truth_culprit)))
    table.add_row("Rank of the culprit", str(d.trainee.rank or "–"), str(inv.rank or "–") if inv else "n/a", "1")
    table.add_row("Fix", f"{_fmt_fix(d.trainee.fix)}\n{_mark(d.trainee.mitigation_ok)}",
                  f"{_fmt_fix(inv.fix)}\n{_mark(inv.mitigation_ok)}" if inv else "n/a",
                  "\n".join(_fmt_fix(m) for m in d.truth["mitigations"]))
    table.add_row("Severity", f"{d.trainee.severity or '–'} ({_mark(d.trainee.severity_ok)})",
                  f"{inv.severity or '–'} ({_mark(inv.severity_ok)})" if inv else "n/a", str(d.truth.get("severity")))
    console.print(table)
    score_line = (f"Your score: hit@1 {'yes' if d.trainee.hit_at_1 else 'no'}, hit@3 "
                  f"{'yes' if d.trainee.hit_at_3 else 'no'}, fix {_mark(d.trainee.mitigation_ok)}")
    console.print(score_line, highlight=False)
    console.print(f"\n[bold]Root cause[/bold]: {d.truth['root_cause']}", highlight=False)
    if d.summary:
        console.print(f"[bold]What happened[/bold]: {d.summary}", highlight=False)


# ------------------------------------------------------------------------------------------- practise


def _prepare_dir(data_dir: str | Path, run_id: str, team: Settings) -> Path:
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


def _team_from_marker(settings: Settings) -> Settings | None:
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


class _Slack:
    """Posts practice alerts to the team's Slack channel when one is configured."""

    def __init__(self, settings: Settings) -> None:
        self.client: Any = None
        self.channel = settings.slack_channel
        if settings.slack_bot_token is not None and self.channel:
            from slack_sdk import WebClient

            kwargs: dict[str, Any] = {"token": settings.slack_bot_token.get_secret_value()}
            if settings.slack_api_url:
                kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
            self.client = WebClient(**kwargs)

    def post(self, text: str) -> None:
        if self.client is None:
            return
        try:
            self.client.chat_postMessage(channel=self.channel, text=text)
        except Exception:  # a practice drill goes on without Slack
            self.client = None


def practise(
    file: str | Path,
    *,
    person: str | None = None,
    speed: float = 10.0,
    data_dir: str | Path | None = None,
    timeout: float | None = None,
    console: Console | None = None,
) -> Debrief | None:
    """Run the practice loop until the trainee answers (or `timeout` wall seconds pass)."""
    from firebreak.simulations.render import render
    from firebreak.simulations.runner import (
        InProcessTransport,
        Progress,
        deliver,
        describe_alert,
        forget_database,
        make_env,
        record_change,
        seed_world,
        write_logs,
        write_metrics,
    )
    from firebreak.state.drills import DrillRun

    console = console or Console()
    if speed <= 0:
        raise PracticeError("--speed must be above 0")
    original = load_scenario(file)
    who = person or default_person()
    wall0 = datetime.now(UTC).replace(microsecond=0)
    # The whole run lies in the wall clock's past: tools in another terminal see it with their defaults.
    sc = original.model_copy(update={"start": wall0 - original.duration})
    team = _team_ctx()
    run_id = uuid.uuid4().hex[:12]
    own_dir = data_dir is None  # the default lives under the data dir and goes when the drill ends
    try:
        path = _prepare_dir(data_dir or Path(team.settings.data_dir) / "practice" / run_id, run_id, team.settings)
    except BaseException:
        team.close()
        raise
    env = make_env(sc, path)
    env.ctx.clock = ScaledClock(sc.start, factor=speed)
    slack = _Slack(team.settings)
    with team.db.session() as s:
        s.add(DrillRun(id=run_id, scenario_id=original.id, person=who, mode="practice", started_at=wall0,
                       result={"file": str(Path(file).resolve()), "status": "running", "speed": speed,
                               "data_dir": str(path)}))
    world = build_world(sc)
    transport = InProcessTransport(env.ctx)
    progress = Progress()
    for line in instructions(who, run_id, speed, path, Path(team.settings.data_dir).resolve()):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    status = _StatusLine(console, sc, speed)
    try:
        seed_world(env.ctx, sc, world, telemetry=False)
        fed_us = round(sc.start.timestamp() * 1e6) - 1
        step_i = 0
        ended = False
        while True:
            sim_now = env.ctx.clock.now()
            horizon = min(sim_now, sc.end)
            until_us = round(horizon.timestamp() * 1e6)
            if until_us > fed_us:
                write_logs(env.ctx, world.logs, until_us=until_us, since_us=fed_us)
                write_metrics(env.ctx, world, until_ms=until_us // 1000, since_ms=fed_us // 1000)
                fed_us = until_us
            while step_i < len(world.steps) and world.steps[step_i].at <= horizon:
                step = world.steps[step_i]
                step_i += 1
                if step.change is not None:
                    record_change(env.ctx, step.change)
                elif step.notice is not None:
                    n = step.notice
                    deliver(transport, render(n, list(sc.dashboards), env.secrets, step.at), progress)
                    line = describe_alert(n.alert.source, n.alert.name, n.alert.service, n.alert.severity,
                                           n.alert.summary, n.status)
                    stamp = step.at.strftime("%H:%M:%S")
                    console.print(f"[red]{stamp}[/red] {escape(line)}", highlight=False)
                    slack.post(f"[practice drill, {who}] {stamp} {line}")
                    status.alerts += 1
            if not ended and sim_now >= sc.end:
                ended = True
                console.print("The simulated run is over; the world stays as it is until you answer.")
            status.show(sim_now, ended)
            row = _run_row(team, run_id)
            if row is not None and row.finished_at is not None:
                status.stop()
                debrief = Debrief.model_validate((row.result or {}).get("debrief"))
                print_debrief(debrief, console)
                return debrief
            if timeout is not None and (datetime.now(UTC) - wall0).total_seconds() > timeout:
                _close_unanswered(team, run_id)
                console.print("No answer before the timeout; the drill is closed without a score.")
                return None
            time.sleep(TICK_SECONDS)
    except KeyboardInterrupt:
        _close_unanswered(team, run_id)
        console.print("Practice stopped; the drill is closed without a score.")
        return None
    finally:
        status.stop()
        transport.close()
        env.ctx.close()
        forget_database(env.settings)
        team.close()
        if own_dir:
            shutil.rmtree(path, ignore_errors=True)


def instructions(who: str, run_id: str, speed: float, world: Path, team_dir: Path) -> list[str]:
    """What to type elsewhere, complete: each command names its data dir, so it works in any terminal
    whatever that terminal exported (issue 19: `export` then `drill answer` found no drill)."""
    w = shlex.quote(str(world))
    t = shlex.quote(str(team_dir))
    return [
        f"Practice drill for {who} (run {run_id}), clock x{speed:g}. Alerts appear below as they fire.",
        "Investigate in another terminal (the incident's world is its own data dir):",
        f"  FIREBREAK_DATA_DIR={w} firebreak incidents list",
        f"  FIREBREAK_DATA_DIR={w} firebreak changes recent-changes",
        f"  FIREBREAK_DATA_DIR={w} firebreak logs search-logs --level ERROR",
        "  (also metrics, flags and sentry commands; `firebreak logs --help` lists them)",
        "Answer when you know (most likely suspect first):",
        f"  FIREBREAK_DATA_DIR={t} firebreak drill answer --run {run_id} --suspect kind:ref@service "
        '--fix "action key=value ..." --severity major',
        "  kinds: " + ", ".join(SUSPECT_KINDS) + "; e.g. --suspect deploy:4.6.2@mailer "
        '--fix "rollback service=mailer to=4.6.1"',
    ]


class _StatusLine:
    """One live line under the alerts: the simulated clock, how far the run is, and what is awaited,
    so the minutes before the first alert are not silent. Only on a terminal (rich's status)."""

    def __init__(self, console: Console, sc: Scenario, speed: float) -> None:
        self.console = console
        self.sc = sc
        self.speed = speed
        self.alerts = 0
        self._status: Any = None
        if console.is_terminal:
            self._status = console.status("", spinner="dots")
            self._status.start()

    def text(self, sim_now: datetime, ended: bool) -> str:
        clock = sim_now.astimezone(UTC).strftime("%H:%M:%S")
        minutes = max(0.0, (min(sim_now, self.sc.end) - self.sc.start).total_seconds() / 60)
        total = self.sc.duration.total_seconds() / 60
        if ended:
            waiting = "run over: waiting for your answer"
        elif self.alerts == 0:
            waiting = "waiting for the first alert"
        else:
            waiting = f"{self.alerts} alert(s) so far: investigate, then answer"
        return f"simulated {clock} UTC (minute {minutes:.0f} of {total:.0f}, x{self.speed:g}) · {waiting}"

    def show(self, sim_now: datetime, ended: bool) -> None:
        if self._status is not None:
            self._status.update(self.text(sim_now, ended))

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _run_row(team: ToolContext, run_id: str) -> Any:
    from firebreak.state.drills import DrillRun

    with team.db.session() as s:
        return s.get(DrillRun, run_id)


def _close_unanswered(team: ToolContext, run_id: str) -> None:
    from firebreak.state.drills import DrillRun

    with team.db.session() as s:
        row = s.get(DrillRun, run_id)
        if row is not None and row.finished_at is None:
            row.finished_at = datetime.now(UTC)
            row.result = {**(row.result or {}), "status": "abandoned"}

