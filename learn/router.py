"""A FastGRNN router that learns which target (model) to send a request to, from outcomes.

The network (:mod:`learn.fastgrnn`) is one FastGRNN step, low-rank (rank 8) and sparse (90% of the
input weights are zero), read by five linear heads:

- model: per-target expected quality, with a linear skip path from the standardised embedding
  (``skip=True``, the default). The choice is
  ``argmax(expected quality - cost_weight * cost + adapter_logits)``.
- context bucket (:mod:`learn.context`), learned from ``estimated_tokens`` when given.
- temperature and top_p: start at exactly 0.7 and 0.9 and learn only when an outcome reports the
  values used (reward-weighted regression towards values that beat the target's quality EMA).
- confidence: learns to predict how much the router's own estimate can be trusted for inputs
  like this one.

Learning is a contextual bandit: only the chosen target's outcome is seen. ``record_outcome`` with
an embedding takes one step of the binary cross-entropy between the chosen target's expected
quality and the observed quality, back-propagated into the cell; ``policy="thompson"`` or ``"ucb"``
chooses the model on a Bayesian linear head instead (:mod:`learn.router_bayes`; epsilon exploration
applies under every policy; ``algo`` stays the network's mode). The step (:mod:`learn.optimiser`) is
AdaGrad by default (``optimizer="adagrad"``, lr 0.003; its per-entry sums of squared gradients
are state), or plain SGD (``optimizer="sgd"``; pair it with ``skip=False`` or a small lr, because
the skip path's input has about ``in_dim`` unit-variance features). ``train_batch`` takes the same
steps over logged outcomes. Inputs are standardised with a running mean and variance
(:mod:`learn.normaliser`, part of the state) so that the cell sees unit-scale features whatever
the embedding model. Epsilon-greedy exploration keeps every target's estimate fed; its randomness
comes in with each route as a :class:`~learn.draw.Draw` (a read changes nothing, so the router
holds no generator for it; the generator in the state orders ``train_batch``). With an EWC anchor
(:meth:`FastGRNNRouter.anchor`) each step is a proximal step towards the snapshot, stable for any
lambda.

Input-shift monitor: every embedding of ``record_outcome`` also feeds a
:class:`~learn.shift.InputShift` (windows of ``shift_window`` = 50 inputs, scored against the
running input statistics; state like the rest). It fires at a topic shift even when the loss level
does not move, which EWC's loss ring cannot see; ``record_outcome`` returns True on a firing
window and :attr:`FastGRNNRouter.boundaries` counts them. ``shift_window=0`` turns it off.

Modes (the ``algo`` field): ``"rule"`` before any outcome (first target, temperature 0.7, top_p 0.9,
confidence 0.5; adapter logits can still bend the choice), ``"ema"`` when outcomes arrived without
embeddings (the per-target EMA is the expected quality), ``"fastgrnn"`` once the network has learned
from an embedding or the router was created with ``trained=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from learn import _check, router_state
from learn._base import Targeted, anchor_pair
from learn.context import CONTEXT_BUCKETS, CONTEXT_WINDOWS, bucket_index, context_bucket
from learn.draw import Draw, check_draw
from learn.errors import LearnInputError
from learn.fastgrnn import RULE_CONFIDENCE, RULE_TEMPERATURE, RULE_TOP_P, FastGRNNNet, bce
from learn.normaliser import InputNorm
from learn.optimiser import OPTIMIZERS, Optimiser
from learn.router_bayes import (POLICIES, UCB_ALPHA, BayesHead, check_policy, default_epsilon_fade,
                                default_thompson_scale, exploration_rate)
from learn.router_choice import choose
from learn.shift import InputShift
from learn.state import State, register

__all__ = ["CONTEXT_BUCKETS", "CONTEXT_WINDOWS", "Draw", "FastGRNNRouter", "POLICIES", "context_bucket"]


@register
class FastGRNNRouter(Targeted):
    """Sparse low-rank FastGRNN router with five heads, learning online from bandit outcomes.

    >>> r = FastGRNNRouter(in_dim=4, targets=["small", "large"], epsilon=0.0, seed=0)
    >>> r.route([1.0, 0.0, 0.0, 0.0])["algo"]        # nothing learned yet: the rule answers
    'rule'
    >>> for _ in range(30):                          # "small" keeps failing on this input
    ...     _ = r.record_outcome("small", 0.0, embedding=[1.0, 0.0, 0.0, 0.0])
    >>> out = r.route([1.0, 0.0, 0.0, 0.0], estimated_tokens=3000)
    >>> out["model"], out["algo"], out["context_bucket"], out["exploration"]
    ('large', 'fastgrnn', '4k', False)
    """

    kind = "router"

    def __init__(
        self,
        in_dim: int,
        targets: Sequence[str],
        hidden: int = 128,
        rank: int = 8,
        sparsity: float = 0.9,
        trained: bool = False,
        epsilon: float = 0.1,
        costs: Mapping[str, float] | None = None,
        cost_weight: float = 0.0,
        ema_alpha: float = 0.1,
        lr: float = 0.003,
        ewc_lambda: float = 3.0,  # chosen by measurement (bench/README-learn.md); saved states keep theirs
        zeta: float = 1.0,
        nu: float = 1e-4,
        norm_momentum: float = 0.0,
        seed: int = 0,
        optimizer: str = "adagrad",
        skip: bool = True,
        shift_window: int = 50,
        shift_beta: float = 0.1,
        shift_min: float = 2.0,
        policy: str = "epsilon",
        prior_precision: float = 300.0,
        ucb_alpha: float | None = None,
        bayes_dim: int = 128,
        thompson_scale: float | None = None,
        epsilon_fade: float | None = None,
    ) -> None:
        self.in_dim = _check.integer(in_dim, "in_dim", lo=1)
        self.targets = _check.targets(targets)
        self.hidden = _check.integer(hidden, "hidden", lo=1)
        self.rank = _check.integer(rank, "rank", lo=1)
        self.sparsity = _check.number(sparsity, "sparsity", lo=0.0, hi=0.999)
        if not isinstance(trained, bool):
            raise LearnInputError("trained", "expected true or false")
        self.trained = trained
        self.epsilon = _check.number(epsilon, "epsilon", lo=0.0, hi=1.0)
        self.costs, self.cost_weight = {}, _check.number(cost_weight, "cost_weight", lo=0.0)
        self.set_costs(costs)  # None: no costs
        self.ema_alpha = _check.number(ema_alpha, "ema_alpha", lo=0.0, hi=1.0)
        self.lr = _check.number(lr, "lr", lo=0.0)
        self.ewc_lambda = _check.number(ewc_lambda, "ewc_lambda", lo=0.0)
        self.zeta = _check.number(zeta, "zeta")
        self.nu = _check.number(nu, "nu")
        self.norm_momentum = _check.number(norm_momentum, "norm_momentum", lo=0.0, hi=1.0)
        self.seed = _check.integer(seed, "seed", lo=0)
        if optimizer not in OPTIMIZERS:
            raise LearnInputError("optimizer", f"expected one of {', '.join(OPTIMIZERS)}")
        self.optimizer = optimizer
        if not isinstance(skip, bool):
            raise LearnInputError("skip", "expected true or false")
        self.skip = skip
        self.shift_window = _check.integer(shift_window, "shift_window", lo=0)
        self.shift_beta = _check.number(shift_beta, "shift_beta", lo=1e-6, hi=1.0)
        self.shift_min = _check.number(shift_min, "shift_min", lo=0.0)
        if thompson_scale is None:
            thompson_scale = default_thompson_scale(self.epsilon)
        if epsilon_fade is None:
            epsilon_fade = default_epsilon_fade(policy, self.epsilon)
        if ucb_alpha is None:  # saved states keep theirs
            ucb_alpha = UCB_ALPHA
        (self.policy, self.prior_precision, self.ucb_alpha, self.bayes_dim, self.thompson_scale,
         self.epsilon_fade) = check_policy(policy, prior_precision, ucb_alpha, bayes_dim, thompson_scale, epsilon_fade)
        self._index = {t: i for i, t in enumerate(self.targets)}
        self._fresh()

    def set_costs(
        self, costs: Mapping[str, float] | None = None, cost_weight: float | None = None
    ) -> None:
        """Replace the cost map and/or the cost weight (both are settings, saved with the state)."""
        new_costs = self.costs if costs is None else _check.costs(costs, self.targets)
        new_weight = self.cost_weight if cost_weight is None else _check.number(cost_weight, "cost_weight", lo=0.0)
        self.costs, self.cost_weight = new_costs, new_weight
        self._cost = np.array([self.costs.get(t, 0.0) for t in self.targets], dtype=np.float64)

    def _fresh(self) -> None:
        n, d = len(self.targets), self.in_dim
        self._net = FastGRNNNet(n, d, self.hidden, self.rank, self.sparsity, self.seed,
                                self.zeta, self.nu, self.skip)
        self._opt = Optimiser(self._net.p, self.optimizer)
        self._norm = InputNorm(d)
        self._ema = np.full(n, 0.5)
        self._outcomes = np.zeros(n, dtype=np.int64)
        self.derive_exploration()
        self._head_updates = 0
        self._bucket_updates = 0
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 1])))
        self._shift = InputShift(d, self.shift_window, self.shift_beta, self.shift_min)
        bayes = self.policy != "epsilon"
        self._bayes = BayesHead(n, d, self.bayes_dim, self.prior_precision, self.seed) if bayes else None

    # --- reading the state -------------------------------------------------------------------

    def param_names(self) -> list[str]:
        return list(self._net.p)

    def params(self) -> dict[str, np.ndarray]:
        """Copies of every learnable array, by name (``cell.U``, ``model.W``, ...)."""
        return {k: v.copy() for k, v in self._net.p.items()}

    @property
    def sparsity_actual(self) -> float:
        """Fraction of the effective input weights ``W`` that are exactly zero."""
        return float(np.mean(self._net.W == 0.0))

    @property
    def mode(self) -> str:
        if self.trained or self._head_updates > 0:
            return "fastgrnn"
        if self._outcomes.sum() > 0:
            return "ema"
        return "rule"

    @property
    def outcome_ema(self) -> dict[str, float]:
        return {t: float(self._ema[i]) for i, t in enumerate(self.targets)}

    def derive_exploration(self) -> None:
        """Cache the exploration rate from the outcome counts (after each outcome and on load)."""
        self._exploration = exploration_rate(self.epsilon, self.epsilon_fade, int(self._outcomes.min()))

    @property
    def exploration_rate(self) -> float:
        """How often a route with a draw explores now: ``epsilon``, faded by ``epsilon_fade``."""
        return self._exploration

    @property
    def outcome_counts(self) -> dict[str, int]:
        """Outcomes recorded per target (``record_outcome`` calls; training passes add none)."""
        return {t: int(self._outcomes[i]) for i, t in enumerate(self.targets)}

    @property
    def boundaries(self) -> int:
        """Input-shift boundaries fired so far (see :mod:`learn.shift`)."""
        return self._shift.boundaries

    @property
    def shift_score(self) -> float | None:
        """The last window's input-shift score (about 1 without a shift; None before two windows)."""
        return self._shift.last_score

    @property
    def updates(self) -> int:
        """Network learning steps taken (outcomes with an embedding, batch samples)."""
        return self._head_updates

    # --- reads -------------------------------------------------------------------------------

    def expected_quality(self, embedding: Any) -> np.ndarray:
        """Per-target expected quality for this input in the current mode (changes nothing)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        if self._bayes is not None:
            return self._bayes.posterior(self._bayes.features(self._norm.standardise(x)))[0]
        mode = self.mode
        if mode == "fastgrnn":
            xs = self._norm.standardise(x)
            return self._net.heads(self._net.cell(xs)[3], xs)["quality"]
        if mode == "ema":
            return self._ema.copy()
        return np.full(len(self.targets), 0.5)

    def route(
        self,
        embedding: Any,
        estimated_tokens: Any = None,
        adapter_logits: Any = None,
        draw: Draw | None = None,
        explore: bool = True,
    ) -> dict[str, Any]:
        """Pick a target and sampling parameters; changes nothing.

        Explores (a target picked by ``draw``) when ``draw.u`` is below :attr:`exploration_rate`
        (``epsilon``, faded once every target has ``epsilon_fade`` outcomes); without a draw the
        answer is the policy's choice without randomness (UCB's bound stays: it needs none).
        ``explore=False`` is the choice on what has been learnt alone: no epsilon, and under a
        Bayesian policy the posterior mean (no Thompson noise, no UCB bonus).
        """
        x = _check.vector(embedding, "embedding", self.in_dim)
        if not isinstance(explore, bool):
            raise LearnInputError("explore", "expected true or false")
        drawn = None if draw is None else check_draw(draw)  # checked even when not used
        if not explore:
            drawn = None
        bucket = None if estimated_tokens is None else bucket_index(estimated_tokens)
        adapter = (
            None
            if adapter_logits is None
            else _check.vector(adapter_logits, "adapter_logits", len(self.targets))
        )
        mode, bayes = self.mode, self._bayes
        if mode == "fastgrnn" or bayes is not None:
            xs = self._norm.standardise(x)
        if mode == "fastgrnn":  # (with the Bayesian head choosing, the model rows are not read)
            score, logits, temperature, top_p, confidence = self._net.read(xs, quality=bayes is None)
            if bucket is None:
                bucket = int(logits.argmax()) if self._bucket_updates else 0
        else:
            score = self._ema if mode == "ema" else [0.0] * len(self.targets)
            bucket = 0 if bucket is None else bucket
            temperature, top_p, confidence = RULE_TEMPERATURE, RULE_TOP_P, RULE_CONFIDENCE
        exploration = drawn is not None and drawn[0] < self._exploration
        if exploration:  # the draw picks the target: no score is needed
            choice = drawn[1] % len(self.targets)
        else:
            if bayes is not None:  # the head chooses, with the cost on its (quality) scale
                score = bayes.score(xs, self, drawn) if explore else bayes.mean(bayes.features(xs))
            choice = choose(score, self.cost_weight, self._cost, adapter)
        return {
            "model": self.targets[choice],
            "context_bucket": CONTEXT_BUCKETS[bucket],
            "temperature": float(temperature),
            "top_p": float(top_p),
            "confidence": float(confidence),
            "algo": mode,
            "exploration": exploration,
        }

    @property
    def needs_draw(self) -> bool:  # exploration, or Thompson sampling's noise
        return self.epsilon > 0.0 or self.policy == "thompson"

    def loss(self, embedding: Any, target: Any, quality: Any) -> float:
        """Binary cross-entropy of the model head on one outcome (for boundary detection)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        k = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        xs = self._norm.standardise(x)
        p = float(self._net.heads(self._net.cell(xs)[3], xs)["quality"][k])
        return bce(q, p)

    def grads(self, embedding: Any, target: Any, quality: Any) -> dict[str, np.ndarray]:
        """Gradients of :meth:`loss` for every cell and model-head array (for an EWC Fisher)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        k = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        return self._net.model_grads(self._norm.standardise(x), k, q)[0]

    # --- learning ----------------------------------------------------------------------------

    def record_outcome(
        self,
        target: Any,
        quality: Any,
        embedding: Any = None,
        estimated_tokens: Any = None,
        temperature: Any = None,
        top_p: Any = None,
    ) -> bool:
        """Fold an outcome into the target's EMA and, given the embedding, learn from it.

        Returns True when this outcome's embedding completes an input window on which the
        input-shift monitor fires (a topic shift; see :mod:`learn.shift`).
        """
        k = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        x = None if embedding is None else _check.vector(embedding, "embedding", self.in_dim)
        bucket = None if estimated_tokens is None else bucket_index(estimated_tokens)
        t = None if temperature is None else _check.number(temperature, "temperature", 0.1, 1.5)
        tp = None if top_p is None else _check.number(top_p, "top_p", 0.5, 1.0)
        if x is None and (bucket is not None or t is not None or tp is not None):
            raise LearnInputError(
                "embedding", "is required with estimated_tokens, temperature or top_p"
            )
        baseline = float(self._ema[k])
        self._ema[k] = (1.0 - self.ema_alpha) * self._ema[k] + self.ema_alpha * q
        self._outcomes[k] += 1
        self.derive_exploration()
        if x is None:
            return False
        fired = self._shift.observe(x, self._norm.scale)  # against the statistics before x
        self._norm.update(x, self.norm_momentum)
        xs = self._norm.standardise(x)
        if self._bayes is not None:
            self._bayes.update(k, self._bayes.features(xs), q)
        self._step(xs, k, q, bucket, t, tp, baseline)
        return fired

    def train_batch(
        self,
        embeddings: Any,
        targets: Sequence[str],
        qualities: Any,
        epochs: int = 1,
        estimated_tokens: Sequence[int] | None = None,
    ) -> float:
        """Passes over logged outcomes (background jobs); returns the last epoch's mean loss.

        Samples are visited in an order drawn from the router's generator, so a batch run is as
        reproducible as the online path. They do not feed the input-shift monitor, and they are not
        counted in :attr:`outcome_counts`: logged outcomes were already seen (and counted) online,
        and a batch's order says nothing about the time of a shift. :attr:`updates` counts the
        steps they take.
        """
        X = _check.array(embeddings, "embeddings")
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise LearnInputError("embeddings", f"expected rows of {self.in_dim} values")
        m = X.shape[0]
        if not isinstance(targets, (list, tuple)) or len(targets) != m:
            raise LearnInputError("targets", "expected one target per embedding")
        ks = [self.target_index(t, "targets") for t in targets]
        qs = _check.vector(qualities, "qualities", m)
        if ((qs < 0) | (qs > 1)).any():
            raise LearnInputError("qualities", "must be within [0, 1]")
        buckets: list[int | None] = [None] * m
        if estimated_tokens is not None:
            if not isinstance(estimated_tokens, (list, tuple)) or len(estimated_tokens) != m:
                raise LearnInputError("estimated_tokens", "expected one count per embedding")
            buckets = [bucket_index(n) for n in estimated_tokens]
        epochs = _check.integer(epochs, "epochs", lo=1)
        loss = 0.0
        for _ in range(epochs):
            order = self._rng.permutation(m)
            total = 0.0
            for i in order:
                k, q = ks[i], float(qs[i])
                baseline = float(self._ema[k])
                self._ema[k] = (1.0 - self.ema_alpha) * self._ema[k] + self.ema_alpha * q
                self._norm.update(X[i], self.norm_momentum)
                total += self._step(self._norm.standardise(X[i]), k, q, buckets[i], None, None, baseline)
            loss = total / m
        return loss

    def _step(self, xs: np.ndarray, k: int, q: float, bucket: int | None, temperature: float | None,
              top_p: float | None, baseline: float) -> float:
        """One learning step on an outcome (:meth:`FastGRNNNet.train_step`); returns its loss before it."""
        if bucket is not None:
            self._bucket_updates += 1
        self._head_updates += 1
        return self._net.train_step(self._opt.step, xs, k, q, bucket, temperature, top_p, q - baseline,
                                    self.lr, self.ewc_lambda)

    def anchor(
        self, fisher: Mapping[str, Any], snapshot: Mapping[str, Any] | None = None
    ) -> None:
        """EWC anchor for some parameters (by name); later steps are pulled towards ``snapshot``.

        Without ``snapshot`` the current values are the snapshot. An empty ``fisher`` removes
        the anchor.
        """
        if not isinstance(fisher, Mapping):
            raise LearnInputError("fisher", "expected a map from parameter name to array")
        new_f, new_s = {}, {}
        for name, value in fisher.items():
            if name not in self._net.p:
                raise LearnInputError("fisher", "names an unknown parameter")
            new_f[name], new_s[name] = anchor_pair(name, value, snapshot, self._net.p[name])
        self._opt.fisher, self._opt.snap = new_f, new_s

    # --- persistence -------------------------------------------------------------------------

    def to_state(self) -> State:
        return router_state.to_state(self)

    @classmethod
    def upgrade(cls, state: State, version: int) -> State:
        """An older state (layout 2 to 5) in the current layout (:func:`learn.router_state.upgrade`)."""
        return router_state.upgrade(cls, state, version)

    @classmethod
    def from_state(cls, state: State) -> FastGRNNRouter:
        return router_state.from_state(cls, state)

