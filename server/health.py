"""Liveness, and the durable engine's state behind the API token (`/healthz?detail=1`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from firebreak.server.deps import Ctx

router = APIRouter()


@router.get("/healthz")
def healthz(ctx: Ctx, request: Request, detail: bool = False) -> dict[str, Any]:
    """`{"status": "ok"}` for load balancers; with `detail=1` and the API token: workflows pending,
    recovering, waiting for approval, queue depth and oldest wait (what `firebreak status` prints)."""
    if not detail:
        return {"status": "ok"}
    from firebreak.server.auth import require_api_token
    from firebreak.workflows.status import engine_status

    require_api_token(request, ctx)
    return {"status": "ok", "engine": engine_status(ctx).model_dump(mode="json")}
