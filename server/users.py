"""Named web users with scrypt-hashed passwords, and `firebreak users add|list|remove`.

Approvals from the page are attributed to the signed-in name and checked against FIREBREAK_APPROVERS
by that name, so a user is only a name and a password hash: no roles are stored here.
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

from memory.models import User

if TYPE_CHECKING:
    from tools.context import ToolContext

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
    session.flush()
    return user


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
    from tools.context import default_context

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
    typer.echo(f"user {name} removed")
