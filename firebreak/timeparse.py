"""Times typed by a person at a terminal: ISO 8601, relative offsets and a few plain-English forms.

Why not a parser library: the forms people use in an incident (`-2h`, `30m ago`, `yesterday 14:00`,
`last tuesday`) are a handful, and the general parsers weigh megabytes of language data and still need
the relative offsets added by hand. What is not understood gets one line that lists what is.
Times of day are UTC, as everywhere in Firebreak.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

FORMS = "ISO 8601 with a zone (2026-03-02T08:00:00Z), now, -2h / 30m ago / 1d, yesterday 14:00, last tuesday"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_UNIT_WORDS = {
    "sec": "s", "secs": "s", "second": "s", "seconds": "s", "min": "m", "mins": "m", "minute": "m",
    "minutes": "m", "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "day": "d", "days": "d", "week": "w",
    "weeks": "w",
}
_OFFSET = re.compile(r"^-?\s*((?:\d+\s*[a-z]+\s*)+?)(?:\s*ago)?$")
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class TimeParseError(ValueError):
    """The text is not a time this module understands; the message lists the accepted forms."""


def _offset(text: str) -> timedelta | None:
    m = _OFFSET.match(text)
    if not m:
        return None
    total = timedelta()
    for num, unit in _PART.findall(m.group(1)):
        key = unit if unit in _UNITS else _UNIT_WORDS.get(unit)
        if key is None:
            return None
        total += timedelta(**{_UNITS[key]: int(num)})
    return total


def _clock(text: str) -> time | None:
    m = _CLOCK.match(text.strip())
    if not m:
        return None
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if m.group(3) == "pm" and hour < 12:
        hour += 12
    elif m.group(3) == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute, tzinfo=UTC)


def _day_and_clock(text: str, now: datetime) -> datetime | None:
    """`yesterday`, `today 09:30`, `last tuesday`, `tuesday 14:00`: midnight unless a time is given."""
    words = text.split(maxsplit=2)
    day: datetime | None = None
    rest: list[str] = []
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if words[0] in ("today", "yesterday"):
        day = today - timedelta(days=0 if words[0] == "today" else 1)
        rest = words[1:]
    else:
        if words[0] == "last" and len(words) > 1:
            words = words[1:]
        if words[0] in _DAYS:
            back = (today.weekday() - _DAYS.index(words[0])) % 7 or 7  # "tuesday" on a tuesday: a week ago
            day = today - timedelta(days=back)
            rest = words[1:]
    if day is None:
        return None
    if not rest:
        return day
    at = " ".join(rest).removeprefix("at ").strip()
    clock = _clock(at)
    if clock is None:
        return None
    return day.replace(hour=clock.hour, minute=clock.minute)


def parse_when(value: str, now: datetime) -> datetime:
    """A timezone-aware UTC datetime for `value`, relative forms counted back from `now`."""
    text = " ".join(value.strip().lower().split())
    if not text:
        raise TimeParseError(f"empty time; use {FORMS}")
    if text == "now":
        return now
    delta = _offset(text)
    if delta is not None:
        return now - delta
    found = _day_and_clock(text, now)
    if found is not None:
        return found
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeParseError(f"not a time: {value!r}; use {FORMS}") from None
    if parsed.tzinfo is None:
        raise TimeParseError(f"{value!r} has no timezone; add one (2026-03-02T08:00:00Z) or use {FORMS}")
    return parsed.astimezone(UTC)
