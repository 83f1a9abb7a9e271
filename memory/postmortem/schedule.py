"""When a post-mortem falls due: the next working morning after resolution, or a set delay."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

DUE_SEVERITIES = ("major", "critical")


def next_working_morning(at: datetime, hour: int = 9) -> datetime:
    """09:00 (UTC) of the next weekday after `at`: when people hold the morning-after review."""
    day: date = at.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=at.tzinfo)


def due_at(resolved_at: datetime, delay_hours: float | None) -> datetime:
    return resolved_at + timedelta(hours=delay_hours) if delay_hours is not None else next_working_morning(resolved_at)
