"""An injectable clock, so a drill's simulated "now" is what every tool sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, drills)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


class ScaledClock:
    """Simulated time running `factor` times faster than wall time from `start` (practice drills)."""

    def __init__(self, start: datetime, factor: float = 1.0) -> None:
        self._start = start
        self._wall0 = datetime.now(UTC)
        self._factor = factor

    def now(self) -> datetime:
        return self._start + (datetime.now(UTC) - self._wall0) * self._factor


def ensure_aware(value: datetime, field: str = "timestamp") -> datetime:
    """Timestamps without a zone are refused: guessing a zone corrupts the incident log."""
    if value.tzinfo is None:
        raise ValueError(f"{field}: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)")
    return value.astimezone(UTC)
