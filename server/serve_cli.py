"""`firebreak serve`: the HTTP server (webhooks, API, web page) with the investigation worker."""

from __future__ import annotations

import socket

import typer


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port"),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="run queued investigations in this process"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
) -> None:
    """Serve webhooks, the API and the web page on HOST:PORT (settings from FIREBREAK_* and .env)."""
    import uvicorn

    from server.app import create_app

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
    app = create_app(start_worker=worker)
    typer.echo(f"Firebreak on http://{host}:{port}/ (worker {'on' if worker else 'off'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)
