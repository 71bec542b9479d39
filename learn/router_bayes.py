"""The router's Bayesian linear head: per-target posteriors that know what they have not seen.

Each target ``k`` models the quality of an outcome as linear in the features
``phi = [1, xs]`` (``xs`` the router's standardised input; above ``bayes_dim`` input dimensions, a
signed count sketch of it to ``bayes_dim`` values, fixed at creation and kept in the state), with
Gaussian noise of variance ``s2``::

    q ~ N(theta_k . phi, s2),      theta_k ~ N(theta_pool, s2 * L^-1)

The prior of every target is the **pooled** posterior, fitted on the outcomes of all targets
(intercept prior 0.5, one pseudo-outcome): a target tried rarely starts from what the others
showed, not from a constant, and its own outcomes move it away with the weight of the data.
``L = diag(prior_count, prior_precision, ...)``: ``prior_count`` pseudo-outcomes on the intercept,
``prior_precision`` on each slope. ``s2`` is the pooled outcome variance bound ``p(1 - p)`` (``p``
the pooled mean quality), floored at 0.05.

The state is per target the covariance ``C_k = (L + sum phi phi')^-1`` (rank-one Sherman-Morrison
updates, no inverse at read time) and ``b_k = sum q phi``, the same two for the pooled fit, and the
pooled outcome count and sum. The posterior means ``mu_k = C_k (L theta_pool + b_k)`` are a cache
(recomputed after each update and on load, never serialised).

Reads: the posterior mean ``mu_k . phi`` clipped to [0, 1] (a quality estimate on the same scale
as the price) and its standard deviation ``sqrt(s2 * phi' C_k phi)``. Thompson sampling scores
``mean + thompson_scale * sd * z_k`` with ``z`` standard normals taken from the route's draw; UCB
scores ``mean + ucb_alpha * sd`` (:data:`UCB_ALPHA` for a new router; stored routers keep theirs).

Why ``thompson_scale`` (0.5 for a new router that also explores with ``epsilon``, 1.0 for one
that does not) and not always the whole posterior: sampling from a narrower posterior than the
model's is a known practical improvement of Thompson sampling (Chapelle & Li, "An Empirical
Evaluation of Thompson Sampling", NIPS 2011, report it for display advertising); measured on
outcomes with a learnable difference between the models, a full-width sample kept exploring after
the difference was learnt and gained less over a random router (bench/README-learn.md). But a
narrower sample, like UCB's bound (which does not grow while a target waits), can write a target
off after a few unlucky outcomes: with no epsilon floor, on a stream like issue 13's
(``python -m bench.router_writeoff``), half the spread left the better target untried in 6 cold
starts of 100, UCB in 24, the whole posterior in none.
So the narrowing, and the service's default ``ucb`` (:func:`default_policy`), come only with an
epsilon floor, which keeps every target tried. States written before the setting existed keep
1.0, their answers.

>>> head = BayesHead(n_targets=2, dim=3, bayes_dim=8, prior_precision=4.0, seed=0)
>>> for _ in range(20):
...     head.update(1, head.features(np.array([1.0, 0.0, 0.0])), 1.0)
>>> mean, sd = head.posterior(head.features(np.array([1.0, 0.0, 0.0])))
>>> bool(mean[1] > mean[0] > 0.5), bool(sd[1] < sd[0])   # the tried target is known better
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from learn import _check
from learn.errors import LearnInputError, StateError
from learn.state import expect_array

__all__ = ["MAX_BAYES_DIM", "MAX_EPSILON_FADE", "MAX_THOMPSON_SCALE", "MAX_UCB_ALPHA", "POLICIES", "UCB_ALPHA",
           "BayesHead", "check_policy", "default_epsilon_fade", "default_policy", "default_thompson_scale",
           "exploration_rate", "normal_list"]

POLICIES = ("epsilon", "thompson", "ucb")
"""How the router chooses: ``epsilon``-greedy on its network's estimate, or Thompson sampling / UCB
on this head."""
MAX_BAYES_DIM = 256
MAX_THOMPSON_SCALE = 10.0
MAX_EPSILON_FADE = 1e9
EPSILON_FADE = 50.0
"""A new Bayesian router's ``epsilon_fade`` (chosen on tuning orders, bench/README-learn.md)."""
UCB_ALPHA = 2.0
"""A new router's ``ucb_alpha``: against 0.5-3 on issue 13's protocol it met the per-order target
most often at 1,000-1,300 prompts; on a 9,826-prompt stream alpha 1 regrets less
(bench/README-learn.md, eighth pass)."""
MAX_UCB_ALPHA = 10.0
"""The largest ``ucb_alpha`` ``init_router`` accepts."""

NOISE_FLOOR = 0.05
PRIOR_COUNT = 2.0
_MASK = (1 << 64) - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def normal_list(k: int, n: int) -> list[float]:
    """``n`` standard normals determined by the 64-bit integer ``k`` (splitmix64, Box-Muller):
    what a Thompson route adds to its scores.

    Plain integer arithmetic: for the few targets of a route it is ~10x cheaper than numpy's
    per-call overhead, and its values are the same on every machine.

    >>> normal_list(7, 3) == normal_list(7, 3), len(normal_list(7, 3))
    (True, 3)
    """
    out: list[float] = []
    state = k & _MASK
    while len(out) < n:
        state = (state + _GOLDEN) & _MASK
        u0 = _unit(state)
        state = (state + _GOLDEN) & _MASK
        r = math.sqrt(-2.0 * math.log(u0))
        a = 2.0 * math.pi * _unit(state)
        out += (r * math.cos(a), r * math.sin(a))
    return out[:n] if n & 1 else out


def _unit(z: int) -> float:
    """splitmix64's output for the state ``z``, as a float in (0, 1)."""
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return (((z ^ (z >> 31)) >> 11) + 0.5) / 2.0**53


def check_policy(policy: Any, prior_precision: Any, ucb_alpha: Any, bayes_dim: Any,
                 thompson_scale: Any, epsilon_fade: Any) -> tuple:
    """The six policy settings of the router, checked (a failure names its field)."""
    if not isinstance(policy, str) or policy not in POLICIES:
        raise LearnInputError("policy", f"expected one of {', '.join(POLICIES)}")
    dim = _check.integer(bayes_dim, "bayes_dim", lo=1)
    if dim > MAX_BAYES_DIM:
        raise LearnInputError("bayes_dim", f"must be at most {MAX_BAYES_DIM}")
    return (policy, _check.number(prior_precision, "prior_precision", lo=1e-6),
            _check.number(ucb_alpha, "ucb_alpha", lo=0.0), dim,
            _check.number(thompson_scale, "thompson_scale", lo=0.0, hi=MAX_THOMPSON_SCALE),
            _check.number(epsilon_fade, "epsilon_fade", lo=0.0, hi=MAX_EPSILON_FADE))


def default_policy(epsilon: float) -> str:
    """The policy of a router created through the service without one: UCB's bound with an
    epsilon floor (it measured best there), Thompson sampling on the whole posterior without one
    (it never wrote a target off; see the module docstring).

    >>> default_policy(0.1), default_policy(0.0)
    ('ucb', 'thompson')
    """
    return "ucb" if epsilon > 0.0 else "thompson"


def default_thompson_scale(epsilon: float) -> float:
    """The Thompson sample's spread of a new router: half the posterior's with an epsilon floor,
    the whole of it without (the module docstring says why)."""
    return 0.5 if epsilon > 0.0 else 1.0


def default_epsilon_fade(policy: str, epsilon: float) -> float:
    """A new router's ``epsilon_fade``: the floor fades under a Bayesian policy, whose posterior
    keeps exploring where it is unsure (:func:`exploration_rate`); epsilon-greedy keeps its
    constant epsilon, as it always had.

    >>> default_epsilon_fade("ucb", 0.1), default_epsilon_fade("epsilon", 0.1)
    (50.0, 0.0)
    """
    return EPSILON_FADE if policy != "epsilon" and epsilon > 0.0 else 0.0


def exploration_rate(epsilon: float, epsilon_fade: float, fewest: int) -> float:
    """How often a route explores: ``epsilon`` until every target has ``epsilon_fade`` outcomes,
    then ``epsilon * epsilon_fade / fewest`` (``fewest`` the least-tried target's outcome count);
    ``epsilon_fade`` 0 keeps it at ``epsilon``.

    Why it fades: the floor is there so that no target is written off after a few unlucky
    outcomes, and that danger passes once every target's estimate rests on many outcomes; a
    constant floor then only routes a share of requests at random (on the held-out prompts of
    ``bench.routing_bandit --sizes planted`` that share cost UCB about 0.004 of its gain). Why it never
    stops: it falls with the *least-tried* target's count, so a target the policy has priced out
    keeps the floor where it was, and is tried again, for as long as it stays untried; every
    target is tried infinitely often, the exploration rate goes to zero (greedy in the limit).

    >>> exploration_rate(0.1, 50.0, 20), exploration_rate(0.1, 50.0, 200), exploration_rate(0.1, 0.0, 200)
    (0.1, 0.025, 0.1)
    """
    if epsilon_fade <= 0.0 or fewest <= epsilon_fade:
        return epsilon
    return epsilon * (epsilon_fade / fewest)


class BayesHead:
    """Per-target Bayesian linear regression with a pooled prior (see the module docstring)."""

    def __init__(self, n_targets: int, dim: int, bayes_dim: int, prior_precision: float,
                 seed: int) -> None:
        self.n, self.dim = n_targets, dim
        self.m = 1 + min(dim, bayes_dim)
        self.sketch: np.ndarray | None = None
        if dim > bayes_dim:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
            bucket = rng.integers(0, bayes_dim, dim)
            sign = np.where(rng.random(dim) < 0.5, -1, 1)
            self.sketch = (sign * (bucket + 1)).astype(np.int64)
        lam = np.full(self.m, float(prior_precision))
        lam[0] = PRIOR_COUNT
        self.lam = lam
        self.prior_pool = np.zeros(self.m)
        self.prior_pool[0] = 0.5
        pool_lam = lam.copy()
        pool_lam[0] = 1.0
        self.pool_cov = np.diag(1.0 / pool_lam)
        self.pool_b = pool_lam * self.prior_pool  # the pooled prior as pseudo-data
        self.cov = np.stack([np.diag(1.0 / lam) for _ in range(n_targets)])
        self.b = np.zeros((n_targets, self.m))
        self.moments = np.array([1.0, 0.5])  # pooled outcome count and quality sum (one pseudo-outcome)
        self.derive()

    # --- features and reads ------------------------------------------------------------------

    def features(self, xs: np.ndarray) -> np.ndarray:
        if self.sketch is None:
            return np.concatenate(([1.0], xs))
        phi = np.bincount(self._bucket1, weights=self._sign * xs, minlength=self.m)  # bin 0 stays empty
        phi[0] = 1.0
        return phi

    def noise(self) -> float:
        p = self.moments[1] / self.moments[0]
        return max(p * (1.0 - p), NOISE_FLOOR)

    def posterior(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-target mean quality (clipped to [0, 1]) and its standard deviation at ``phi``."""
        mean = np.minimum(np.maximum(self.mu @ phi, 0.0), 1.0)
        var = (self.cov @ phi) @ phi
        return mean, np.sqrt(np.maximum(var, 0.0) * self._noise)

    def score(self, xs: np.ndarray, settings: Any, draw: tuple[float, int] | None) -> list[float]:
        """Per target: a posterior sample (Thompson; the posterior mean without a draw) or the
        upper confidence bound, at the standardised input ``xs`` (``settings``: the router's
        ``policy``, ``ucb_alpha`` and ``thompson_scale``).

        The arithmetic of :meth:`posterior` element by element, on floats: for a few targets
        a float operation costs far less than a numpy call, and it gives the same bits (IEEE
        ``+ - * sqrt``; ``min`` and ``max`` keep numpy's answers, also on -0.0 and NaN).
        """
        phi = self.features(xs)
        mean = self.mean(phi)
        if draw is None and settings.policy != "ucb":
            return mean
        noise, sqrt = self._noise, math.sqrt
        sd = [sqrt(max(v, 0.0) * noise) for v in ((self.cov @ phi) @ phi).tolist()]
        if settings.policy == "ucb":
            alpha = settings.ucb_alpha
            return [m + alpha * s for m, s in zip(mean, sd)]
        scale = settings.thompson_scale
        return [m + scale * s * z for m, s, z in zip(mean, sd, normal_list(draw[1], len(mean)))]

    def mean(self, phi: np.ndarray) -> list[float]:
        """Per target, the posterior mean quality at ``phi``, clipped to [0, 1] (what a route that
        does not explore chooses on)."""
        return [min(max(m, 0.0), 1.0) for m in (self.mu @ phi).tolist()]

    # --- learning ----------------------------------------------------------------------------

    def update(self, k: int, phi: np.ndarray, q: float) -> None:
        for cov in (self.cov[k], self.pool_cov):
            v = cov @ phi
            cov -= np.outer(v, v) / (1.0 + phi @ v)
        self.b[k] += q * phi
        self.pool_b += q * phi
        self.moments += (1.0, q)
        self.derive()

    def derive(self) -> None:
        """The posterior means and the noise variance (caches of the arrays above, never serialised)."""
        pool = self.pool_cov @ self.pool_b
        self.mu = np.einsum("kij,kj->ki", self.cov, self.lam * pool + self.b)
        self._noise = self.noise()
        if self.sketch is not None:  # the sketch's bins (phi's index), and its signs scaled to unit variance
            self._bucket1 = np.abs(self.sketch)
            self._sign = np.sign(self.sketch) * math.sqrt((self.m - 1) / self.dim)

    # --- state -------------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"bayes.cov": self.cov, "bayes.b": self.b, "bayes.pool_cov": self.pool_cov,
               "bayes.pool_b": self.pool_b, "bayes.moments": self.moments}
        if self.sketch is not None:
            out["bayes.sketch"] = self.sketch
        return out

    def restore(self, a: dict[str, np.ndarray]) -> None:
        n, m = self.n, self.m
        self.cov = expect_array(a, "bayes.cov", (n, m, m))
        self.b = expect_array(a, "bayes.b", (n, m))
        self.pool_cov = expect_array(a, "bayes.pool_cov", (m, m))
        self.pool_b = expect_array(a, "bayes.pool_b", (m,))
        self.moments = expect_array(a, "bayes.moments", (2,))
        if self.sketch is not None:
            sketch = expect_array(a, "bayes.sketch", (self.dim,), np.int64)
            if sketch.min() < -(m - 1) or sketch.max() > m - 1 or (sketch == 0).any():
                raise StateError("router sketch holds out-of-range buckets")
            self.sketch = sketch
        if not (self.moments[0] >= 1.0 and 0.0 <= self.moments[1] <= self.moments[0]):
            raise StateError("router outcome moments are inconsistent")
        self.derive()
