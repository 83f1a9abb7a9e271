"""`firebreak serve`: the HTTP server (webhooks, API, web page) with the investigation worker."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

import typer

from firebreak.settings import Settings

if TYPE_CHECKING:
    from firebreak.context import ToolContext


def _port_free(host: str, port: int) -> bool:
    """False when the port is taken; other bind failures (no such address) raise OSError for --host."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _open_context() -> ToolContext:
    """Settings and database checked before listening: a server whose every request fails would drop alerts."""
    from pydantic import ValidationError
    from sqlalchemy import select

    from firebreak.context import ToolContext
    from firebreak.redact import redact_text
    from firebreak.state.incidents import Incident

    try:
        ctx = ToolContext(settings=Settings())
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "FIREBREAK_" + ".".join(str(p) for p in err["loc"]).upper()
        typer.echo(f"error: settings: {name}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        with ctx.db.session() as s:
            s.execute(select(Incident.id).limit(1))
    except Exception as exc:  # bad URL, unreachable server, a file that is not a database...
        first = (str(exc).splitlines() or [""])[0]
        where = redact_text(ctx.settings.database_url or str(ctx.settings.data_dir))
        typer.echo(f"error: database: cannot open {where}: {type(exc).__name__}: {redact_text(first)}", err=True)
        raise typer.Exit(2) from None
    return ctx


def _log_to_stderr(level: str) -> None:
    """Firebreak's own log lines (a refused webhook and why, a failed backend call) on stderr at the
    server's level; uvicorn only configures its own loggers. httpx's per-request lines stay quiet."""
    import logging

    logging.basicConfig(level=logging.DEBUG if level == "trace" else level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port"),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="run queued investigations in this process"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
) -> None:
    """Serve webhooks, the API and the web page on HOST:PORT (settings from FIREBREAK_* and .env)."""
    import uvicorn

    from firebreak.server.app import create_app

    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        typer.echo(f"error: --log-level: unknown level {log_level!r}", err=True)
        raise typer.Exit(2)
    try:
        free = _port_free(host, port)
    except (OSError, socket.gaierror) as exc:
        typer.echo(f"error: --host: cannot listen on {host!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not free:
        typer.echo(f"error: --port: {host}:{port} is already in use", err=True)
        raise typer.Exit(2)
    app = create_app(_open_context(), start_worker=worker)
    typer.echo(f"Firebreak on http://{host}:{port}/ (worker {'on' if worker else 'off'})", err=True)
    _log_to_stderr(log_level)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)


def status(
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Durable workflows: replicas, workflows pending / recovering, approvals waiting, queue depth, oldest wait."""
    from firebreak.workflows.status import engine_status

    st = engine_status(_open_context())
    if as_json:
        typer.echo(st.model_dump_json())
        return
    alive = [r.executor_id for r in st.replicas if r.alive]
    typer.echo(f"replicas alive: {len(alive)} ({', '.join(alive) or 'none'}); "
               f"known: {len(st.replicas)}")
    typer.echo(f"workflows pending: {st.workflows_pending} (recovering {st.workflows_recovering}), "
               f"enqueued: {st.workflows_enqueued}")
    typer.echo(f"waiting for approval: {st.waiting_for_approval}; queue depth: {st.queue_depth}; oldest wait: "
               + (f"{st.oldest_wait_seconds:g}s" if st.oldest_wait_seconds is not None else "-"))
    if st.outcome_unknown:
        typer.echo(f"outcome unknown, check by hand: {', '.join(st.outcome_unknown)}")
    typer.echo("investigations: " + (", ".join(f"{k} {v}" for k, v in sorted(st.investigations.items())) or "none"))
