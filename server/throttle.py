"""Sign-in throttling: per account and per address, with exponential backoff after repeated failures.

Why both: a per-account limit stops guessing one person's password from many addresses; a per-address
limit stops one address trying one password on many accounts. The first few failures are free (people
mistype); after that each further attempt must wait 1 s, 2 s, 4 s ... up to 15 minutes after the last
failure. An attempt made while throttled is refused without checking the password and counts as a
failure, so hammering keeps the door shut. A successful sign-in clears the account's count. Every
attempt is a row (`sign_in_attempts`) so the limits hold across replicas and restarts; refusals are
logged and written to the audit log by the caller.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from firebreak.state.security import SignInAttempt

log = logging.getLogger("firebreak.security")

WINDOW = timedelta(minutes=15)
FREE_FAILURES_PER_ACCOUNT = 5
FREE_FAILURES_PER_ADDRESS = 20
MAX_WAIT = timedelta(minutes=15)
KEEP = timedelta(days=1)


class Throttled(BaseModel):
    """Why an attempt is refused before the password is checked, and for how long."""

    scope: str  # "account" or "address"
    failures: int
    retry_after_seconds: int


def _failures(
    s: Session, column: InstrumentedAttribute[str], value: str, since: datetime
) -> tuple[int, datetime | None]:
    """Failures on `column == value` after `since` and after the last success; and the last failure time."""
    last_ok = s.scalar(select(func.max(SignInAttempt.at)).where(
        column == value, SignInAttempt.ok.is_(True), SignInAttempt.at > since))
    start = max(since, last_ok) if last_ok is not None else since
    count, last = s.execute(select(func.count(), func.max(SignInAttempt.at)).where(
        column == value, SignInAttempt.ok.is_(False), SignInAttempt.at > start)).one()
    return int(count or 0), last


def _wait(failures: int, free: int) -> timedelta:
    if failures < free:
        return timedelta(0)
    return min(MAX_WAIT, timedelta(seconds=2 ** min(failures - free, 20)))


def check(s: Session, *, account: str, address: str, now: datetime) -> Throttled | None:
    """None when an attempt may go ahead now; otherwise which limit holds and for how long."""
    since = now - WINDOW
    for scope, column, value, free in (
        ("account", SignInAttempt.account, account, FREE_FAILURES_PER_ACCOUNT),
        ("address", SignInAttempt.address, address, FREE_FAILURES_PER_ADDRESS),
    ):
        failures, last = _failures(s, column, value, since)
        wait = _wait(failures, free)
        if last is not None and wait and now < last + wait:
            retry = max(1, math.ceil((last + wait - now).total_seconds()))
            return Throttled(scope=scope, failures=failures, retry_after_seconds=retry)
    return None


def record(s: Session, *, account: str, address: str, ok: bool, now: datetime) -> None:
    """Keep one attempt; old rows go (one day is more than any window needs)."""
    s.add(SignInAttempt(at=now, account=account[:128], address=address[:64], ok=ok))
    s.execute(delete(SignInAttempt).where(SignInAttempt.at < now - KEEP))
    if not ok:
        log.info("failed sign-in for %r from %s", account[:128], address[:64])
