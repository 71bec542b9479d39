"""Errors raised by the learning cores.

The tree is small on purpose::

    ValueError
    ├── LearnInputError   bad request input; ``.field`` names the offending body field
    └── StateError        a state blob that cannot be trusted (schema, kind, shape, checksum)

Both subclass ``ValueError`` so that a caller that only knows "bad value" still catches them.
Messages name the field, never the values: a request may carry a 384-float embedding, and an
error log is no place for it.
"""

from __future__ import annotations

__all__ = ["LearnInputError", "StateError"]


class LearnInputError(ValueError):
    """A request body or argument is unusable; ``field`` is its dotted name (``payload.quality``).

    >>> err = LearnInputError("embedding", "expected 384 values, got 12")
    >>> err.field, str(err)
    ('embedding', 'embedding: expected 384 values, got 12')
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class StateError(ValueError):
    """A state blob failed a check; the core must not be silently re-initialised.

    >>> str(StateError("kind mismatch: expected 'instant', blob holds 'router'"))
    "kind mismatch: expected 'instant', blob holds 'router'"
    """
