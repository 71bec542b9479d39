"""BaseLoRA consolidation: distil base + micro adapter into a rank-``r`` base (pure maths).

An adapter is a matrix ``W`` (``in_dim x n_targets``) whose output for an input ``x`` is
``W.T @ x``: the micro adapter is ``W_micro = A.T @ B`` and the base ``W_base = base_A.T @ base_B``.
:func:`distil` takes the inputs ``X`` the core has seen (``m x in_dim``, its replay buffer) and
fits a new base so that the new base plus the micro adapter scaled by ``micro_scale`` answer on
``X`` what base + micro answer now. The base's target is therefore

    Y = X @ (W_base + (1 - micro_scale) * W_micro)

(as a matrix, ``T = W_base + (1 - micro_scale) * W_micro``), and the new base minimises (least
squares, with an EWC pull toward the previous base)

    |X W - Y|^2 + ridge * |W - T|^2 + sum_i lam * F_i * |W[i, :] - W_base[i, :]|^2

``F`` is the base's importance per input coordinate: the diagonal of the sum of ``x x.T`` over the
inputs of earlier consolidations, decayed by ``fisher_decay`` at each (online EWC's Fisher of a
linear output; every target's column of ``W`` shares it). With ``lam = 1`` a coordinate that
earlier inputs used weighs, in this diagonal approximation, as much as one used by the inputs now.
``ridge`` weighs the combined adapter itself where the inputs now do not reach (what the micro
adapter learned from inputs that have left the buffer): without the pull (``lam = 0``) the new base
is ``T`` exactly, and base + micro answer as before everywhere. The minimiser, by the Woodbury
identity in the ``m``-dimensional input space (``m`` is at most the replay size, so the cost is
``O(m^2 in_dim)``, never ``O(in_dim^3)``), with ``D = lam * F + ridge`` and
``V = D^-1 lam F (W_base - T)``:

    W = T + V - D^-1 X.T (I + X D^-1 X.T)^-1 X V

``W`` is cut to rank ``r`` by truncated SVD (``W = U S V.T``; ``base_A = (U_r sqrt(S_r)).T``,
``base_B = sqrt(S_r) V_r.T``, the balanced split) and its factors' joint norm is clamped to
``max_norm`` like the micro adapter's. Then ``F <- fisher_decay * F + sum over X of x**2``.

Everything here is arrays in, arrays out: no state object, no clock, no IO and nothing random (the
SVD is deterministic), so equal inputs give equal bases.

>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((6, 5))
>>> micro = rng.standard_normal((5, 2))
>>> base = Base.zeros(rank=8, in_dim=5, n_targets=2)
>>> new = distil(base, micro, X, micro_scale=0.0, lam=1.0, fisher_decay=0.9, ridge=1e-9, max_norm=1e3)
>>> bool(np.allclose(X @ new.matrix(), X @ micro))   # the base now answers what the micro did
True
>>> new.A.shape, new.B.shape, bool((new.fisher > 0).all())
((8, 5), (8, 2), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learn import _check
from learn.errors import LearnInputError

__all__ = ["Base", "distil", "fit"]


@dataclass(frozen=True)
class Base:
    """A base adapter: factors ``A`` (``rank x in_dim``), ``B`` (``rank x n_targets``) and the
    importance ``fisher`` (``in_dim``) of its input coordinates."""

    A: np.ndarray
    B: np.ndarray
    fisher: np.ndarray

    @classmethod
    def zeros(cls, rank: int, in_dim: int, n_targets: int) -> Base:
        """The fresh base: it adds nothing and protects nothing."""
        return cls(np.zeros((rank, in_dim)), np.zeros((rank, n_targets)), np.zeros(in_dim))

    def matrix(self) -> np.ndarray:
        """``W = A.T @ B`` (``in_dim x n_targets``): the base's output for ``x`` is ``W.T @ x``."""
        return self.A.T @ self.B


def fit(T: np.ndarray, X: np.ndarray, ridge: float, pull: np.ndarray, W_prev: np.ndarray) -> np.ndarray:
    """The ``W`` minimising ``|X (W - T)|^2 + ridge |W - T|^2 + sum_i pull_i |W[i] - W_prev[i]|^2``
    (``ridge > 0``, ``pull >= 0`` per input coordinate)."""
    if not pull.any():
        return T.copy()
    d_inv = 1.0 / (pull + ridge)
    V = (d_inv * pull)[:, None] * (W_prev - T)
    xd = X * d_inv  # X D^-1
    gram = xd @ X.T
    gram[np.diag_indices_from(gram)] += 1.0
    return T + V - xd.T @ np.linalg.solve(gram, X @ V)


def distil(base: Base, micro: np.ndarray, X: np.ndarray, *, micro_scale: float, lam: float,
           fisher_decay: float, ridge: float, max_norm: float) -> Base:
    """The base after one consolidation on inputs ``X`` (see the module docstring).

    ``micro`` is the micro adapter's matrix ``A.T @ B``; the caller scales the micro adapter's
    ``B`` by ``micro_scale`` afterwards. Bad arguments raise LearnInputError naming the argument.
    """
    rank, in_dim = base.A.shape
    n = base.B.shape[1]
    X = _check.array(X, "inputs")
    if X.ndim != 2 or X.shape[1] != in_dim or X.shape[0] < 1:
        raise LearnInputError("inputs", f"expected a non-empty (m, {in_dim}) array")
    micro = _check.array(micro, "micro")
    if micro.shape != (in_dim, n):
        raise LearnInputError("micro", f"expected shape {(in_dim, n)}")
    micro_scale = _check.number(micro_scale, "micro_scale", lo=0.0, hi=1.0)
    lam = _check.number(lam, "lam", lo=0.0)
    fisher_decay = _check.number(fisher_decay, "fisher_decay", lo=0.0, hi=1.0)
    ridge = _check.number(ridge, "ridge", lo=0.0)
    if ridge <= 0.0:
        raise LearnInputError("ridge", "must be positive")
    max_norm = _check.number(max_norm, "max_norm", lo=0.0)

    W_prev = base.matrix()
    W = fit(W_prev + (1.0 - micro_scale) * micro, X, ridge, lam * base.fisher, W_prev)
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    k = min(rank, S.size)
    root = np.sqrt(S[:k])
    A = np.zeros((rank, in_dim))
    B = np.zeros((rank, n))
    A[:k] = (U[:, :k] * root).T
    B[:k] = root[:, None] * Vt[:k]
    sq = float(np.sum(A * A) + np.sum(B * B))
    if sq > max_norm * max_norm:
        scale = max_norm / math.sqrt(sq)
        A *= scale
        B *= scale
    fisher = fisher_decay * base.fisher + np.einsum("ij,ij->j", X, X)
    return Base(A, B, fisher)
