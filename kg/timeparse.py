"""Times as integers: milliseconds since the Unix epoch, UTC.

The service stores and compares plain integers, so every time is converted once,
at the edge, from an ISO-8601 string.  Real facts reach back before 1970 and
into BC years, which Python's ``datetime`` cannot represent (it stops at year
1), so the calendar arithmetic is done by hand with the proleptic Gregorian
``days_from_civil`` / ``civil_from_days`` algorithms (H. Hinnant).  Years use
astronomical numbering exactly as written: ``0000`` is 1 BC, ``-0431`` is 432 BC.

Accepted strings (surrounding whitespace is ignored):

- ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``; the first instant of that year, month
  or day.
- ``YYYY-MM-DDTHH:MM``, ``…:SS`` and ``…:SS.f`` (1 to 9 fraction digits,
  floored to the millisecond), then optionally ``Z`` or an offset ``±HH:MM``
  (or ``±HHMM``).  Without one the time is UTC.
- A year is four digits, or a sign and at least four digits (ISO's expanded
  form): ``-0431-03-15``, ``+12000-01-01``.

Rejected: floats (a time is never fractional milliseconds), bools, leap seconds,
hour 24, and anything outside the signed 64-bit range that Bolt can carry.

>>> to_ms("2019-03-01", "valid_at")
1551398400000
>>> from_ms(1551398400000)
'2019-03-01T00:00:00Z'
>>> from_ms(to_ms("-0431-01-01", "valid_at"))
'-0431-01-01T00:00:00Z'
"""

from __future__ import annotations

import re

from kg.errors import InvalidInput

__all__ = [
    "MAX_MS",
    "MIN_MS",
    "MS_PER_DAY",
    "civil_from_days",
    "days_from_civil",
    "days_in_month",
    "from_ms",
    "is_leap_year",
    "to_ms",
]

MS_PER_DAY = 86_400_000
MIN_MS = -(2**63)
MAX_MS = 2**63 - 1

_ISO = re.compile(
    r"""
    (?P<year>[+-]\d{4,}|\d{4})
    (?:-(?P<month>\d{2})
      (?:-(?P<day>\d{2})
        (?:T(?P<hour>\d{2}):(?P<minute>\d{2})
          (?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?
          (?P<zone>Z|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2}))?
        )?
      )?
    )?
    """,
    re.VERBOSE,
)


def is_leap_year(year: int) -> bool:
    """Proleptic Gregorian leap year, astronomical numbering.

    >>> [is_leap_year(y) for y in (2000, 1900, 2024, 0, -4, -1)]
    [True, False, True, True, True, False]
    """
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    """Number of days in a month of the proleptic Gregorian calendar.

    >>> days_in_month(2023, 2), days_in_month(2024, 2), days_in_month(2024, 4)
    (28, 29, 30)
    """
    if month == 2:
        return 29 if is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no range checks).

    Works for any integer year, unlike ``datetime``.

    >>> days_from_civil(1970, 1, 1), days_from_civil(2000, 3, 1), days_from_civil(0, 1, 1)
    (0, 11017, -719528)
    """
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The (year, month, day) that is ``days`` after 1970-01-01; inverse of days_from_civil.

    >>> civil_from_days(0), civil_from_days(-1), civil_from_days(-719528)
    ((1970, 1, 1), (1969, 12, 31), (0, 1, 1))
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def to_ms(value: object, field: str) -> int:
    """Convert an int of epoch milliseconds or an ISO-8601 string to epoch milliseconds.

    ``field`` names the input in errors; the value itself is never echoed.

    >>> to_ms(0, "t"), to_ms("1970-01-01T00:00:00.001Z", "t"), to_ms("1970-01-01T01:00+01:00", "t")
    (0, 1, 0)
    >>> to_ms("1900-02-29", "valid_at")
    Traceback (most recent call last):
    ...
    kg.errors.InvalidInput: valid_at: day out of range for its month
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(field, "must be an integer of epoch milliseconds or an ISO-8601 string")
    ms = value if isinstance(value, int) else _parse_iso(value.strip(), field)
    if not MIN_MS <= ms <= MAX_MS:
        raise InvalidInput(field, "out of range for a 64-bit millisecond timestamp")
    return ms


def _parse_iso(text: str, field: str) -> int:
    m = _ISO.fullmatch(text)
    if m is None:
        raise InvalidInput(field, "not an ISO-8601 date or date-time")
    year = int(m["year"])
    month = _bounded(m["month"], 1, 12, field, "month")
    day = _bounded(m["day"], 1, 31, field, "day")
    if day > days_in_month(year, month):
        raise InvalidInput(field, "day out of range for its month")
    hour = _bounded(m["hour"], 0, 23, field, "hour", default=0)
    minute = _bounded(m["minute"], 0, 59, field, "minute", default=0)
    second = _bounded(m["second"], 0, 59, field, "second", default=0)
    millis = int((m["fraction"] or "0").ljust(3, "0")[:3])
    offset = 0
    if m["sign"]:
        oh = _bounded(m["oh"], 0, 23, field, "offset hour")
        om = _bounded(m["om"], 0, 59, field, "offset minute")
        offset = (1 if m["sign"] == "+" else -1) * (oh * 60 + om)
    minutes = hour * 60 + minute - offset
    return days_from_civil(year, month, day) * MS_PER_DAY + minutes * 60_000 + second * 1000 + millis


def _bounded(digits: str | None, low: int, high: int, field: str, part: str, default: int = 1) -> int:
    if digits is None:
        return default
    number = int(digits)
    if not low <= number <= high:
        raise InvalidInput(field, f"{part} out of range")
    return number


def from_ms(ms: int) -> str:
    """ISO-8601 UTC text of epoch milliseconds; ``to_ms`` reads it back to the same int.

    Milliseconds are shown only when not zero.  Years outside 0000..9999 use
    the signed expanded form.

    >>> from_ms(-1), from_ms(0)
    ('1969-12-31T23:59:59.999Z', '1970-01-01T00:00:00Z')
    >>> from_ms(to_ms("+12000-06-01T12:30", "t"))
    '+12000-06-01T12:30:00Z'
    """
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError("from_ms takes an int of epoch milliseconds")
    days, rest = divmod(ms, MS_PER_DAY)
    year, month, day = civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    if 0 <= year <= 9999:
        year_text = f"{year:04d}"
    else:
        year_text = f"{'+' if year > 0 else '-'}{abs(year):04d}"
    fraction = f".{millis:03d}" if millis else ""
    return f"{year_text}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"


_EPOCH_MS_TEXT = re.compile(r"[+-]?\d{5,}")


def text_to_ms(text: str, field: str) -> int:
    """A time typed as text (CLI flag, CSV cell): an optionally signed integer of
    five or more digits is epoch ms, anything else ISO-8601 (so ``2019`` is a year).

    >>> text_to_ms("1546300800000", "t") == text_to_ms("2019-01-01", "t")
    True
    """
    if _EPOCH_MS_TEXT.fullmatch(text):
        return to_ms(int(text), field)
    return to_ms(text, field)


def is_epoch_ms_text(text: str) -> bool:
    """Whether ``text_to_ms`` reads ``text`` as epoch milliseconds."""
    return _EPOCH_MS_TEXT.fullmatch(text) is not None
