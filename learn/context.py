"""Context-window buckets: the smallest of five windows that holds a request's estimated tokens."""

from __future__ import annotations

from typing import Any

from learn import _check

__all__ = ["CONTEXT_BUCKETS", "CONTEXT_WINDOWS", "bucket_index", "context_bucket"]

CONTEXT_WINDOWS = (1024, 4096, 16384, 65536)
"""Upper token limits (inclusive) of the first four buckets; above 65,536 is the fifth."""
CONTEXT_BUCKETS = ("1k", "4k", "16k", "64k", "64k+")


def context_bucket(estimated_tokens: Any) -> str:
    """The smallest context window that holds the tokens.

    >>> [context_bucket(n) for n in (0, 1024, 1025, 4096, 16385, 65536, 65537)]
    ['1k', '1k', '4k', '4k', '64k', '64k', '64k+']
    """
    return CONTEXT_BUCKETS[bucket_index(estimated_tokens)]


def bucket_index(estimated_tokens: Any) -> int:
    """The position of :func:`context_bucket`'s answer in :data:`CONTEXT_BUCKETS`."""
    n = _check.integer(estimated_tokens, "estimated_tokens", lo=0)
    for i, edge in enumerate(CONTEXT_WINDOWS):
        if n <= edge:
            return i
    return len(CONTEXT_WINDOWS)
