"""Run one drill: build the world, feed the stores, deliver signed alerts, triage, score.

The investigator sees only what a real on-call would: telemetry in the stores, changes, flags, past
incidents and alerts arriving through the real intake, all on the drill's simulated clock. The
scenario's `truth`, `summary`, `title` and `id` never enter a store, a setting or a transcript; only
`simulations.scorer` reads `truth`, after the investigation is over.

The parts: `drill_env` (the sealed world), `seeding` (what it holds), `transport` (how alerts arrive),
`timeline` (walking the run), `drill_result` (what is scored and how the run ends); this module puts
them together, in process or against a running server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.simulations.drill_env import DrillEnv, make_env
from firebreak.simulations.drill_result import (
    DrillResult,
    Triage,
    drill_baselines,
    finish,
    read_triage,
    result_of,
)
from firebreak.simulations.generator import build_world
from firebreak.simulations.render import Secrets
from firebreak.simulations.scenario import Scenario, load_scenario
from firebreak.simulations.seeding import seed_world
from firebreak.simulations.timeline import Progress, play
from firebreak.simulations.transport import HttpTransport, InProcessTransport, Transport


def preload() -> None:
    """Import the intake, the app and the investigator once, before any drill's clock starts.

    A drill's `wall_seconds` measures the drill (file to score), not the one-time cost of importing
    the libraries into a fresh process; scripts/bench_drill.py reports the fresh-process time too.
    """
    import fastapi.testclient  # noqa: F401

    import firebreak.agent.investigator  # noqa: F401
    import firebreak.agent.worker  # noqa: F401
    import firebreak.server.app  # noqa: F401  (imports every router)
    import firebreak.tools.log_store  # noqa: F401
    import firebreak.tools.metric_store  # noqa: F401
    from firebreak.tools.registry import load_tools

    load_tools()


def run_drill(
    path: str | Path | Scenario,
    *,
    server: str | None = None,
    keep_dir: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    on_done: Callable[[ToolContext, DrillResult], None] | None = None,
) -> DrillResult:
    """File to score. In process by default; `server` delivers over HTTP to a running Firebreak that
    shares this process's configured data dir and database (its worker runs the investigation).
    `on_done(world, result)` runs while the world still exists (simulations/kept.py keeps the drill)."""
    started = time.perf_counter()
    sc = path if isinstance(path, Scenario) else load_scenario(path)
    if server:
        return _run_against_server(sc, server, started, on_step)
    env = make_env(sc, keep_dir)
    transport: Transport | None = None
    marks = {"load": time.perf_counter() - started}
    try:
        t = time.perf_counter()
        world = build_world(sc)
        marks["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        counts = seed_world(env.ctx, sc, world)
        marks["seed"] = time.perf_counter() - t
        t = time.perf_counter()
        transport = InProcessTransport(env.ctx)
        progress = Progress()
        play(sc, world, env, transport, progress, on_step=on_step)
        marks["intake"] = time.perf_counter() - t - progress.triage_seconds
        marks["investigate"] = progress.triage_seconds
        t = time.perf_counter()
        result = result_of(sc, env, progress, read_triage(env.ctx), started)
        marks["score"] = time.perf_counter() - t
        result.details["baselines"] = drill_baselines(sc, env, progress)
        return finish(result, env, counts, marks, keep_dir=keep_dir, on_done=on_done)
    finally:
        if transport is not None:
            transport.close()
        env.close()


def _run_against_server(sc: Scenario, server: str, started: float,
                        on_step: Callable[[str], None] | None) -> DrillResult:
    """Deliver to a running server that reads the same data dir; wait for its worker's report."""
    from firebreak.settings import get_settings

    base = get_settings()
    missing = [name for name, val in (("FIREBREAK_SENTRY_CLIENT_SECRET", base.sentry_client_secret),
                                      ("FIREBREAK_GRAFANA_HMAC_SECRET", base.grafana_hmac_secret),
                                      ("FIREBREAK_WEBHOOK_TOKEN", base.webhook_token))
               if val is None or not val.get_secret_value()]
    if missing:
        raise DrillSetupError("--server needs the server's webhook secrets in this environment too: set "
                              + ", ".join(missing))
    assert base.sentry_client_secret and base.grafana_hmac_secret and base.webhook_token
    secrets = Secrets(base.sentry_client_secret.get_secret_value(), base.grafana_hmac_secret.get_secret_value(),
                      base.webhook_token.get_secret_value())
    clock = FixedClock(sc.start)
    ctx = ToolContext(settings=base, clock=clock)
    env = DrillEnv(base, clock, ctx, secrets, base.data_dir, owns_dir=False)
    transport = HttpTransport(server)
    try:
        world = build_world(sc)
        before = _investigation_ids(ctx)
        counts = seed_world(ctx, sc, world)
        progress = Progress()
        play(sc, world, env, transport, progress, sent_at=lambda _at: datetime.now(UTC), on_step=on_step,
             triage=False)
        triage = _wait_for_report(ctx, before, timeout=max(60.0, base.max_wall_seconds + 30))
        result = result_of(sc, env, progress, triage, started)
        result.details.update(counts)
        result.details["server"] = server
        return result
    finally:
        transport.close()
        ctx.close()


class DrillSetupError(RuntimeError):
    """The drill cannot start (missing secret, unreachable server): one line for the CLI."""


def _investigation_ids(ctx: ToolContext) -> set[str]:
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:
        return set(s.scalars(select(Investigation.id)))


def _wait_for_report(ctx: ToolContext, before: set[str], timeout: float) -> Triage:
    from firebreak.state.investigations import Investigation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.db.session() as s:
            rows = [r for r in s.scalars(select(Investigation)) if r.id not in before]
        if rows and all(r.status not in ("queued", "running") for r in rows):
            break
        time.sleep(0.5)
    with ctx.db.session() as s:
        done = [r for r in s.scalars(select(Investigation).where(Investigation.report.is_not(None)))
                if r.id not in before]
    if not done:
        return Triage()
    inv = min(done, key=lambda r: r.queued_at)
    return Triage(inv.incident_id, inv.id, dict(inv.report or {}), len(inv.tool_calls or []), inv.model)
