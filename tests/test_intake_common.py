"""Helpers shared by the intake tests: a configured app, vendor-signed deliveries, alert builders."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.server.app import create_app
from firebreak.server.intake.models import NormalizedAlert

SENTRY_SECRET = "sentry-client-secret"
GRAFANA_SECRET = "grafana-hmac-secret"
WEBHOOK_TOKEN = "webhook-token"
API_TOKEN = "api-token"


def configure(ctx: ToolContext) -> ToolContext:
    s = ctx.settings
    s.sentry_client_secret = SecretStr(SENTRY_SECRET)
    s.grafana_hmac_secret = SecretStr(GRAFANA_SECRET)
    s.webhook_token = SecretStr(WEBHOOK_TOKEN)
    s.api_token = SecretStr(API_TOKEN)
    return ctx


def make_app(ctx: ToolContext) -> FastAPI:
    app = create_app(ctx, start_worker=False)
    if not any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        from firebreak.server.observability import router

        app.include_router(router)
    return app


def client(ctx: ToolContext) -> TestClient:
    return TestClient(make_app(ctx))


def sentry_headers(body: bytes, resource: str | None, secret: str = SENTRY_SECRET,
                   stamp: int | None = None) -> dict[str, str]:
    # Sentry-Hook-Timestamp is checked against a freshness window: now, unless a test gives another time.
    headers = {
        "Content-Type": "application/json",
        "Sentry-Hook-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "Sentry-Hook-Timestamp": str(int(time.time()) if stamp is None else stamp),
    }
    if resource:
        headers["Sentry-Hook-Resource"] = resource
    return headers


def grafana_headers(body: bytes, stamp: int | None, secret: str = GRAFANA_SECRET) -> dict[str, str]:
    message = body if stamp is None else f"{stamp}:".encode() + body
    headers = {"Content-Type": "application/json",
               "X-Grafana-Alerting-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}
    if stamp is not None:
        headers["X-Grafana-Alerting-Timestamp"] = str(stamp)
    return headers


def bearer(token: str = WEBHOOK_TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def fixture_bytes(fixtures_dir: Path, name: str) -> bytes:
    return (fixtures_dir / name).read_bytes()


def alert(
    service: str, fingerprint: str, at: datetime, *, source: str = "alertmanager", status: str = "firing",
    severity: str = "warning", title: str | None = None, **extra: Any,
) -> NormalizedAlert:
    return NormalizedAlert(
        source=source, fingerprint=fingerprint, status=status, service=service, severity=severity,  # type: ignore[arg-type]
        title=title or f"{service} alert {fingerprint}", started_at=at, **extra,
    )
