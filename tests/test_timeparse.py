"""Times typed at a terminal: relative offsets, plain-English days, ISO 8601, one clear line otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firebreak.timeparse import TimeParseError, parse_when

NOW = datetime(2026, 3, 5, 10, 30, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-2h", datetime(2026, 3, 5, 8, 30, tzinfo=UTC)),
        ("30m ago", datetime(2026, 3, 5, 10, 0, tzinfo=UTC)),
        ("1h30m", datetime(2026, 3, 5, 9, 0, tzinfo=UTC)),
        ("2 hours ago", datetime(2026, 3, 5, 8, 30, tzinfo=UTC)),
        ("1d", datetime(2026, 3, 4, 10, 30, tzinfo=UTC)),
        ("yesterday", datetime(2026, 3, 4, tzinfo=UTC)),
        ("yesterday 14:00", datetime(2026, 3, 4, 14, 0, tzinfo=UTC)),
        ("Yesterday at 2pm", datetime(2026, 3, 4, 14, 0, tzinfo=UTC)),
        ("today 09:15", datetime(2026, 3, 5, 9, 15, tzinfo=UTC)),
        ("last tuesday", datetime(2026, 3, 3, tzinfo=UTC)),
        ("last thursday", datetime(2026, 2, 26, tzinfo=UTC)),
        ("monday 8:00", datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
        ("2026-03-02T08:00:00Z", datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
        ("2026-03-02T09:00:00+01:00", datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
    ],
)
def test_understood_forms(text: str, expected: datetime) -> None:
    got = parse_when(text, NOW)
    assert got == expected and got.tzinfo is not None


@pytest.mark.parametrize("text", ["last fortnight", "yesterday 25:00", "2026-03-02T08:00:00", "", "3 parsecs ago"])
def test_other_text_gets_one_line_listing_the_forms(text: str) -> None:
    with pytest.raises(TimeParseError) as err:
        parse_when(text, NOW)
    msg = str(err.value)
    assert "\n" not in msg and "yesterday 14:00" in msg and "Input should" not in msg
