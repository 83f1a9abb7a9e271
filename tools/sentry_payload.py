"""Sentry payload parsing shared by webhook intake (server/intake/normalize.py) and the sentry tools.

Kept free of server imports so tools/ can use it without pulling in the web app.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any


def tag_pairs(tags: Any, max_items: int | None = None) -> Iterator[tuple[Any, Any]]:
    """(key, value) pairs of Sentry tags, sent as [[key, value], ...], [{key, value}, ...] or a mapping.

    Malformed items are skipped; `max_items` bounds how many raw items are looked at.
    """
    items = list(tags.items()) if isinstance(tags, dict) else list(tags or [])
    for item in islice(items, max_items):
        if isinstance(item, list | tuple) and len(item) == 2:
            yield item[0], item[1]
        elif isinstance(item, dict) and "key" in item:
            yield item.get("key"), item.get("value")


def epoch_datetime(value: float | None) -> datetime | None:
    """Sentry's numeric `timestamp` (seconds since the epoch) as UTC; None when absent or out of range."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None
