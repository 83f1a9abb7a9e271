"""A drill's own world: settings over a data dir with everything outside cut off, the simulated clock,
the context and fresh webhook secrets.

Kept apart from the timeline and the scoring so the demo, practice drills and recorded incidents can
build the same sealed world without running a drill.
"""

from __future__ import annotations

import secrets as pysecrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.db import forget_database
from firebreak.settings import Settings
from firebreak.simulations.render import Secrets
from firebreak.simulations.scenario import Scenario


@dataclass
class DrillEnv:
    """The drill's own world: settings over a data dir, the simulated clock, the context."""

    settings: Settings
    clock: FixedClock
    ctx: ToolContext
    secrets: Secrets
    data_dir: Path
    owns_dir: bool = False

    def close(self) -> None:
        self.ctx.close()
        forget_database(self.settings)
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def dependencies_of(sc: Scenario) -> dict[str, list[str]]:
    return {s.name: list(s.depends_on) for s in sc.services if s.depends_on}


def drill_settings(sc: Scenario | None, data_dir: Path, secrets: Secrets, **extra: Any) -> Settings:
    """Environment settings (model, budgets) with everything that would reach outside the drill cut off.

    `sc` gives the dependencies of a scenario; a recorded incident passes None and its own `dependencies`.
    """
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "flags_file": None,
        "chroma_url": None,
        "loki_url": None,
        "prometheus_url": None,
        "grafana_url": None,
        "grafana_token": None,
        "sentry_api_url": None,
        "sentry_api_token": None,
        "slack_bot_token": None,
        "slack_signing_secret": None,
        "slack_channel": None,
        "service_map": {},
        "group_wait_seconds": 0.0,
        "dependencies": dependencies_of(sc) if sc is not None else {},
        "sentry_client_secret": SecretStr(secrets.sentry_client_secret),
        "grafana_hmac_secret": SecretStr(secrets.grafana_hmac_secret),
        "webhook_token": SecretStr(secrets.webhook_token),
        "api_token": None,
    }
    overrides.update(extra)
    return Settings(**overrides)


def new_secrets() -> Secrets:
    return Secrets(pysecrets.token_hex(16), pysecrets.token_hex(16), pysecrets.token_hex(16))


def make_env(sc: Scenario, data_dir: Path | None = None, **settings_extra: Any) -> DrillEnv:
    """A fresh world for one drill; a temp data dir (removed on close) unless one is given."""
    owns = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="firebreak-drill-")) if data_dir is None else data_dir
    secrets = new_secrets()
    settings = drill_settings(sc, path, secrets, **settings_extra)
    clock = FixedClock(sc.start)
    ctx = ToolContext(settings=settings, clock=clock)
    return DrillEnv(settings, clock, ctx, secrets, path, owns)
