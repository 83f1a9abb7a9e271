"""FastAPI dependencies shared by the routers: the app's one ToolContext.

Kept apart from `server.app` so the app can import every router by name at the top of its module
(no router imports the app back).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from firebreak.context import ToolContext


def get_ctx(request: Request) -> ToolContext:
    """The app's ToolContext (a drill passes its own data dir and clock)."""
    ctx: ToolContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ToolContext, Depends(get_ctx)]
