"""Practice drills for people: a blank incident on an accelerated clock, answered from the terminal.

`firebreak drill practice FILE` builds the world in its own data dir, shifted so that the whole run
lies in the past of the wall clock (the CLI tools in another terminal see it with their usual
windows), feeds telemetry as simulated time passes (nothing from the future is visible), delivers
the alerts through the real intake and prints them (and posts them to Slack when configured).
`firebreak drill answer` records the trainee's hypotheses and fix in the team's state database,
scores them, runs the investigator on the same scenario in a separate world, and prints the debrief
side by side with the truth. The practice world never contains the truth.

The parts: `practice_runs` (the team's database, the world's folder, the run rows), `practice_answer`
(parsing and scoring the answer), `practice_debrief` (the debrief); this module is the live loop.
"""

from __future__ import annotations

import shlex
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from firebreak.clock import ScaledClock
from firebreak.db import forget_database
from firebreak.kinds import SUSPECT_KINDS
from firebreak.settings import Settings
from firebreak.simulations.drill_env import make_env
from firebreak.simulations.generator import build_world
from firebreak.simulations.practice_debrief import Debrief, print_debrief
from firebreak.simulations.practice_runs import (
    PracticeError,
    close_unanswered,
    default_person,
    prepare_dir,
    run_row,
    team_ctx,
)
from firebreak.simulations.render import render
from firebreak.simulations.scenario import Scenario, load_scenario
from firebreak.simulations.seeding import record_change, seed_world, write_logs, write_metrics
from firebreak.simulations.timeline import Progress, deliver, describe_alert
from firebreak.simulations.transport import InProcessTransport
from firebreak.state.drills import DrillRun

TICK_SECONDS = 0.5


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
    console = console or Console()
    if speed <= 0:
        raise PracticeError("--speed must be above 0")
    original = load_scenario(file)
    who = person or default_person()
    wall0 = datetime.now(UTC).replace(microsecond=0)
    # The whole run lies in the wall clock's past: tools in another terminal see it with their defaults.
    sc = original.model_copy(update={"start": wall0 - original.duration})
    team = team_ctx()
    run_id = uuid.uuid4().hex[:12]
    own_dir = data_dir is None  # the default lives under the data dir and goes when the drill ends
    try:
        path = prepare_dir(data_dir or Path(team.settings.data_dir) / "practice" / run_id, run_id, team.settings)
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
            row = run_row(team, run_id)
            if row is not None and row.finished_at is not None:
                status.stop()
                debrief = Debrief.model_validate((row.result or {}).get("debrief"))
                print_debrief(debrief, console)
                return debrief
            if timeout is not None and (datetime.now(UTC) - wall0).total_seconds() > timeout:
                close_unanswered(team, run_id)
                console.print("No answer before the timeout; the drill is closed without a score.")
                return None
            time.sleep(TICK_SECONDS)
    except KeyboardInterrupt:
        close_unanswered(team, run_id)
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
