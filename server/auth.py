"""Bearer-token check for /api/*: closed until FIREBREAK_API_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from firebreak.server.deps import Ctx


def require_api_token(request: Request, ctx: Ctx) -> None:
    token = ctx.settings.api_token
    if token is None:
        raise HTTPException(401, detail="API disabled: set FIREBREAK_API_TOKEN to enable /api/*")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.get_secret_value().encode()
    ):
        # The web page's signed-in session is accepted too (set by server.web).
        session_user = getattr(request.state, "web_user", None)
        if session_user:
            return
        raise HTTPException(401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
