"""Units of the scenario format: durations (`1h30m`), rates (`60/m`) and timestamps (RFC 3339 with a zone)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|sec|min|hour|second|minute)\s*$")
_RATE_UNIT = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
              "h": 3600.0, "hour": 3600.0}


def parse_duration(value: object) -> timedelta:
    """`30s`, `12m`, `2h`, `1h30m` (also a bare number of seconds, e.g. `0`). Raises ValueError."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 12m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s, 12m or 1h30m, got {value!r}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as 30s, 12m or 1h30m, got {value!r}")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The shortest `1h30m`-style text for a duration (reports, debriefs)."""
    secs = int(round(delta.total_seconds()))
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)
    return sign + (out or "0s")


def parse_rate(value: object) -> float:
    """`60/m`, `5/s`, `200/h` as events per second. Raises ValueError."""
    if isinstance(value, str):
        m = _RATE.match(value)
        if m:
            return float(m.group(1)) / _RATE_UNIT[m.group(2)]
    raise ValueError(f"expected a rate such as 60/m, 5/s or 200/h, got {value!r}")


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 with a zone; a timestamp without one is refused rather than guessed."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an RFC 3339 timestamp such as 2026-03-02T08:00:00Z, got {value!r}") from None
    else:
        raise ValueError(f"expected an RFC 3339 timestamp such as 2026-03-02T08:00:00Z, got {value!r}")
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {value!s} has no zone (write e.g. 2026-03-02T08:00:00Z)")
    return dt.astimezone(UTC)
