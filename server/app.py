"""Application factory. Each area owns one router module; this file only assembles them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

from firebreak.context import ToolContext, default_context
from firebreak.server import (
    api_incidents,
    api_tools,
    api_transcripts,
    health,
    observability,
    otlp,
    slack,
    web,
    web_charts,
    web_postmortem,
    webhooks,
)
from firebreak.server.approvals import install as install_approvals

# Every router, imported by name: a renamed or missing module fails here, loudly. The web page ("/") last.
# The tool API is built per app (see create_app): one route per tool registered by then.
ROUTERS = (
    health.router,
    observability.router,
    webhooks.router,
    otlp.router,
    api_incidents.router,
    api_transcripts.router,
    slack.router,
    web.router,
    web_charts.router,
    web_postmortem.router,
)


def create_app(ctx: ToolContext | None = None, *, start_worker: bool = True) -> FastAPI:
    """Build the app around one ToolContext (a drill passes its own data dir and clock)."""
    context = ctx or default_context()
    install_approvals()  # the agent and the approval service reach people through Slack / the web page

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if start_worker:  # durable investigations and approvals (DBOS on the state database)
            from firebreak.server.learn_reminders import post_learn_reminders
            from firebreak.server.updates import post_due_updates
            from firebreak.workflows.engine import DurableWorker

            worker = DurableWorker(context, periodic=[(60.0, post_due_updates), (300.0, post_learn_reminders)])
            worker.start()
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(title="Firebreak", version="0.1.0", lifespan=lifespan)
    app.state.ctx = context

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}" for e in errs[:5]
        )
        return JSONResponse(status_code=422, content={"detail": detail or "invalid request"})

    app.include_router(api_tools.build_router())
    for router in ROUTERS:
        app.include_router(router)
    from firebreak.server.guard import install as install_guards

    install_guards(app)  # body caps and JSON limits on every route; /docs and /openapi.json behind the token
    return app
