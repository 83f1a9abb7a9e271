"""Webhook endpoints: Sentry, Grafana, Alertmanager alerts and CI/CD or hand-made change records.

Every delivery is verified first (see `server.intake.signatures`), then parsed and normalised here,
in the request handler, then stored through `server.intake.service` in arrival order by its one
writer; a signed one is accepted only once (`server.intake.replay`, 409 for a replay), its signature
remembered in the transaction that stores its alerts. Grafana and Alertmanager deliveries over
FIREBREAK_MAX_ALERTS_PER_DELIVERY alerts are refused (413) while the body is still streaming in.
Answers: 202 with what was stored; 400/409/413/422 with a `detail` naming what is wrong; 401 for a
missing or wrong signature or token (or a source with nothing configured, naming the variable to
set); 429 with Retry-After past the intake backlog limit. Nothing a client sends produces a 500.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from firebreak.context import ToolContext
from firebreak.server.deps import Ctx
from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.normalize import (
    ParsedDelivery,
    describe_errors,
    normalize_alertmanager,
    normalize_grafana,
    normalize_sentry,
    parse_json_object,
)
from firebreak.server.intake.replay import RETENTION as REPLAY_RETENTION
from firebreak.server.intake.replay import ReplayClaim, forget, remember
from firebreak.server.intake.service import intake_queue
from firebreak.server.intake.signatures import (
    GRAFANA_MAX_SKEW_SECONDS,
    Verified,
    verify_bearer,
    verify_grafana,
    verify_sentry,
)
from firebreak.server.observability import (
    ALERTS_RECEIVED,
    ALERTS_TRUNCATED,
    DELIVERIES_IGNORED,
    DELIVERIES_REFUSED,
    DELIVERY_SECONDS,
)

log = logging.getLogger("firebreak.intake")

MAX_BODY_BYTES = 16 * 1024 * 1024
_ALERT_MARK = b'"labels"'
INLINE_PARSE_BYTES = 256 * 1024
Source = Literal["sentry", "grafana", "alertmanager"]

router = APIRouter(tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON"},
    401: {"description": "Missing or wrong signature/token, a timestamp outside the window, or the source is not "
               "configured"},
    409: {"description": "Replay: this signed delivery was already accepted"},
    413: {"description": "Body or batch too large, or more alerts than FIREBREAK_MAX_ALERTS_PER_DELIVERY"},
    422: {"description": "Wrong shape; `detail` names the field"},
    429: {"description": "Intake backlog full; retry after `Retry-After` seconds"},
}


class DeliveryAccepted(BaseModel):
    """What a delivery did. `ignored` is set (and nothing stored) for Sentry resources that are not alerts."""

    source: str
    alerts: int = 0
    created: int = 0
    updated: int = 0
    resolved: int = 0
    truncated_alerts: int = 0
    incidents_opened: list[str] = Field(default_factory=list)
    incidents_updated: list[str] = Field(default_factory=list)
    investigations_queued: list[str] = Field(default_factory=list)
    incidents_mitigated: list[str] = Field(default_factory=list)
    ignored: str | None = None


class ChangeAccepted(BaseModel):
    id: int
    kind: str
    service: str | None = None
    at: datetime


def _refused(source: str, exc: IntakeRefused) -> JSONResponse:
    DELIVERIES_REFUSED.labels(source, exc.reason).inc()
    log.info("refused %s webhook (%d %s): %s", source, exc.status, exc.reason, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


async def _read_body(request: Request, max_alerts: int | None = None) -> bytes:
    """The body, refused (413) past MAX_BODY_BYTES or, with `max_alerts`, past that many alerts.

    Alerts are counted while the body streams in (each Grafana/Alertmanager alert has one `"labels"`
    key; `groupLabels`/`commonLabels` do not match), so a 60,000-alert delivery is refused before any
    of it is parsed.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise IntakeRefused(413, f"body larger than {MAX_BODY_BYTES} bytes", "too_large")
    chunks: list[bytes] = []
    size = alerts = 0
    tail = b""
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise IntakeRefused(413, f"body larger than {MAX_BODY_BYTES} bytes", "too_large")
        chunks.append(chunk)
        if max_alerts is not None:
            alerts += (tail + chunk).count(_ALERT_MARK)
            tail = chunk[-(len(_ALERT_MARK) - 1):]
            if alerts > max_alerts:
                raise IntakeRefused(
                    413, f"more than {max_alerts} alerts in one delivery (FIREBREAK_MAX_ALERTS_PER_DELIVERY); "
                    "lower max_alerts on the sender or split the group", "too_many_alerts")
    return b"".join(chunks)


def _parse(source: Source, ctx: ToolContext, headers: dict[str, str], body: bytes, now: datetime) -> ParsedDelivery:
    settings = ctx.settings
    if source == "sentry":
        return normalize_sentry(body, headers.get("sentry-hook-resource"), settings, now)
    if source == "grafana":
        return normalize_grafana(body, settings, now)
    return normalize_alertmanager(body, settings, now)


async def _deliver(source: Source, request: Request, ctx: ToolContext) -> DeliveryAccepted | JSONResponse:
    started = time.perf_counter()
    verified: Verified | None = None
    remembered = False
    try:
        body = await _read_body(request, None if source == "sentry" else ctx.settings.max_alerts_per_delivery)
        now = ctx.clock.now()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if source == "sentry":
            verified = verify_sentry(ctx.settings, headers, body, now)
        elif source == "grafana":
            verified = verify_grafana(ctx.settings, headers, body, now)
        else:
            verify_bearer(ctx.settings, headers, "Alertmanager")
        claim: ReplayClaim | None = None
        if verified is not None and verified.signature:  # a signed delivery is accepted once
            keep = (timedelta(seconds=2 * GRAFANA_MAX_SKEW_SECONDS) if verified.method == "hmac_timestamp"
                    else REPLAY_RETENTION)
            claim = ReplayClaim(source, verified.signature, now, keep)
        if len(body) <= INLINE_PARSE_BYTES:  # a thread hop costs more than parsing a normal delivery
            parsed = _parse(source, ctx, headers, body, now)
        else:
            parsed = await run_in_threadpool(_parse, source, ctx, headers, body, now)
        if claim is not None and not parsed.alerts:  # nothing to store: remember the signature on its own
            await run_in_threadpool(remember, ctx, source, claim.signature, now=now, keep=claim.keep)
            remembered = True
        if parsed.ignored is not None:
            DELIVERIES_IGNORED.labels(source).inc()
            return DeliveryAccepted(source=source, ignored=parsed.ignored)
        if parsed.truncated:
            ALERTS_TRUNCATED.labels(source).inc(parsed.truncated)
        # The writer remembers the signature in the transaction that stores the alerts.
        result = await intake_queue(ctx).submit(parsed.alerts, claim) if parsed.alerts else None
    except IntakeRefused as exc:
        if remembered and verified is not None and verified.signature and exc.reason != "replay":
            await run_in_threadpool(forget, ctx, source, verified.signature)  # its retry must be accepted
        return _refused(source, exc)
    ALERTS_RECEIVED.labels(source).inc(len(parsed.alerts))
    DELIVERY_SECONDS.labels(source).observe(time.perf_counter() - started)
    accepted = DeliveryAccepted(source=source, alerts=len(parsed.alerts), truncated_alerts=parsed.truncated)
    if result is not None:
        accepted = accepted.model_copy(update=result.model_dump(exclude={"received"}))
    return accepted


@router.post("/webhooks/sentry", status_code=202, response_model=DeliveryAccepted, responses=_ERRORS)
async def sentry_webhook(request: Request, ctx: Ctx) -> DeliveryAccepted | JSONResponse:
    """Sentry integration-platform webhook (`issue`, `event_alert`, `metric_alert`, `error`); other
    resources are acknowledged and ignored."""
    return await _deliver("sentry", request, ctx)


@router.post("/webhooks/grafana", status_code=202, response_model=DeliveryAccepted, responses=_ERRORS)
async def grafana_webhook(request: Request, ctx: Ctx) -> DeliveryAccepted | JSONResponse:
    """Grafana unified-alerting webhook contact point."""
    return await _deliver("grafana", request, ctx)


@router.post("/webhooks/alertmanager", status_code=202, response_model=DeliveryAccepted, responses=_ERRORS)
async def alertmanager_webhook(
    request: Request, ctx: Ctx
) -> DeliveryAccepted | JSONResponse:
    """Prometheus Alertmanager webhook, version 4."""
    return await _deliver("alertmanager", request, ctx)


def _record_change(ctx: ToolContext, raw: dict[str, Any]) -> ChangeAccepted:
    from firebreak.tools.changes import ChangeIn, record_change

    try:
        change_in = ChangeIn.model_validate(raw)
    except ValidationError as exc:
        raise IntakeRefused(422, describe_errors(exc), "invalid_payload") from None
    except (OverflowError, ValueError) as exc:  # a validator that let a non-ValueError escape
        raise IntakeRefused(422, f"at: timestamp out of range ({exc})", "invalid_payload") from None
    from firebreak.tools.registry import ToolError

    try:
        with ctx.db.session() as s:
            change = record_change(s, change_in, source="webhook", now=ctx.clock.now())
            s.flush()
            return ChangeAccepted(id=change.id, kind=change.kind, service=change.service, at=change.at)
    except ToolError as exc:
        status = exc.status if 400 <= exc.status < 500 else 422
        detail = f"{exc.field}: {exc.message}" if exc.field and exc.field not in exc.message else exc.message
        raise IntakeRefused(status, detail, "invalid_payload") from None
    except ValueError as exc:  # pydantic/incident-log style field errors raised while storing
        raise IntakeRefused(422, str(exc), "invalid_payload") from None


@router.post("/webhooks/changes", status_code=202, response_model=ChangeAccepted, responses=_ERRORS)
async def changes_webhook(request: Request, ctx: Ctx) -> ChangeAccepted | JSONResponse:
    """A deploy, config, flag or infra change from CI/CD or a person (bearer FIREBREAK_WEBHOOK_TOKEN)."""
    try:
        body = await _read_body(request)
        verify_bearer(ctx.settings, {k.lower(): v for k, v in request.headers.items()}, "Change")
        raw = parse_json_object(body)
        return await run_in_threadpool(_record_change, ctx, raw)
    except IntakeRefused as exc:
        return _refused("changes", exc)
