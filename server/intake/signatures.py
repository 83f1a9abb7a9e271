"""Checks that a delivery comes from who it says, exactly as each vendor signs it.

- Sentry: `Sentry-Hook-Signature` = hex HMAC-SHA256 of the raw body with the integration's client
  secret (FIREBREAK_SENTRY_CLIENT_SECRET).
- Grafana: `X-Grafana-Alerting-Signature` = hex HMAC-SHA256 with FIREBREAK_GRAFANA_HMAC_SECRET of the
  raw body, or of `{timestamp}:{body}` when `X-Grafana-Alerting-Timestamp` (Unix seconds) is sent.
  A timestamped signature older or newer than `GRAFANA_MAX_SKEW_SECONDS` is refused (replay). The
  skew is measured against the wall clock *or* the context's clock, so a drill running on simulated
  time can sign with either.
- Grafana and Alertmanager may instead send `Authorization: Bearer FIREBREAK_WEBHOOK_TOKEN`.
- Sentry sends `Sentry-Hook-Timestamp` (Unix seconds) beside its signature but does not sign it; when
  present it must still be inside `SENTRY_MAX_SKEW_SECONDS` (a delivery replayed as captured is refused),
  and the replay cache (`server.intake.replay`) refuses the same signature again whatever the header says.

Each check returns a `Verified` naming how the delivery was proven and the signature to remember.

A source with nothing configured is refused with 401 naming the variable to set: intake is never
open by default. Comparisons are constant-time and on bytes (header text may be any Latin-1).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, SecretStr

from firebreak.server.intake.errors import IntakeRefused
from firebreak.settings import Settings

GRAFANA_MAX_SKEW_SECONDS = 300
SENTRY_MAX_SKEW_SECONDS = 300


class Verified(BaseModel):
    """How a delivery proved its sender: `hmac` (body only), `hmac_timestamp` (signed time), or `bearer`."""

    method: Literal["hmac", "hmac_timestamp", "bearer"]
    signature: str | None = None


def _check_window(stamp: str, now: datetime, limit: int, header: str) -> int:
    """The header's Unix time, refused when it is not a number or further than `limit` s from now.

    Now is the wall clock *or* the context's clock, so a drill on simulated time can sign with either.
    """
    try:
        ts = int(float(stamp.strip()))
    except (ValueError, OverflowError):
        raise IntakeRefused(401, f"{header} is not a Unix timestamp in seconds", "bad_timestamp") from None
    skews = (abs(time.time() - ts), abs(now.timestamp() - ts))
    if min(skews) > limit:
        raise IntakeRefused(
            401, f"{header} is more than {limit} s away from now (replayed or clock skew)", "stale_timestamp")
    return ts


def _hex_hmac(secret: SecretStr, message: bytes) -> bytes:
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest().encode()


def _same(given: str, expected: bytes) -> bool:
    return hmac.compare_digest(given.strip().lower().encode("utf-8"), expected)


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _bearer_ok(headers: Mapping[str, str], token: SecretStr) -> bool:
    given = _bearer(headers)
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.get_secret_value().encode())


def verify_sentry(
    settings: Settings, headers: Mapping[str, str], body: bytes, now: datetime | None = None
) -> Verified:
    secret = settings.sentry_client_secret
    if secret is None or not secret.get_secret_value():
        raise IntakeRefused(
            401, "Sentry webhooks are disabled: set FIREBREAK_SENTRY_CLIENT_SECRET to the integration's "
            "client secret", "not_configured")
    given = headers.get("sentry-hook-signature")
    if not given:
        raise IntakeRefused(401, "missing Sentry-Hook-Signature header", "missing_signature")
    if not _same(given, _hex_hmac(secret, body)):
        raise IntakeRefused(
            401, "Sentry-Hook-Signature does not match the body (check FIREBREAK_SENTRY_CLIENT_SECRET)",
            "bad_signature")
    stamp = headers.get("sentry-hook-timestamp")
    if stamp is not None and now is not None:
        _check_window(stamp, now, SENTRY_MAX_SKEW_SECONDS, "Sentry-Hook-Timestamp")
    return Verified(method="hmac", signature=given.strip().lower())


def verify_grafana(settings: Settings, headers: Mapping[str, str], body: bytes, now: datetime) -> Verified:
    secret = settings.grafana_hmac_secret
    token = settings.webhook_token
    has_secret = secret is not None and bool(secret.get_secret_value())
    has_token = token is not None and bool(token.get_secret_value())
    if not has_secret and not has_token:
        raise IntakeRefused(
            401, "Grafana webhooks are disabled: set FIREBREAK_GRAFANA_HMAC_SECRET (HMAC signature) or "
            "FIREBREAK_WEBHOOK_TOKEN (bearer token)", "not_configured")
    if has_token and token is not None and _bearer_ok(headers, token):
        return Verified(method="bearer")
    signature = headers.get("x-grafana-alerting-signature")
    if has_secret and secret is not None and signature:
        stamp = headers.get("x-grafana-alerting-timestamp")
        message = body
        if stamp is not None:
            stamp = stamp.strip()
            if not stamp.lstrip("-").isdigit():
                raise IntakeRefused(
                    401, "X-Grafana-Alerting-Timestamp is not a Unix timestamp in seconds", "bad_timestamp")
            _check_window(stamp, now, GRAFANA_MAX_SKEW_SECONDS, "X-Grafana-Alerting-Timestamp")
            message = stamp.encode() + b":" + body
        if _same(signature, _hex_hmac(secret, message)):
            return Verified(method="hmac" if stamp is None else "hmac_timestamp", signature=signature.strip().lower())
        raise IntakeRefused(
            401, "X-Grafana-Alerting-Signature does not match the body (check FIREBREAK_GRAFANA_HMAC_SECRET)",
            "bad_signature")
    if has_secret and has_token:
        wanted = "X-Grafana-Alerting-Signature or Authorization: Bearer"
    elif has_secret:
        wanted = "X-Grafana-Alerting-Signature"
    else:
        wanted = "Authorization: Bearer"
    reason = "bad_token" if _bearer(headers) is not None else "missing_signature"
    if reason == "bad_token":
        raise IntakeRefused(401, "wrong bearer token (check FIREBREAK_WEBHOOK_TOKEN)", reason)
    raise IntakeRefused(401, f"missing {wanted} header", reason)


def verify_bearer(settings: Settings, headers: Mapping[str, str], what: str) -> None:
    """Alertmanager and the changes webhook: `Authorization: Bearer FIREBREAK_WEBHOOK_TOKEN`."""
    token = settings.webhook_token
    if token is None or not token.get_secret_value():
        raise IntakeRefused(
            401, f"{what} webhooks are disabled: set FIREBREAK_WEBHOOK_TOKEN and send it as "
            "Authorization: Bearer", "not_configured")
    if _bearer(headers) is None:
        raise IntakeRefused(401, "missing Authorization: Bearer header", "missing_token")
    if not _bearer_ok(headers, token):
        raise IntakeRefused(401, "wrong bearer token (check FIREBREAK_WEBHOOK_TOKEN)", "bad_token")


def sign_sentry(secret: str, body: bytes) -> str:
    """The header value Sentry would send (tests, drills, the benchmark)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_grafana(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Grafana would send for `body`, timestamped when `timestamp` is given."""
    if timestamp is None:
        return {"X-Grafana-Alerting-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    message = str(timestamp).encode() + b":" + body
    return {
        "X-Grafana-Alerting-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
        "X-Grafana-Alerting-Timestamp": str(timestamp),
    }
