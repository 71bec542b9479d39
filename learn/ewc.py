"""Deep consolidation: EWC++ (online Fisher, snapshot, penalty) and a loss-shift detector.

Elastic weight consolidation keeps parameters that mattered for earlier data close to where they
were: the penalty ``lambda * sum(F * (p - snapshot)^2)`` is large only along directions with a large
Fisher ``F``. EWC++ keeps ``F`` as an exponential moving average of squared gradients
(``F = decay * F + (1 - decay) * g^2``), so it needs no pass over old data and its memory is one
array per parameter id. Because it is an EMA of ``g^2``, every entry stays within
``[0, max g^2 seen]``.

The loss ring detects task boundaries: a loss whose z-score against the ring (up to ``ring_size``
earlier losses, population std floored at ``std_floor``) exceeds ``z_threshold`` fires, once at
least ``min_history`` earlier losses are in (the reference rule, :class:`learn.shift.ZRing`). The
caller typically consolidates when it fires. It sees only shifts that move the loss level; a topic
shift that does not (bench/README-learn.md) is caught by the router's input-shift monitor.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from learn import _check
from learn._base import Core
from learn.errors import LearnInputError, StateError
from learn.limits import EWC_MAX_KEYS, EWC_MAX_VALUES
from learn.shift import ZRing
from learn.state import State, expect_array, register

__all__ = ["EWC"]


@register
class EWC(Core):
    """EWC++ Fisher/snapshot store per parameter id, plus z-score boundary detection on losses.

    >>> ewc = EWC()
    >>> ewc.consolidate("head", params=[1.0, 2.0], grads=[3.0, 0.0])
    >>> ewc.penalty("head", [1.0, 2.0])          # zero at the snapshot
    0.0
    >>> round(ewc.penalty("head", [2.0, 5.0]), 6)  # only the first entry has Fisher
    18.0
    >>> [ewc.record_loss(x) for x in (1.0, 1.1, 0.9, 1.0, 5.0)]
    [False, False, False, False, True]
    >>> ewc.boundaries, ewc.fisher_keys
    (1, 1)
    """

    kind: ClassVar[str] = "ewc"

    def __init__(
        self,
        ewc_lambda: float = 2000.0,
        decay: float = 0.999,
        ring_size: int = 10,
        z_threshold: float = 2.5,
        min_history: int = 3,
        std_floor: float = 1e-4,
    ) -> None:
        self.ewc_lambda = _check.number(ewc_lambda, "ewc_lambda", lo=0.0)
        self.decay = _check.number(decay, "decay", lo=0.0, hi=1.0)
        self.ring_size = _check.integer(ring_size, "ring_size", lo=1)
        self.z_threshold = _check.number(z_threshold, "z_threshold", lo=0.0)
        self.min_history = _check.integer(min_history, "min_history", lo=1)
        self.std_floor = _check.number(std_floor, "std_floor", lo=0.0)
        self._fisher: dict[str, np.ndarray] = {}
        self._snapshot: dict[str, np.ndarray] = {}
        self._ring = ZRing(self.ring_size, self.z_threshold, self.min_history, self.std_floor)
        self.boundaries = 0
        self.losses_seen = 0

    @property
    def fisher_keys(self) -> int:
        return len(self._fisher)

    @property
    def values(self) -> int:
        """Fisher entries over all param ids (the state holds twice as many floats, with the
        snapshots)."""
        return sum(f.size for f in self._fisher.values())

    def check_room(self, param_id: Any, size: int) -> None:
        """Refuse a consolidate that would take the state past :mod:`learn.limits`' bounds
        (``EWC_MAX_KEYS`` ids, ``EWC_MAX_VALUES`` values); an id already held never grows."""
        pid = _param_id(param_id)
        if pid in self._fisher:
            return
        if len(self._fisher) >= EWC_MAX_KEYS:
            raise LearnInputError("param_id", f"at most {EWC_MAX_KEYS:,} param ids are kept")
        if self.values + size > EWC_MAX_VALUES:
            raise LearnInputError(
                "params", f"the Fisher store would exceed {EWC_MAX_VALUES:,} values over all param ids"
            )

    def param_ids(self) -> list[str]:
        return sorted(self._fisher)

    def fisher(self, param_id: str) -> np.ndarray | None:
        f = self._fisher.get(param_id)
        return None if f is None else f.copy()

    def snapshot(self, param_id: str) -> np.ndarray | None:
        s = self._snapshot.get(param_id)
        return None if s is None else s.copy()

    # --- verbs -------------------------------------------------------------------------------

    def consolidate(self, param_id: Any, params: Any, grads: Any) -> None:
        """Fold ``grads**2`` into the Fisher EMA of ``param_id`` and snapshot ``params``."""
        pid = _param_id(param_id)
        p = _check.array(params, "params")
        g = _check.array(grads, "grads")
        if g.shape != p.shape:
            raise LearnInputError("grads", f"expected the shape of params {p.shape}")
        old = self._fisher.get(pid)
        if old is not None and old.shape != p.shape:
            raise LearnInputError("params", f"param_id holds shape {old.shape}")
        self.check_room(pid, p.size)
        base = np.zeros_like(p) if old is None else old
        self._fisher[pid] = self.decay * base + (1.0 - self.decay) * (g * g)
        self._snapshot[pid] = p.copy()

    def penalty(self, param_id: Any, params: Any) -> float:
        """``lambda * sum(F * (p - snapshot)^2)``; an id never consolidated has no penalty (0.0)."""
        pid = _param_id(param_id)
        p = _check.array(params, "params")
        f = self._fisher.get(pid)
        if f is None:
            return 0.0
        if p.shape != f.shape:
            raise LearnInputError("params", f"param_id holds shape {f.shape}")
        d = p - self._snapshot[pid]
        return float(self.ewc_lambda * np.sum(f * d * d))

    def penalty_grad(self, param_id: Any, params: Any) -> np.ndarray:
        """Gradient of :meth:`penalty` with respect to ``params`` (zeros if never consolidated)."""
        pid = _param_id(param_id)
        p = _check.array(params, "params")
        f = self._fisher.get(pid)
        if f is None:
            return np.zeros_like(p)
        if p.shape != f.shape:
            raise LearnInputError("params", f"param_id holds shape {f.shape}")
        return 2.0 * self.ewc_lambda * f * (p - self._snapshot[pid])

    def record_loss(self, loss: Any) -> bool:
        """Add a loss to the ring; True when it is a boundary (z-score above the threshold)."""
        fired = self._ring.push(_check.number(loss, "loss"))
        self.losses_seen += 1
        if fired:
            self.boundaries += 1
        return fired

    # --- persistence -------------------------------------------------------------------------

    def to_state(self) -> State:
        ids = sorted(self._fisher)
        arrays: dict[str, np.ndarray] = {"ring": self._ring.values}
        for i, pid in enumerate(ids):
            arrays[f"fisher.{i}"] = self._fisher[pid]
            arrays[f"snapshot.{i}"] = self._snapshot[pid]
        return State(
            settings=self.settings(),
            scalars={
                "param_ids": ids,
                "shapes": [list(self._fisher[pid].shape) for pid in ids],
                "ring_n": self._ring.n,
                "ring_pos": self._ring.pos,
                "boundaries": self.boundaries,
                "losses_seen": self.losses_seen,
            },
            arrays=arrays,
        )

    @classmethod
    def from_state(cls, state: State) -> EWC:
        core = cls._from_settings(state)
        sc, a = state.scalars, state.arrays
        core._ring.restore(expect_array(a, "ring", (core.ring_size,)), sc["ring_n"], sc["ring_pos"])
        ids, shapes = sc["param_ids"], sc["shapes"]
        if len(ids) != len(shapes) or len(set(ids)) != len(ids):
            raise StateError("ewc param ids do not match their shapes")
        if len(a) != 1 + 2 * len(ids):
            raise StateError("ewc blob holds unexpected arrays")
        for i, (pid, shape) in enumerate(zip(ids, shapes)):
            core._fisher[str(pid)] = expect_array(a, f"fisher.{i}", tuple(shape))
            core._snapshot[str(pid)] = expect_array(a, f"snapshot.{i}", tuple(shape))
        core.boundaries = int(sc["boundaries"])
        core.losses_seen = int(sc["losses_seen"])
        return core


def _param_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise LearnInputError("param_id", "expected a non-empty string")
    return value
