"""Named users with scrypt-hashed passwords, and `firebreak users add|list|remove|sessions|revoke|token`.

Approvals from the page are attributed to the signed-in name and checked against FIREBREAK_APPROVERS
by that name, so a user is only a name and a password hash: no roles are stored here. Passwords are
hashed with scrypt from the standard library (RFC 7914 parameters, a random salt each), a memory-hard
scheme that needs no extra dependency. A new password or a removal revokes the user's web sessions.
Personal tokens (`users token`) let a person prove who they are to `firebreak approvals` without a
password prompt; only their SHA-256 is stored (they are 256-bit random, so a fast hash is enough).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.server.sessions import list_sessions, revoke_session, revoke_user_sessions
from firebreak.state.security import PersonalToken
from firebreak.state.users import User

if TYPE_CHECKING:
    from firebreak.context import ToolContext

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MIN_PASSWORD = 8
# scrypt parameters (RFC 7914 interactive values): ~16 MiB, tens of milliseconds per check.
_N, _R, _P = 2**14, 8, 1


class UserError(ValueError):
    """Bad user input, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    enc = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${enc(salt).decode()}${enc(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if algo != "scrypt":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        got = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(digest))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, digest)


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME_RE.match(name):
        raise UserError("name", "use 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return name


def add_user(session: Session, name: str, password: str, *, at: datetime, replace: bool = False) -> User:
    """Create a user (or set a new password when `replace`)."""
    name = check_name(name)
    if len(password) < MIN_PASSWORD:
        raise UserError("password", f"must be at least {MIN_PASSWORD} characters")
    user = session.get(User, name)
    if user is not None and not replace:
        raise UserError("name", f"user {name!r} already exists (use --replace to set a new password)")
    if user is None:
        user = User(name=name, password_hash=hash_password(password), created_at=at)
        session.add(user)
    else:
        user.password_hash = hash_password(password)
        # Whoever signed in with the old password is signed out everywhere, and old tokens stop working.
        revoke_user_sessions(session, name, now=at, reason="password_changed")
        revoke_tokens(session, name, now=at)
    session.flush()
    return user


TOKEN_PREFIX = "fbp_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).hexdigest()


def issue_token(session: Session, name: str, *, at: datetime, label: str = "") -> str:
    """A new personal token for `name` (returned once, stored as its hash)."""
    if session.get(User, name) is None:
        raise UserError("name", f"no user {name!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(PersonalToken(id=secrets.token_hex(8), user=name, token_hash=_token_hash(token),
                              label=label[:200], created_at=at))
    session.flush()
    return token


def token_user(session: Session, token: str, *, at: datetime) -> str | None:
    """The user a live personal token belongs to (and marks it used), else None."""
    if not token.strip():
        return None
    row = session.scalar(select(PersonalToken).where(PersonalToken.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None or session.get(User, row.user) is None:
        return None
    row.last_used_at = at
    return row.user


def revoke_tokens(session: Session, name: str, *, now: datetime) -> int:
    rows = list(session.scalars(select(PersonalToken).where(PersonalToken.user == name,
                                                            PersonalToken.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now
    return len(rows)


@cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so a wrong name costs the same time as a wrong password."""
    return hash_password(secrets.token_urlsafe(12))


def authenticate(session: Session, name: str, password: str) -> str | None:
    """The user's name when the password matches, else None."""
    user = session.get(User, name.strip())
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    return user.name if verify_password(password, user.password_hash) else None


def user_exists(session: Session, name: str) -> bool:
    return session.get(User, name) is not None


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


app = typer.Typer(help="Named users of the web page (approvals are checked against FIREBREAK_APPROVERS).",
                  no_args_is_help=True)


def _ctx() -> ToolContext:
    from firebreak.context import default_context

    return default_context()


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="user name; use the same name in FIREBREAK_APPROVERS"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
    replace: bool = typer.Option(False, "--replace", help="set a new password for an existing user"),
) -> None:
    """Add a web user (asks for the password twice, or reads it from stdin)."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            typer.echo("error: password: the two entries differ", err=True)
            raise typer.Exit(2)
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            add_user(s, name, password, at=ctx.clock.now(), replace=replace)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    approver = ctx.settings.is_approver(name.strip())
    note = "" if approver else " (not in FIREBREAK_APPROVERS: can view, not approve)"
    typer.echo(f"user {name.strip()} saved{note}")


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List web users and whether each may approve."""
    import json

    ctx = _ctx()
    with ctx.db.session() as s:
        rows = [
            {"name": u.name, "created_at": u.created_at.isoformat(), "approver": ctx.settings.is_approver(u.name)}
            for u in list_users(s)
        ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['name']:<24} {r['created_at']}  {'approver' if r['approver'] else 'viewer'}")


@app.command("remove")
def remove_cmd(name: str = typer.Argument(..., help="user name")) -> None:
    """Remove a web user (their session stops working at the next request)."""
    ctx = _ctx()
    with ctx.db.session() as s:
        user = s.get(User, name)
        if user is None:
            typer.echo(f"error: name: no user {name!r}", err=True)
            raise typer.Exit(2)
        s.delete(user)
        revoke_user_sessions(s, name, now=ctx.clock.now(), reason="user_removed")
        revoke_tokens(s, name, now=ctx.clock.now())
    typer.echo(f"user {name} removed")


@app.command("sessions")
def sessions_cmd(
    name: str | None = typer.Argument(None, help="only this user's sessions"),
    all_: bool = typer.Option(False, "--all", help="also ended (revoked or expired) sessions"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List web sessions (live ones by default), newest first."""
    import json

    ctx = _ctx()
    now = ctx.clock.now()
    with ctx.db.session() as s:
        rows = [
            {"id": r.id, "user": r.user, "created_at": r.created_at.isoformat(),
             "last_seen_at": r.last_seen_at.isoformat(), "expires_at": r.expires_at.isoformat(),
             "address": r.address, "user_agent": r.user_agent,
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None, "revoked_reason": r.revoked_reason,
             "live": r.revoked_at is None and r.expires_at > now}
            for r in list_sessions(s, user=name, now=now, include_ended=all_)
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no live sessions" if not all_ else "no sessions")
        return
    for r in rows:
        state = "live" if r["live"] else f"ended ({r['revoked_reason'] or 'expired'})"
        typer.echo(f"{r['id']}  {r['user']:<20} {r['address'] or '-':<16} since {r['created_at']}  {state}")


@app.command("revoke")
def revoke_cmd(
    session_id: str | None = typer.Argument(None, help="the session id from `firebreak users sessions`"),
    user: str | None = typer.Option(None, "--user", help="revoke every session and token of this user"),
) -> None:
    """End a web session now (or all of a user's sessions and personal tokens with --user)."""
    if bool(session_id) == bool(user):
        typer.echo("error: give a session id or --user NAME (one of them)", err=True)
        raise typer.Exit(2)
    ctx = _ctx()
    now = ctx.clock.now()
    with ctx.db.session() as s:
        if user:
            n = revoke_user_sessions(s, user, now=now, reason="revoked_by_admin")
            t = revoke_tokens(s, user, now=now)
            message = f"revoked {n} session(s) and {t} token(s) of {user}"
        elif not revoke_session(s, str(session_id), now=now, reason="revoked_by_admin"):
            typer.echo(f"error: session: no live session {session_id!r}", err=True)
            raise typer.Exit(2)
        else:
            message = f"session {session_id} revoked"
        from firebreak.state.audit import AuditEvent

        s.add(AuditEvent(at=now, actor=_os_user(), event="sessions_revoked",
                         detail={"session": session_id, "user": user, "via": "cli"}))
    typer.echo(message)


@app.command("token")
def token_cmd(
    name: str = typer.Argument(..., help="user name (you prove it with their password)"),
    label: str = typer.Option("", "--label", help="what the token is for, shown nowhere secret"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
) -> None:
    """Issue a personal token for `firebreak approvals --token-stdin` (printed once; keep it like a password)."""
    import sys

    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {name}: ")
    ctx = _ctx()
    with ctx.db.session() as s:
        if authenticate(s, name, password) is None:
            from firebreak.state.audit import AuditEvent

            s.add(AuditEvent(at=ctx.clock.now(), actor=name[:128], event="token_refused",
                             detail={"os_user": _os_user()}))
            typer.echo("error: password: wrong name or password", err=True)
            raise typer.Exit(1)
        token = issue_token(s, name.strip(), at=ctx.clock.now(), label=label)
    typer.echo(token)


def _os_user() -> str:
    try:
        return getpass.getuser()[:128]
    except (KeyError, OSError):
        return "?"
