"""Web sessions: a signed cookie that names a server-side session row.

The cookie holds who is signed in, the id of their `web_sessions` row and the CSRF token; it is
HMAC-SHA256 signed with a key kept in the data dir (created on first use, mode 0600), so a forged or
edited cookie is simply ignored. The row is what makes a session end for real: logout, a password
change, `firebreak users revoke` and `users remove` revoke rows, and a cookie whose row is revoked or
expired signs nobody in, even though its signature is still good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from firebreak.settings import Settings
from firebreak.state.security import WebSessionRow

COOKIE_NAME = "firebreak_session"
MAX_AGE_SECONDS = 12 * 3600
KEY_FILE = "web-session.key"


class WebSession(BaseModel):
    """What the cookie carries. `user` is None before sign-in; the CSRF token exists either way."""

    user: str | None = None
    sid: str | None = None
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


# --- server-side rows -----------------------------------------------------------------------------

# last_seen_at is written at most this often (a page view must not always be a database write).
TOUCH_EVERY = timedelta(minutes=5)


def open_session(s: Session, user: str, *, now: datetime, address: str | None, user_agent: str | None) -> str:
    """A new session row for `user` (at sign-in); returns its id, which the cookie carries."""
    sid = secrets.token_hex(16)
    s.add(WebSessionRow(
        id=sid, user=user, created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=MAX_AGE_SECONDS),
        address=(address or "")[:64] or None, user_agent=(user_agent or "")[:200] or None,
    ))
    s.flush()
    return sid


def session_is_live(s: Session, sid: str | None, user: str, *, now: datetime) -> bool:
    """True when the row exists, belongs to `user`, is not revoked and has not expired."""
    if not sid:
        return False
    row = s.get(WebSessionRow, sid)
    if row is None or row.user != user or row.revoked_at is not None or row.expires_at <= now:
        return False
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return True


def revoke_session(s: Session, sid: str, *, now: datetime, reason: str) -> bool:
    """Revoke one session; False when there is no such live session."""
    changed = s.execute(
        update(WebSessionRow).where(WebSessionRow.id == sid, WebSessionRow.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:64]).execution_options(synchronize_session=False)
    )
    return bool(getattr(changed, "rowcount", 0))


def revoke_user_sessions(s: Session, user: str, *, now: datetime, reason: str) -> int:
    """Revoke every live session of `user` (password change, removal, `users revoke --user`)."""
    changed = s.execute(
        update(WebSessionRow).where(WebSessionRow.user == user, WebSessionRow.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:64]).execution_options(synchronize_session=False)
    )
    return int(getattr(changed, "rowcount", 0) or 0)


def list_sessions(s: Session, *, user: str | None = None, now: datetime, include_ended: bool = False
                  ) -> list[WebSessionRow]:
    """Sessions, newest first; only live ones unless `include_ended`."""
    q = select(WebSessionRow)
    if user:
        q = q.where(WebSessionRow.user == user)
    if not include_ended:
        q = q.where(WebSessionRow.revoked_at.is_(None), WebSessionRow.expires_at > now)
    return list(s.scalars(q.order_by(WebSessionRow.created_at.desc()).limit(1000)))
