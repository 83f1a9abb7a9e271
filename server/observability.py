"""Prometheus metrics of Firebreak itself, and `GET /metrics` to scrape them.

Metrics live in prometheus-client's default registry, defined once at import so every app built in
one process (tests, drills) shares them. The investigation queue depth is read from the database
at scrape time, so it is right whichever process queued or ran the investigations. `/metrics` needs
the API token (`Authorization: Bearer FIREBREAK_API_TOKEN`, Prometheus' `authorization` scrape
setting) unless FIREBREAK_PUBLIC_METRICS is set: counters of refused deliveries and queue depths tell
an attacker what works.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from firebreak.context import ToolContext
from firebreak.server.deps import Ctx

ALERTS_RECEIVED = Counter(
    "firebreak_alerts_received", "Alerts received in accepted webhook deliveries", ["source"])
ALERTS_TRUNCATED = Counter(
    "firebreak_alerts_truncated", "Alerts the sender dropped from a delivery (truncatedAlerts)", ["source"])
DELIVERIES_REFUSED = Counter(
    "firebreak_webhook_refused", "Webhook deliveries refused, by reason", ["source", "reason"])
DELIVERIES_IGNORED = Counter(
    "firebreak_webhook_ignored", "Webhook deliveries accepted but ignored (not an alert)", ["source"])
INCIDENTS_OPENED = Counter("firebreak_incidents_opened", "Incidents opened by alert intake")
INVESTIGATIONS_QUEUED = Counter("firebreak_investigations_queued", "Investigations queued by alert intake")
QUEUE_DEPTH = Gauge("firebreak_intake_queue_depth", "Alerts received and waiting to be stored")
INVESTIGATION_QUEUE = Gauge(
    "firebreak_investigation_queue_depth", "Investigations waiting to run (status queued), read at scrape")
DELIVERY_SECONDS = Histogram(
    "firebreak_intake_delivery_seconds", "Time to verify, parse and store one webhook delivery", ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

router = APIRouter(tags=["observability"])


def _queued_investigations(ctx: ToolContext) -> int:
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Investigation).where(
            Investigation.status == "queued")) or 0


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request, ctx: Ctx) -> Response:
    from firebreak.server.guard import token_or_session

    if not ctx.settings.public_metrics and not await run_in_threadpool(token_or_session, request):
        return JSONResponse({"detail": "missing or wrong bearer token (FIREBREAK_API_TOKEN); set "
                                       "FIREBREAK_PUBLIC_METRICS=true to open /metrics"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    INVESTIGATION_QUEUE.set(await run_in_threadpool(_queued_investigations, ctx))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
