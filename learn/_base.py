"""What the learning cores share (private): settings read back from ``__init__``, the start of
``from_state``, target names to columns, and the checks of an EWC anchor.

A core keeps each setting under its constructor name (river's convention), so its settings are
read back from the signature instead of a hand-kept dict per class, and
``type(core)(**core.settings())`` is a fresh core with the same settings:

>>> from learn.ewc import EWC
>>> EWC(ring_size=4).settings() == {"ewc_lambda": 2000.0, "decay": 0.999, "ring_size": 4,
...                                 "z_threshold": 2.5, "min_history": 3, "std_floor": 1e-4}
True
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, TypeVar

import numpy as np

from learn import _check
from learn.errors import LearnInputError, StateError
from learn.state import State

__all__ = ["Core", "Targeted", "anchor_pair"]

C = TypeVar("C", bound="Core")


class Core:
    """Base of the cores: :meth:`settings` and the start of ``from_state``."""

    kind: ClassVar[str]

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments as they are now, by name (lists and maps copied)."""
        return {name: _copied(getattr(self, name)) for name in _init_names(type(self))}

    @classmethod
    def _from_settings(cls: type[C], state: State) -> C:
        """A fresh core from a state's settings; invalid settings are a StateError naming the field."""
        try:
            return cls(**state.settings)
        except LearnInputError as exc:
            raise StateError(f"{cls.kind} settings are invalid ({exc.field})") from exc


class Targeted(Core):
    """A core with named targets (``self._index``: target name to column)."""

    _index: dict[str, int]

    def target_index(self, target: Any, field: str = "target") -> int:
        """The column of ``target``; an unknown name raises LearnInputError naming ``field``."""
        if not isinstance(target, str):
            raise LearnInputError(field, "expected a target name")
        try:
            return self._index[target]
        except KeyError:
            raise LearnInputError(field, "unknown target") from None


def anchor_pair(
    name: str,
    fisher: Any,
    snapshot: Mapping[str, Any] | None,
    current: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked Fisher of parameter ``name`` and its snapshot, both copies (the snapshot is
    ``current`` when none is given). Failures name ``fisher.<name>`` or ``snapshot.<name>``."""
    shape = current.shape
    f = _check.array(fisher, f"fisher.{name}")
    if f.shape != shape:
        raise LearnInputError(f"fisher.{name}", f"expected shape {shape}")
    if (f < 0).any():
        raise LearnInputError(f"fisher.{name}", "must be non-negative")
    if snapshot is None:
        return f.copy(), current.copy()
    if not isinstance(snapshot, Mapping) or name not in snapshot:
        raise LearnInputError(f"snapshot.{name}", "is missing")
    s = _check.array(snapshot[name], f"snapshot.{name}")
    if s.shape != shape:
        raise LearnInputError(f"snapshot.{name}", f"expected shape {shape}")
    return f.copy(), s.copy()


@cache
def _init_names(cls: type) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def _copied(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
