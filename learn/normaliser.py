"""Input standardisation of the router: a running mean and variance (part of the router's state).

The first sample sets the mean and an isotropic variance guess of its own scale (so the features
have the right order of magnitude from the start); after that the exact running mean/variance
(Welford), or an EMA once ``1/n`` falls below ``momentum``.

>>> norm = InputNorm(2)
>>> norm.update(np.array([2.0, 0.0]), momentum=0.0)
>>> norm.mean.tolist(), norm.n
([2.0, 0.0], 1)
>>> norm.standardise(np.array([2.0, 0.0])).tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["InputNorm"]

VAR_FLOOR = 1e-8


class InputNorm:
    """Running mean ``mean``, variance ``var`` over ``n`` inputs, and ``scale = 1/sqrt(var)``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.restore(np.zeros(dim), np.ones(dim), 0)

    def restore(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        self.mean, self.var, self.n = mean, var, n
        self.scale = 1.0 / np.sqrt(self.var + VAR_FLOOR)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) * self.scale

    def update(self, x: np.ndarray, momentum: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x.copy()
            self.var = np.full(self.dim, float(np.mean(x * x)) + VAR_FLOOR)
            self.scale = 1.0 / np.sqrt(self.var + VAR_FLOOR)
            return
        beta = max(1.0 / self.n, momentum)
        delta = x - self.mean
        self.mean = self.mean + beta * delta
        self.var = (1.0 - beta) * (self.var + beta * delta * delta)
        self.scale = 1.0 / np.sqrt(self.var + VAR_FLOOR)
