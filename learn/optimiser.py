"""The router's optimiser: AdaGrad or plain SGD on named arrays, with an optional EWC anchor.

AdaGrad divides each entry's step by the root of its summed squared gradients: rarely moved,
informative entries keep large steps while the noisy ones settle, which one pass of bandit
feedback needs (plain SGD at one rate either stalls or keeps chasing noise). With an anchor (a
Fisher ``F`` and a snapshot for some arrays) each step is a proximal step towards the snapshot,
``p <- (p - a*g + 2*a*lambda*F*snapshot) / (1 + 2*a*lambda*F)`` with ``a`` the entry's step size
(``lr``, or AdaGrad's ``lr / sqrt(sum g^2)``), which is stable for any lambda; the per-entry rate
keeps it exact per entry.

>>> p = {"w": np.array([1.0, 1.0])}
>>> opt = Optimiser(p, "sgd")
>>> opt.step("w", p["w"], np.array([1.0, -1.0]), lr=0.5, ewc_lambda=0.0)
>>> p["w"].tolist()
[0.5, 1.5]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from learn.errors import StateError
from learn.state import expect_array

__all__ = ["OPTIMIZERS", "Optimiser"]

OPTIMIZERS = ("adagrad", "sgd")
_ADAGRAD_EPS = 1e-8


class Optimiser:
    """Steps on the arrays of ``params`` (by name); its state is the AdaGrad sums and the anchor."""

    def __init__(self, params: Mapping[str, np.ndarray], optimizer: str) -> None:
        # AdaGrad's per-entry sum of squared gradients (empty for plain SGD)
        self.g2: dict[str, np.ndarray] = (
            {name: np.zeros_like(v) for name, v in params.items()} if optimizer == "adagrad" else {}
        )
        self.fisher: dict[str, np.ndarray] = {}
        self.snap: dict[str, np.ndarray] = {}

    def step(self, name: str, p: np.ndarray, grad: np.ndarray, lr: float, ewc_lambda: float) -> None:
        """One step on ``p`` (the array named ``name``), in place."""
        rate: Any = lr
        if self.g2:
            g2 = self.g2[name]
            g2 += grad * grad
            rate = lr / (np.sqrt(g2) + _ADAGRAD_EPS)
        f = self.fisher.get(name)
        if f is None or ewc_lambda == 0.0:
            p -= rate * grad
        else:
            k = (2.0 * ewc_lambda) * rate * f
            p[...] = (p - rate * grad + k * self.snap[name]) / (1.0 + k)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"fisher.{k}": v for k, v in self.fisher.items()}
        out.update({f"snapshot.{k}": v for k, v in self.snap.items()})
        out.update({f"adagrad.{k}": v for k, v in self.g2.items()})
        return out

    def restore(self, arrays: Mapping[str, np.ndarray], anchored: Any,
                params: Mapping[str, np.ndarray]) -> None:
        """Read :meth:`arrays` back; ``anchored`` names the anchored arrays."""
        if not isinstance(anchored, list) or not set(anchored) <= set(params):
            raise StateError("router anchor names unknown parameters")
        self.fisher = {k: expect_array(arrays, f"fisher.{k}", params[k].shape) for k in anchored}
        self.snap = {k: expect_array(arrays, f"snapshot.{k}", params[k].shape) for k in anchored}
        for name, ref in self.g2.items():
            self.g2[name] = expect_array(arrays, f"adagrad.{name}", ref.shape)
