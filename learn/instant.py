"""Instant learning: a rank-2 MicroLoRA adapter that nudges per-target logits from feedback.

The adapter maps an embedding ``x`` to logit offsets ``B.T @ (A @ x)`` (A is ``rank x in_dim``,
B is ``rank x n_targets``). Feedback ``(x, target, quality)`` is a reward-modulated Hebbian step:
with ``s = (quality - 0.5) * 2`` and ``h = A @ x``,

    B[:, t] += lr * s * h            (post = target column, pre = hidden activity)
    A       += lr * s * outer(B[:, t], x)

which is gradient ascent on ``s * logit_t``. Good feedback raises the target's logit for inputs
like ``x``, bad feedback lowers it, and other targets only move through the shared ``A``.

Why B = 0 does not stall: A starts as a seeded random matrix of Frobenius norm 2 (well inside the
clamp of 5), so ``h = A @ x`` is non-zero from the first update and B's column grows; once B is
non-zero the A step is non-zero too. This is the usual LoRA initialisation (one factor random, the
other zero), which keeps the adapter's initial output exactly zero. ``reset()`` returns to that
state.

After every step the joint norm ``sqrt(|A|^2 + |B|^2)`` is clamped to ``max_norm``. The learning
rate decays by ``lr_decay`` per update down to ``lr_min``. Each update is stored in a ring buffer
of ``replay_size``; once it holds ``replay_min`` entries, one entry drawn with probability
proportional to ``|s|`` is replayed at half strength. With ``ewc_lambda > 0`` and an
:meth:`MicroLoRA.anchor` set, each step is pulled back by
``lr * ewc_lambda * F * (param - snapshot)`` (the factor ``lr * ewc_lambda * F`` capped at 1, so
the pull never overshoots the snapshot).

Beside it sits a rank-``base_rank`` base adapter (``base_A``, ``base_B``, zero at first), which
feedback does not move: :meth:`MicroLoRA.consolidate` distils base + micro into it on the replay
buffer's inputs (:mod:`learn.base_lora`: least squares with an EWC pull toward the previous base,
truncated SVD), then scales the micro adapter's ``B`` by ``base_micro_scale`` so that it has room to
learn what is recent. :meth:`MicroLoRA.apply` answers base + micro. The consolidation's settings
are the core's, saved in its state: ``base_rank`` (8), ``base_micro_scale`` (0.5: half of the micro
adapter's output moves into the base; 0 moved all of it, and learnt less, in bench.adapter_forgetting), ``base_lambda`` (1: an input of an earlier consolidation weighs
like one in the buffer now), ``base_fisher_decay`` (0.9 per consolidation), ``base_ridge`` (1e-3: the
weight of the combined adapter where the buffered inputs do not reach), ``base_max_norm`` (10: the joint norm clamp of
the base's factors) and ``base_min_inputs`` (8: a consolidation with fewer buffered inputs does
nothing).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, ClassVar

import numpy as np

from learn import _check
from learn._base import Targeted, anchor_pair
from learn.base_lora import Base, distil
from learn.errors import LearnInputError, StateError
from learn.state import State, expect_array, register, rng_from_json, rng_to_json

__all__ = ["MicroLoRA"]

NEUTRAL_BAND = 1e-4
A_INIT_NORM = 2.0
BASE_ARRAYS = ("base_A", "base_B", "base_fisher")


@register
class MicroLoRA(Targeted):
    """Rank-2 Hebbian adapter over per-target logits, trained from quality feedback.

    >>> lora = MicroLoRA(targets=["fast", "smart"], in_dim=4, seed=0)
    >>> x = [1.0, 0.0, 0.0, 0.0]
    >>> lora.apply(x).tolist()            # B starts at zero: the adapter adds nothing
    [0.0, 0.0]
    >>> for _ in range(100):
    ...     lora.learn(x, "smart", quality=1.0)
    >>> logits = lora.apply(x)
    >>> bool(logits[1] > logits[0]), lora.updates
    (True, 100)
    >>> lora.learn(x, "smart", quality=0.5)   # neutral feedback changes nothing
    >>> lora.updates
    100
    """

    kind: ClassVar[str] = "instant"

    def __init__(
        self,
        targets: Sequence[str],
        in_dim: int = 384,
        rank: int = 2,
        lr0: float = 0.01,
        lr_decay: float = 0.995,
        lr_min: float = 1e-3,
        max_norm: float = 5.0,
        replay_size: int = 64,
        replay_min: int = 4,
        ewc_lambda: float = 0.0,
        seed: int = 0,
        base_rank: int = 8,
        base_micro_scale: float = 0.5,
        base_lambda: float = 1.0,
        base_fisher_decay: float = 0.9,
        base_ridge: float = 1e-3,
        base_max_norm: float = 10.0,
        base_min_inputs: int = 8,
    ) -> None:
        self.targets = _check.targets(targets)
        self.in_dim = _check.integer(in_dim, "in_dim", lo=1)
        self.rank = _check.integer(rank, "rank", lo=1)
        self.lr0 = _check.number(lr0, "lr0", lo=0.0)
        self.lr_decay = _check.number(lr_decay, "lr_decay", lo=0.0, hi=1.0)
        self.lr_min = _check.number(lr_min, "lr_min", lo=0.0)
        self.max_norm = _check.number(max_norm, "max_norm", lo=0.0)
        self.replay_size = _check.integer(replay_size, "replay_size", lo=1)
        self.replay_min = _check.integer(replay_min, "replay_min", lo=1)
        self.ewc_lambda = _check.number(ewc_lambda, "ewc_lambda", lo=0.0)
        self.seed = _check.integer(seed, "seed", lo=0)
        self.base_rank = _check.integer(base_rank, "base_rank", lo=1)
        self.base_micro_scale = _check.number(base_micro_scale, "base_micro_scale", lo=0.0, hi=1.0)
        self.base_lambda = _check.number(base_lambda, "base_lambda", lo=0.0)
        self.base_fisher_decay = _check.number(base_fisher_decay, "base_fisher_decay", lo=0.0, hi=1.0)
        self.base_ridge = _check.number(base_ridge, "base_ridge", lo=0.0)
        if self.base_ridge == 0.0:
            raise LearnInputError("base_ridge", "must be positive")
        self.base_max_norm = _check.number(base_max_norm, "base_max_norm", lo=0.0)
        self.base_min_inputs = _check.integer(base_min_inputs, "base_min_inputs", lo=1)
        self._index = {t: i for i, t in enumerate(self.targets)}
        self._fresh()

    # --- state -------------------------------------------------------------------------------

    def _fresh(self) -> None:
        n = len(self.targets)
        init = np.random.default_rng(np.random.SeedSequence([self.seed, 0]))
        a = init.standard_normal((self.rank, self.in_dim))
        # A and B are views into one flat buffer: the joint norm and its clamp are one call each
        r, d = self.rank, self.in_dim
        self._P = np.zeros(r * d + r * n)
        self._A = self._P[: r * d].reshape(r, d)
        self._B = self._P[r * d :].reshape(r, n)
        self._A[...] = a * (A_INIT_NORM / np.linalg.norm(a))
        self._lr = self.lr0
        self.updates = 0
        self._replay_x = np.zeros((self.replay_size, self.in_dim))
        self._replay_t = np.zeros(self.replay_size, dtype=np.int64)
        self._replay_s = np.zeros(self.replay_size)
        self._replay_w = [0.0] * self.replay_size  # |s|, the sampling weights
        self._replay_cum = [0.0] * (self.replay_size + 1)  # cum[k] = w[0] + ... + w[k-1]
        self._replay_n = 0
        self._replay_pos = 0
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 1])))
        self._anchored = False
        self._fisher_A = np.zeros_like(self._A)
        self._fisher_B = np.zeros_like(self._B)
        self._snap_A = np.zeros_like(self._A)
        self._snap_B = np.zeros_like(self._B)
        self._base = Base.zeros(self.base_rank, self.in_dim, n)
        self.consolidations = 0
        self.consolidated_at = 0  # ``updates`` at the last consolidation

    @property
    def lr(self) -> float:
        """The learning rate the next update will use."""
        return self._lr

    @property
    def replay_len(self) -> int:
        return self._replay_n

    @property
    def pending_updates(self) -> int:
        """Feedback updates since the last consolidation (since the start before the first)."""
        return self.updates - self.consolidated_at

    def params(self) -> dict[str, np.ndarray]:
        """Copies of the adapter factors, e.g. to hand to :class:`learn.ewc.EWC` for a Fisher."""
        return {"A": self._A.copy(), "B": self._B.copy(), "base_A": self._base.A.copy(),
                "base_B": self._base.B.copy()}

    # --- verbs -------------------------------------------------------------------------------

    def apply(self, embedding: Any, logits: Any = None) -> np.ndarray:
        """``logits + base + micro`` for ``x``, shape ``(n_targets,)``: the micro adapter's
        ``B.T @ (A @ x)`` plus the base's ``base_B.T @ (base_A @ x)`` (zero until a consolidation,
        and skipped until then); zeros stand in for missing logits."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        out = self._B.T @ (self._A @ x)
        if self.consolidations:
            out += self._base.B.T @ (self._base.A @ x)
        if logits is not None:
            out = _check.vector(logits, "logits", len(self.targets)) + out
        return out

    def apply_parts(self, embedding: Any) -> tuple[np.ndarray, np.ndarray]:
        """The base's and the micro adapter's offsets for ``x`` (their sum is ``apply(x)``)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        return self._base.B.T @ (self._base.A @ x), self._B.T @ (self._A @ x)

    def learn(self, embedding: Any, target: Any, quality: Any) -> None:
        """One feedback event: Hebbian step, replay step, learning-rate decay."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        t = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        if abs(q - 0.5) < NEUTRAL_BAND:
            return
        s = (q - 0.5) * 2.0
        self._step(x, t, s)
        # (this runs once per event in the workers, so it is tuned: same operations in the same
        # order as the plain code, bit for bit; tests/learn/test_learn_instant_reference)
        pos = self._replay_pos
        self._replay_x[pos] = x
        self._replay_t[pos] = t
        self._replay_s[pos] = s
        size = self.replay_size
        self._replay_pos = (pos + 1) % size
        n_old = self._replay_n
        n = self._replay_n = min(n_old + 1, size)
        # Sampling is np.cumsum(w[:n]) + searchsorted(side="right"), done on Python floats: the
        # running sums are kept between calls and redone only from the first slot whose sum
        # changed (none when the overwritten weight is the same), adding left to right from 0.0
        # exactly as cumsum does, so the drawn index is the same bit for bit.
        w, cum = self._replay_w, self._replay_cum
        lo = min(pos, n_old) if w[pos] != abs(s) else n_old
        w[pos] = abs(s)
        if lo < n:
            cum[lo : n + 1] = accumulate(w[lo:n], initial=cum[lo])
        if n >= self.replay_min:
            i = bisect_right(cum, self._rng.random() * cum[n], 1, n + 1) - 1
            i = min(i, n - 1)
            self._step(self._replay_x[i], int(self._replay_t[i]), 0.5 * self._replay_s[i])
        self._lr = max(self._lr * self.lr_decay, self.lr_min)
        self.updates += 1

    def _step(self, x: np.ndarray, t: int, s: float) -> None:
        lr = self._lr
        A, B = self._A, self._B
        # ndarray.dot dispatches faster than @ and gives the same BLAS result for a unit-stride x;
        # for a view with a negative or zero stride, @ sums without BLAS (in another order)
        h = A.dot(x) if x.strides[0] == 8 else A @ x
        c = lr * s
        col = B[:, t]  # a view: the column this step changes
        a_step = c * col  # uses B before this step's change
        if self._anchored and self.ewc_lambda > 0.0:
            # reference: delta -= lr * lambda * F * (param - snapshot); the factor is capped at 1
            # so that a large lambda pulls a parameter to its snapshot, never past it
            A -= np.minimum(lr * self.ewc_lambda * self._fisher_A, 1.0) * (A - self._snap_A)
            B -= np.minimum(lr * self.ewc_lambda * self._fisher_B, 1.0) * (B - self._snap_B)
        col += c * h
        A += a_step[:, None] * x  # np.multiply.outer(a_step, x), with less dispatch
        P = self._P
        sq = float(P.dot(P))
        if sq > self.max_norm * self.max_norm:
            P *= self.max_norm / math.sqrt(sq)

    def anchor(
        self, fisher: Mapping[str, Any], snapshot: Mapping[str, Any] | None = None
    ) -> None:
        """Set the EWC anchor: per-entry Fisher for ``A`` and ``B`` and the snapshot to pull to.

        Without ``snapshot`` the current factors are the snapshot. Only used when
        ``ewc_lambda > 0``.
        """
        factors = {"A": self._A, "B": self._B}
        new_f, new_s = {}, {}
        for name, factor in factors.items():
            if not isinstance(fisher, Mapping) or name not in fisher:
                raise LearnInputError(f"fisher.{name}", "is missing")
            new_f[name], new_s[name] = anchor_pair(name, fisher[name], snapshot, factor)
        self._fisher_A, self._fisher_B = new_f["A"], new_f["B"]
        self._snap_A, self._snap_B = new_s["A"], new_s["B"]
        self._anchored = True

    def consolidate(self, min_new_updates: Any = 0) -> None:
        """Distil base + micro into the base on the replay buffer's inputs, then scale the micro
        adapter's ``B`` (and its EWC snapshot) by ``base_micro_scale``.

        Nothing happens with fewer than ``base_min_inputs`` buffered inputs, or fewer than
        ``min_new_updates`` feedback updates since the last consolidation (so a consolidation
        queued twice, or late, is a no-op); ``consolidations`` counts those that ran.

        >>> lora = MicroLoRA(targets=["fast", "smart"], in_dim=4, seed=0)
        >>> for i in range(20):
        ...     lora.learn([1.0, 0.0, 0.0, 0.0] if i % 2 else [0.0, 1.0, 0.0, 0.0], "smart", 1.0)
        >>> before = lora.apply([1.0, 0.0, 0.0, 0.0])
        >>> lora.consolidate()
        >>> base, micro = lora.apply_parts([1.0, 0.0, 0.0, 0.0])
        >>> bool(np.allclose(base + micro, before, atol=1e-3)), bool(np.array_equal(micro, before / 2))
        (True, True)
        >>> lora.consolidations
        1
        """
        min_new = _check.integer(min_new_updates, "min_new_updates", lo=0)
        n = self._replay_n
        if n < self.base_min_inputs or self.pending_updates < min_new:
            return
        self._base = distil(self._base, self._A.T @ self._B, self._replay_x[:n],
                            micro_scale=self.base_micro_scale, lam=self.base_lambda,
                            fisher_decay=self.base_fisher_decay, ridge=self.base_ridge,
                            max_norm=self.base_max_norm)
        self._B *= self.base_micro_scale  # in place: B is a view of the clamped buffer
        self._snap_B *= self.base_micro_scale
        self.consolidations += 1
        self.consolidated_at = self.updates

    def reset(self) -> None:
        """Back to the fresh adapter: B = 0, seeded A, lr = lr0, no replay, no anchor, zero base."""
        self._fresh()

    # --- persistence -------------------------------------------------------------------------

    def to_state(self) -> State:
        return State(
            settings=self.settings(),
            scalars={
                "lr": self._lr,
                "updates": self.updates,
                "replay_n": self._replay_n,
                "replay_pos": self._replay_pos,
                "anchored": self._anchored,
                "rng": rng_to_json(self._rng),
                "consolidations": self.consolidations,
                "consolidated_at": self.consolidated_at,
            },
            arrays={
                "A": self._A,
                "B": self._B,
                "replay_x": self._replay_x,
                "replay_t": self._replay_t,
                "replay_s": self._replay_s,
                "fisher_A": self._fisher_A,
                "fisher_B": self._fisher_B,
                "snapshot_A": self._snap_A,
                "snapshot_B": self._snap_B,
                "base_A": self._base.A,
                "base_B": self._base.B,
                "base_fisher": self._base.fisher,
            },
        )

    @classmethod
    def upgrade(cls, state: State, version: int) -> State:
        """A state of layout 2 to 4 (before the base adapter) with a zero base: it answers and
        learns on exactly as before."""
        if version < 5:
            fresh = cls._from_settings(state).to_state()
            state.arrays = {**state.arrays, **{k: fresh.arrays[k] for k in BASE_ARRAYS}}
            state.scalars = {**state.scalars, "consolidations": 0, "consolidated_at": 0}
        return state

    @classmethod
    def from_state(cls, state: State) -> MicroLoRA:
        core = cls._from_settings(state)
        r, d, n, m = core.rank, core.in_dim, len(core.targets), core.replay_size
        a = state.arrays
        core._A[...] = expect_array(a, "A", (r, d))  # in place: A and B are views of one buffer
        core._B[...] = expect_array(a, "B", (r, n))
        core._replay_x = expect_array(a, "replay_x", (m, d))
        core._replay_t = expect_array(a, "replay_t", (m,), np.int64)
        core._replay_s = expect_array(a, "replay_s", (m,))
        core._replay_w = np.abs(core._replay_s).tolist()
        core._replay_cum[1:] = accumulate(core._replay_w)
        core._fisher_A = expect_array(a, "fisher_A", (r, d))
        core._fisher_B = expect_array(a, "fisher_B", (r, n))
        core._snap_A = expect_array(a, "snapshot_A", (r, d))
        core._snap_B = expect_array(a, "snapshot_B", (r, n))
        k = core.base_rank
        core._base = Base(expect_array(a, "base_A", (k, d)), expect_array(a, "base_B", (k, n)),
                          expect_array(a, "base_fisher", (d,)))
        sc = state.scalars
        core._lr = float(sc["lr"])
        core.updates = int(sc["updates"])
        core._replay_n = int(sc["replay_n"])
        core._replay_pos = int(sc["replay_pos"])
        core._anchored = bool(sc["anchored"])
        core._rng = rng_from_json(sc["rng"])
        core.consolidations = int(sc["consolidations"])
        core.consolidated_at = int(sc["consolidated_at"])
        if not (0 <= core._replay_n <= m and 0 <= core._replay_pos < m):
            raise StateError("instant replay counters are out of range")
        if ((core._replay_t < 0) | (core._replay_t >= n)).any():
            raise StateError("instant replay holds an unknown target index")
        if not 0 <= core.consolidated_at <= core.updates or core.consolidations < 0:
            raise StateError("instant consolidation counters are out of range")
        if not core.consolidations and (core._base.A.any() or core._base.B.any()):
            raise StateError("instant base is not zero before any consolidation")
        return core
