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
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from firebreak.context import ToolContext
from firebreak.server.intake.errors import IntakeRefused
from firebreak.state.security import ReplayEntry

RETENTION = timedelta(hours=24)


def replay_key(source: str, signature: str) -> str:
    return hashlib.sha256(f"{source}:{signature.strip().lower()}".encode("utf-8", "surrogateescape")).hexdigest()


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
            raise IntakeRefused(
                409, f"duplicate delivery: this {source} signature was already accepted at "
                f"{row.seen_at:%Y-%m-%dT%H:%M:%SZ} (replayed); nothing was stored", "replay")
        # Expired between our delete and insert (or a clock step back): take it over.
        s.execute(update(ReplayEntry).where(ReplayEntry.key == key)
                  .values(seen_at=now, expires_at=now + keep).execution_options(synchronize_session=False))


def forget(ctx: ToolContext, source: str, signature: str) -> None:
    """Drop a remembered signature whose delivery was then refused (429, 503...), so its retry is accepted."""
    with ctx.db.session() as s:
        s.execute(delete(ReplayEntry).where(ReplayEntry.key == replay_key(source, signature)))
