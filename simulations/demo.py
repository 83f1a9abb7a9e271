"""`firebreak demo`: the server with its web page, a drill delivered to it over HTTP, and where to look.

Everything is local and offline: a fresh data dir, a generated API token and web user, the library's
mailer scenario by default. `--exit` (or `--no-wait`) ends after printing instead of serving until Ctrl-C.
"""

from __future__ import annotations

import secrets
import signal
import socket
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

LIBRARY = Path(__file__).resolve().parent / "scenarios"
DEFAULT_SCENARIO = LIBRARY / "mailer-retry-loop.yaml"
DEMO_USER = "demo"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Server:
    """uvicorn in a daemon thread, stopped on request."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="firebreak-demo-server", daemon=True)

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C; the command then exits 143 as a terminated process does."""


def _stop_on_sigterm() -> Any:
    """SIGTERM (a service manager, `kill`, a closing terminal) ends the demo like Ctrl-C, so the
    `finally` below stops the server and removes the temp dir; by default Python would just die.
    Returns the previous handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated

    return signal.signal(signal.SIGTERM, on_term)


def _record_run(ctx: Any, result: Any) -> None:
    from firebreak.state.drills import DrillRun

    now = datetime.now(UTC)
    with ctx.db.session() as s:
        s.add(DrillRun(id=uuid.uuid4().hex[:12], scenario_id=result.scenario, person="investigator", mode="demo",
                       started_at=now, finished_at=now, result=result.spec_json()))


def demo(
    scenario: Path = typer.Option(DEFAULT_SCENARIO, "--scenario", help="Scenario file to run (default: the "
                                  "mailer retry loop from the library)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Keep the demo's world here (default: a temp "
                                         "dir removed at the end)."),
    exit_after: bool = typer.Option(False, "--exit", "--no-wait", help="Stop after printing where to look "
                                    "instead of serving until Ctrl-C."),
) -> None:
    """Start Firebreak with its web page, replay a drill against it, and print where to look."""
    from rich.console import Console

    from firebreak.simulations.cli import print_result
    from firebreak.simulations.drill_env import make_env
    from firebreak.simulations.drill_result import read_triage, result_of
    from firebreak.simulations.generator import build_world
    from firebreak.simulations.scenario import ScenarioError, load_scenario
    from firebreak.simulations.seeding import seed_world
    from firebreak.simulations.timeline import Progress, play
    from firebreak.simulations.transport import HttpTransport

    console = Console(soft_wrap=True)
    started = time.perf_counter()
    try:
        sc = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    host = "127.0.0.1"
    if port == 0:
        port = _free_port(host)
    token = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(12)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir.resolve() if data_dir is not None else Path(tempfile.mkdtemp(prefix="firebreak-demo-"))
    env = make_env(sc, path, api_token=SecretStr(token), approvers=[DEMO_USER])
    env.owns_dir = data_dir is None
    server: _Server | None = None
    transport: HttpTransport | None = None
    previous = _stop_on_sigterm()
    terminated = False
    try:
        from firebreak.server.app import create_app
        from firebreak.server.users import add_user

        with env.ctx.db.session() as s:
            add_user(s, DEMO_USER, password, at=env.clock.now(), replace=True)
        server = _Server(create_app(env.ctx, start_worker=False), host, port)
        server.start()
        base = f"http://{host}:{port}"
        console.print(f"Firebreak is serving on {base}/ (data in {path})", highlight=False)
        world = build_world(sc)
        counts = seed_world(env.ctx, sc, world)
        transport = HttpTransport(base)
        progress = Progress()
        console.print(f"Replaying drill {sc.id!r}: {sc.title}", highlight=False)
        play(sc, world, env, transport, progress, on_step=lambda line: console.print(f"  {line}", highlight=False,
                                                                              markup=False))
        result = result_of(sc, env, progress, read_triage(env.ctx), started)
        result.details.update(counts)
        _record_run(env.ctx, result)
        if data_dir is None:  # the temp world goes at the end: keep the run in the configured data dir
            from firebreak.simulations.kept import capture, store

            kept_id = store({**capture(env.ctx, result), "file": str(scenario.resolve())}, mode="demo")
        print_result(result)
        incident, investigation = result.details.get("incident"), result.details.get("investigation")
        console.print("\n[bold]Where to look[/bold]")
        console.print(f"  web page:      {base}/  (sign in as {DEMO_USER} / {password}; {DEMO_USER} may approve)",
                      highlight=False)
        if incident:
            console.print(f"  incident:      {base}/incidents/{incident}", highlight=False)
        if investigation:
            console.print(f"  transcript:    {base}/transcripts/{investigation}", highlight=False)
        console.print(f"  drills:        {base}/drills", highlight=False)
        if data_dir is None:
            console.print(f"  kept:          {kept_id} (after the demo: `firebreak transcripts show {kept_id}`)",
                          highlight=False)
        console.print(f"  API token:     {token}", highlight=False)
        if incident:
            console.print(f"  try:           curl -H 'Authorization: Bearer {token}' {base}/api/incidents/{incident}",
                          highlight=False)
        if exit_after:
            return
        console.print("\nServing until Ctrl-C.")
        while server.thread.is_alive():
            time.sleep(0.5)
    except _Terminated:
        terminated = True
    except KeyboardInterrupt:
        pass
    finally:
        if transport is not None:
            transport.close()
        if server is not None:
            server.stop()
        env.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        raise typer.Exit(143)
