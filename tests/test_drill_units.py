"""Units of the scenario format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firebreak.simulations.units import format_duration, parse_duration, parse_rate, parse_timestamp


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("12m", 720), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), ("0", 0), (90, 90), ("500ms", 0.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "ten minutes", "5x", "m5", "-5m", True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_rates() -> None:
    assert parse_rate("60/m") == pytest.approx(1.0)
    assert parse_rate("5/s") == pytest.approx(5.0)
    assert parse_rate("200/h") == pytest.approx(200 / 3600)
    for bad in ("60", "60 per minute", "/m", 60):
        with pytest.raises(ValueError, match="rate"):
            parse_rate(bad)


def test_timestamps_need_a_zone() -> None:
    assert parse_timestamp("2026-03-02T08:00:00Z") == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert parse_timestamp("2026-03-02T09:00:00+01:00") == datetime(2026, 3, 2, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="no zone"):
        parse_timestamp("2026-03-02T08:00:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp("yesterday")


def test_format_duration() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(0)) == "0s"
