"""Fork keys: an equality-indexable key for "which intervals contain t".

Graph indexes answer equality lookups well and range predicates poorly (ArcadeDB
uses a composite index only for equality and ``IN`` keys), and a stabbing
query ``from <= t < to`` is two ranges.  So each interval is filed under one
*fork key*: the smallest aligned bucket of a binary hierarchy of time buckets
(widths 2^BASE_BITS ms, doubled per level) that holds the whole interval.  An
interval containing ``t`` lies in a bucket containing ``t``, so its key is one of
the ~40 buckets on the path from ``t`` up to the root: ``stab_keys(t)`` lists
them and the query is one ``IN`` lookup plus an exact filter.  Work is
proportional to the intervals near ``t``, not to a subject's whole history.
This is the relational interval tree idea (Kriegel, Pötke & Seidl, VLDB 2000)
on aligned buckets.  Open-ended intervals share the key ``OPEN_KEY``.

A stored version needs one index entry, not two (index upkeep is most of the
cost of a write): ``time_key`` files a *current* version (system interval
still open) by the fork key of its valid interval, and a *closed* version by
the fork key of its system interval.  "Valid at t, believed now" looks among
current versions by valid time; "valid at t, believed at T" adds the closed
versions whose system interval contains T (``as_of_keys``).

>>> k = fork_key(1_000, 2_000)
>>> k in stab_keys(1_500), k in stab_keys(10**12)
(True, False)
>>> fork_key(5, OPEN) == OPEN_KEY and OPEN_KEY in stab_keys(5)
True
"""

from __future__ import annotations

OPEN = 2**63 - 1  # "no end": the largest Bolt integer, so ``t < to`` needs no null checks
MIN_TIME = -(2**63) + 1
BASE_BITS = 26  # finest bucket: 2^26 ms, about 18.6 hours
_SHIFT = 2**63  # maps signed ms onto [0, 2^64) so buckets never straddle zero
LEVELS = 64 - BASE_BITS + 1  # the top level holds everything
OPEN_KEY = -1


def _key(unsigned: int, level: int) -> int:
    return ((unsigned >> (BASE_BITS + level)) << 6) | level


def fork_key(start: int, end: int) -> int:
    """The key of the half-open interval ``[start, end)`` (``end == OPEN`` for open)."""
    if end >= OPEN:
        return OPEN_KEY
    # max() spelt out: its calls cost more than the rest (ingest keys every edge)
    lo, hi = start + _SHIFT, (end - 1 if end > start else start) + _SHIFT
    bits = (lo ^ hi).bit_length()
    return _key(lo, bits - BASE_BITS if bits > BASE_BITS else 0)


def stab_keys(t: int) -> list[int]:
    """Every key under which an interval containing ``t`` can be filed."""
    u = t + _SHIFT
    return [_key(u, level) for level in range(LEVELS)] + [OPEN_KEY]


def closed_stab_keys(t: int) -> list[int]:
    """``stab_keys`` without the open key: only intervals that have an end."""
    return stab_keys(t)[:-1]


def time_key(valid_from: int, valid_to: int, sys_from: int, sys_to: int) -> int:
    """The one index key of a version: even for current versions, odd for closed ones."""
    if sys_to >= OPEN:
        return fork_key(valid_from, valid_to) * 2
    return fork_key(sys_from, sys_to) * 2 + 1


def current_keys(t: int) -> list[int]:
    """Keys of current versions whose valid interval may contain ``t``."""
    return [k * 2 for k in stab_keys(t)]


def as_of_keys(t: int, known_at: int) -> list[int]:
    """Keys of every version that may be valid at ``t`` and believed at ``known_at``."""
    return current_keys(t) + [k * 2 + 1 for k in closed_stab_keys(known_at)]
