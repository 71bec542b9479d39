"""Tests for kg.timeparse: ISO-8601 <-> epoch milliseconds, including BC years."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kg.errors import InvalidInput
from kg.timeparse import (
    MAX_MS,
    MIN_MS,
    civil_from_days,
    days_from_civil,
    from_ms,
    to_ms,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _python_ms(text: str) -> int:
    """Reference value from the standard library (years 1..9999 only)."""
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970", 0),
        ("1970-01", 0),
        ("1970-01-01", 0),
        ("1970-01-01T00:00Z", 0),
        ("2019-03-01T00:00:00Z", 1_551_398_400_000),
        ("2019-03-01T00:00:00.5Z", 1_551_398_400_500),
        ("2019-03-01T00:00:00.123456789Z", 1_551_398_400_123),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2019-03-01T01:00+01:00", 1_551_398_400_000),
        ("2019-02-28T19:00-0500", 1_551_398_400_000),
        ("  2019-03-01  ", 1_551_398_400_000),
        ("0000-01-01", -62_167_219_200_000),
        ("+12000-01-01", days_from_civil(12000, 1, 1) * 86_400_000),
    ],
)
def test_to_ms_known_values(text: str, expected: int) -> None:
    assert to_ms(text, "t") == expected


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01",
        "1600-02-29",
        "1969-07-20T20:17:40Z",
        "2024-02-29T23:59:59.999",
        "9999-12-31T23:59:59.999+14:00",
        "1900-03-01T12:00-11:30",
    ],
)
def test_to_ms_agrees_with_datetime(text: str) -> None:
    assert to_ms(text, "t") == _python_ms(text)


def test_bc_years_are_astronomical_and_negative() -> None:
    ms = to_ms("-0431-01-01", "valid_at")
    assert ms < to_ms("0000-01-01", "t") < 0
    assert ms == days_from_civil(-431, 1, 1) * 86_400_000
    # year -431 is 432 BC; -432 is a leap year in astronomical numbering (433 BC)
    assert to_ms("-0432-02-29", "t") + 86_400_000 == to_ms("-0432-03-01", "t")


def test_ints_pass_through() -> None:
    assert to_ms(-5, "t") == -5
    assert to_ms(MAX_MS, "t") == MAX_MS
    assert to_ms(MIN_MS, "t") == MIN_MS


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        float("nan"),
        True,
        None,
        b"2019",
        [2019],
        MAX_MS + 1,
        MIN_MS - 1,
        "",
        "2019-3-1",
        "19",
        "20190",
        "2019-13",
        "2019-00-10",
        "2019-02-29",
        "1900-02-29",
        "2019-04-31",
        "2019-01-00",
        "2019-01-01T24:00",
        "2019-01-01T23:60",
        "2019-06-30T23:59:60Z",
        "2019-01-01T10",
        "2019-01-01T10:00+24:00",
        "2019-01-01Z",
        "2019-01-01 10:00",
        "2019-01-01T10:00:00.1234567890Z",
        "+999999999999999-01-01",
        "tomorrow",
        "1551398400000",
    ],
)
def test_rejects_bad_values_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        to_ms(value, "valid_at")
    assert info.value.field == "valid_at"
    assert str(info.value).startswith("valid_at: ")


def test_error_never_echoes_the_value() -> None:
    secret = "2019-02-30T00:00:00Z"
    with pytest.raises(InvalidInput) as info:
        to_ms(secret, "invalid_at")
    assert secret not in str(info.value)
    assert "2019" not in str(info.value)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_551_398_400_000, "2019-03-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (to_ms("-0431-06-15T08:00", "t"), "-0431-06-15T08:00:00Z"),
        (to_ms("-0001-12-31", "t"), "-0001-12-31T00:00:00Z"),
        (to_ms("+10000-01-01", "t"), "+10000-01-01T00:00:00Z"),
    ],
)
def test_from_ms_known_values(ms: int, text: str) -> None:
    assert from_ms(ms) == text


def test_from_ms_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        from_ms(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_ms(True)


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_round_trip_whole_int64_range(ms: int) -> None:
    assert to_ms(from_ms(ms), "t") == ms


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_round_trip_historical_range(ms: int) -> None:
    text = from_ms(ms)
    assert to_ms(text, "t") == ms
    assert from_ms(to_ms(text, "t")) == text


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_civil_days_inverse(days: int) -> None:
    assert days_from_civil(*civil_from_days(days)) == days


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)))
def test_agrees_with_datetime_where_it_can(when: dt.datetime) -> None:
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    text = when.isoformat(timespec="milliseconds")
    assert to_ms(text, "t") == _python_ms(text)
