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
    ("memory.postmortem.cli", "app", "postmortem"),
    ("tools.cli", "logs_app", "logs"),
    ("tools.cli", "metrics_app", "metrics"),
    ("tools.cli", "changes_app", "changes"),
    ("tools.cli", "flags_app", "flags"),
    ("tools.cli", "sentry_app", "sentry"),
    ("tools.cli", "traces_app", "traces"),
    ("simulations.cli", "app", "drill"),
    ("agent.cli", "app", "transcripts"),
    ("server.approvals_cli", "app", "approvals"),
    ("server.users", "app", "users"),
)
# (module, attribute, command name) for single commands.
COMMANDS = (
    ("server.serve_cli", "serve", "serve"),
    ("server.serve_cli", "status", "status"),
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


# Commands whose output is a secret on purpose (a generated token) or a protocol/log stream of its own.
UNREDACTED = (("demo",), ("serve",), ("mcp",), ("users", "token"))


def _redact_output(argv: list[str]) -> None:
    """Every other command prints through the redactor: a secret stored anywhere is not printed."""
    words = [a for a in argv if not a.startswith("-")]
    if any(tuple(words[: len(u)]) == u for u in UNREDACTED):
        return
    from tools.redact import RedactingWriter

    sys.stdout = RedactingWriter(sys.stdout)
    sys.stderr = RedactingWriter(sys.stderr)


def main() -> None:
    """Run the CLI; a broken environment (settings, data dir, database) is one line, not a traceback."""
    import os

    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    # pydantic-ai prints an ASCII-art banner with an advert on the first agent run in a terminal
    # (demo, drill run/bench): its documented switch, set here so child processes inherit it too.
    os.environ.setdefault("PYDANTIC_AI_NO_BANNER", "1")
    _redact_output(sys.argv[1:])
    from workflows import install as install_workflows

    install_workflows()  # the agent asks for approvals through the approval service
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValidationError, SQLAlchemyError, OSError) as exc:
        if os.environ.get("FIREBREAK_DEBUG"):
            raise
        from tools.redact import redact_text

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "database" if isinstance(exc, SQLAlchemyError) else "environment"
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            kind, first = "settings", f"FIREBREAK_{field.upper()}: {err['msg']}"
        sys.stderr.write(f"error: {kind}: {redact_text(first)} (set FIREBREAK_DEBUG=1 for details)\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
