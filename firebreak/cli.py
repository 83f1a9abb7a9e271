"""The `firebreak` command line: each area contributes one Typer app; this file assembles them."""

from __future__ import annotations

import sys

import typer

from firebreak.agent import cli as agent_cli
from firebreak.memory import incidents_cli, memory_cli
from firebreak.memory.postmortem import cli as postmortem_cli
from firebreak.server import approvals_cli, mcp_server, serve_cli, users
from firebreak.simulations import cli as drill_cli
from firebreak.simulations import demo
from firebreak.tools import cli as tools_cli

app = typer.Typer(
    name="firebreak",
    help="Incident triage assistant: alerts in, ranked hypotheses and one approved fix out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Every command group and command, imported by name: a renamed module fails loudly here.
app.add_typer(incidents_cli.app, name="incidents")
app.add_typer(memory_cli.app, name="memory")
app.add_typer(postmortem_cli.app, name="postmortem")
app.add_typer(tools_cli.logs_app, name="logs")
app.add_typer(tools_cli.metrics_app, name="metrics")
app.add_typer(tools_cli.changes_app, name="changes")
app.add_typer(tools_cli.flags_app, name="flags")
app.add_typer(tools_cli.sentry_app, name="sentry")
app.add_typer(tools_cli.traces_app, name="traces")
app.add_typer(drill_cli.app, name="drill")
app.add_typer(agent_cli.app, name="transcripts")
app.add_typer(approvals_cli.app, name="approvals")
app.add_typer(users.app, name="users")
app.command("serve")(serve_cli.serve)
app.command("status")(serve_cli.status)
app.command("demo")(demo.demo)
app.command("mcp")(mcp_server.mcp)


# Commands whose output is a secret on purpose (a generated token) or a protocol/log stream of its own.
UNREDACTED = (("demo",), ("serve",), ("mcp",), ("users", "token"))


def _redact_output(argv: list[str]) -> None:
    """Every other command prints through the redactor: a secret stored anywhere is not printed."""
    words = [a for a in argv if not a.startswith("-")]
    if any(tuple(words[: len(u)]) == u for u in UNREDACTED):
        return
    from firebreak.redact import RedactingWriter

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
    from firebreak.workflows import install as install_workflows

    install_workflows()  # the agent asks for approvals through the approval service
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValidationError, SQLAlchemyError, OSError) as exc:
        if os.environ.get("FIREBREAK_DEBUG"):
            raise
        from firebreak.redact import redact_text

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
