"""The `firebreak` command line: each area contributes one Typer app; this file assembles them."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="firebreak",
    help="Incident triage assistant: alerts in, ranked hypotheses and one approved fix out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module, attribute, command name). A module exposing a Typer app adds a command group.
SUBAPPS = (
    ("memory.incidents_cli", "app", "incidents"),
    ("memory.memory_cli", "app", "memory"),
    ("tools.cli", "logs_app", "logs"),
    ("tools.cli", "metrics_app", "metrics"),
    ("tools.cli", "changes_app", "changes"),
    ("tools.cli", "flags_app", "flags"),
    ("tools.cli", "sentry_app", "sentry"),
    ("simulations.cli", "app", "drill"),
    ("agent.cli", "app", "transcripts"),
    ("server.approvals_cli", "app", "approvals"),
    ("server.users", "app", "users"),
)
# (module, attribute, command name) for single commands.
COMMANDS = (
    ("server.serve_cli", "serve", "serve"),
    ("simulations.demo", "demo", "demo"),
    ("server.mcp_server", "mcp", "mcp"),
)


def _register() -> None:
    for mod_name, attr, name in SUBAPPS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name != mod_name:
                raise
            continue
        sub = getattr(mod, attr, None)
        if sub is not None:
            app.add_typer(sub, name=name)
    for mod_name, attr, name in COMMANDS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name != mod_name:
                raise
            continue
        fn = getattr(mod, attr, None)
        if fn is not None:
            app.command(name)(fn)


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
