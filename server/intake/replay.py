"""The replay cache: a signed delivery is accepted once; the same signature again is refused (409).

Why: a signature proves who made a delivery, not when. Grafana signs `{timestamp}:{body}` only when it
sends `X-Grafana-Alerting-Timestamp`; its body-only signature and Sentry's (whose `Sentry-Hook-
Timestamp` header is not covered by the signature) carry no time an attacker cannot change. So each
accepted signature is kept (as a SHA-256 of source and signature, in the `replay_cache` table, shared by
every replica) for as long as a copy could otherwise still be accepted:
- Grafana with a signed timestamp: the freshness window on either side of now (older copies fail the
  window check anyway);
- Sentry, and Grafana's body-only signature: `RETENTION` (24 h). Vendors do not re-send an identical
  signed body within that time except as a retry of a delivery already stored, so nothing is lost.
Bearer-token deliveries (Alertmanager, changes) carry no per-delivery proof to remember; re-sends of
the same alert only update it (dedup by fingerprint).

Deliveries that carry alerts are remembered by the intake writer in the transaction that stores them
(`ReplayClaim`, `claim`): the signature is kept exactly when the alerts are, so a refused or failed
delivery needs no `forget`, and no second write transaction per delivery competes with the writer
for the database. `remember`/`forget` remain for deliveries that store nothing (ignored resources).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firebreak.context import ToolContext
from firebreak.server.intake.errors import IntakeRefused
from firebreak.state.security import ReplayEntry

RETENTION = timedelta(hours=24)
_REPLAY = cast(Table, ReplayEntry.__table__)


def replay_key(source: str, signature: str) -> str:
    return hashlib.sha256(f"{source}:{signature.strip().lower()}".encode("utf-8", "surrogateescape")).hexdigest()


def _refusal(source: str, seen_at: datetime) -> IntakeRefused:
    return IntakeRefused(
        409, f"duplicate delivery: this {source} signature was already accepted at "
        f"{seen_at:%Y-%m-%dT%H:%M:%SZ} (replayed); nothing was stored", "replay")


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """A verified signature to remember with the delivery it signed, kept `keep` from `now`."""

    source: str
    signature: str
    now: datetime
    keep: timedelta


def purge(session: Session, now: datetime) -> None:
    """Drop expired signatures (indexed on expires_at); the writer does it once per batch."""
    session.execute(delete(ReplayEntry).where(ReplayEntry.expires_at < now))


def claim(session: Session, entry: ReplayClaim) -> IntakeRefused | None:
    """Remember the signature in this transaction, or the 409 to answer when it is already kept.

    Call after `purge` in the same transaction: any row left then is unexpired. The insert does
    nothing on a conflict (SQLite and PostgreSQL), so a replay never aborts the writer's batch.
    """
    key = replay_key(entry.source, entry.signature)
    dialect = session.get_bind().dialect.name
    values = {"key": key, "source": entry.source, "seen_at": entry.now, "expires_at": entry.now + entry.keep}
    if dialect in ("sqlite", "postgresql"):
        ins = sqlite_insert(_REPLAY) if dialect == "sqlite" else pg_insert(_REPLAY)
        stmt = ins.values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(_REPLAY.c.key)
        if session.execute(stmt).first() is not None:  # a row back: inserted (rowcount is not portable)
            return None
    elif session.get(ReplayEntry, key) is None:
        session.add(ReplayEntry(**values))
        session.flush()
        return None
    seen = session.scalar(select(ReplayEntry.seen_at).where(ReplayEntry.key == key))
    return _refusal(entry.source, seen or entry.now)


def remember(ctx: ToolContext, source: str, signature: str, *, now: datetime, keep: timedelta) -> None:
    """Record a verified signature; IntakeRefused(409) when it was already accepted and is still kept."""
    key = replay_key(source, signature)
    try:
        with ctx.db.session() as s:
            s.execute(delete(ReplayEntry).where(ReplayEntry.expires_at < now))
            s.add(ReplayEntry(key=key, source=source, seen_at=now, expires_at=now + keep))
            s.flush()
        return
    except IntegrityError:
        pass
    with ctx.db.session() as s:
        row = s.get(ReplayEntry, key)
        if row is not None and row.expires_at >= now:
            raise _refusal(source, row.seen_at)
        # Expired between our delete and insert (or a clock step back): take it over.
        s.execute(update(ReplayEntry).where(ReplayEntry.key == key)
                  .values(seen_at=now, expires_at=now + keep).execution_options(synchronize_session=False))


def forget(ctx: ToolContext, source: str, signature: str) -> None:
    """Drop a remembered signature whose delivery was then refused (429, 503...), so its retry is accepted."""
    with ctx.db.session() as s:
        s.execute(delete(ReplayEntry).where(ReplayEntry.key == replay_key(source, signature)))
