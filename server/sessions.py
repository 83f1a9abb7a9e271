"""Signed session cookies for the web page, with stdlib HMAC (no extra dependency).

The cookie holds only who is signed in and the CSRF token; it is HMAC-SHA256 signed with a key kept in
the data dir (created on first use, mode 0600), so restarts keep people signed in and a forged or edited
cookie is simply ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from firebreak.settings import Settings

COOKIE_NAME = "firebreak_session"
MAX_AGE_SECONDS = 12 * 3600
KEY_FILE = "web-session.key"


class WebSession(BaseModel):
    """What the cookie carries. `user` is None before sign-in; the CSRF token exists either way."""

    user: str | None = None
    csrf: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    issued: float = Field(default_factory=time.time)
    flash: str | None = None


def session_key(settings: Settings) -> bytes:
    """The signing key: FIREBREAK_SESSION_SECRET when set (several replicas), else a random key in the data dir."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = Path(settings.ensure_data_dir()) / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, session: WebSession) -> str:
    body = _b64(json.dumps(session.model_dump(), separators=(",", ":")).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def unsign(key: bytes, value: str | None, *, now: float | None = None) -> WebSession | None:
    """The session in a cookie, or None when it is missing, forged, malformed or older than MAX_AGE."""
    if not value or "." not in value:
        return None
    body, _, mac = value.rpartition(".")
    expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        data: Any = json.loads(_unb64(body))
        session = WebSession.model_validate(data)
    except (ValueError, ValidationError):
        return None
    if (now if now is not None else time.time()) - session.issued > MAX_AGE_SECONDS:
        return None
    return session
