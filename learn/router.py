"""A FastGRNN router that learns which target (model) to send a request to, from outcomes.

The cell is one step of FastGRNN (Kusupati et al., 2018) from a zero hidden state, because a router
sees one embedding per decision (with ``h_prev = 0`` the recurrent matrix contributes nothing, so
it is left out)::

    pre = W @ x            W = (U @ V) * M    U: hidden x rank, V: rank x in_dim, M fixed 0/1 mask
    z   = sigmoid(pre + b_z)
    c   = tanh(pre + b_h)
    h   = (zeta * (1 - z) + nu) * c

``W`` is low-rank (rank 8) and sparse: the seeded mask ``M`` keeps exactly ``1 - sparsity`` (10%) of
the input weights, so 90% are zero. Five linear heads read ``h``:

- model: per-target expected quality ``sigmoid(W_m @ h + b_m + S @ xs)``, where ``S @ xs`` is a
  linear skip path from the standardised embedding ``xs`` (``skip=True``, the default; a zero
  matrix at the start). The skip path gives the router the linear model a logistic regression
  would learn; the cell adds the non-linear part on top. The choice is
  ``argmax(expected quality - cost_weight * cost + adapter_logits)``.
- context bucket: softmax over the 5 buckets, learned from ``estimated_tokens`` when given.
- temperature ``0.1 + 1.4 sigmoid(.)`` and top_p ``0.5 + 0.5 sigmoid(.)``: start at exactly 0.7 and
  0.9 (zero weights) and learn only when an outcome reports the values used (reward-weighted
  regression towards values that beat the target's quality EMA).
- confidence ``sigmoid(.)``: learns to predict ``1 - |quality - expected quality|``, i.e. how much
  the router's own estimate can be trusted for inputs like this one.

Learning is a contextual bandit: only the chosen target's outcome is seen. ``record_outcome`` with
an embedding takes one step of the binary cross-entropy between the chosen target's expected
quality and the observed quality, back-propagated into the cell. The step is AdaGrad by default
(``optimizer="adagrad"``, lr 0.003; its per-entry sums of squared gradients are state), or plain SGD
(``optimizer="sgd"``; pair it with ``skip=False`` or a small lr, because the skip path's input has
about ``in_dim`` unit-variance features). ``train_batch`` takes the same steps over logged outcomes. Inputs are standardised with a
running mean and variance (part of the state) so that the cell sees unit-scale features whatever
the embedding model. Epsilon-greedy exploration keeps every target's estimate fed; its randomness
comes in with each route as a :class:`Draw` (a read changes nothing, so the router holds no
generator for it; the generator in the state orders ``train_batch``). With an EWC anchor (:meth:`FastGRNNRouter.anchor`) each step is a proximal step
towards the snapshot, ``p <- (p - a*g + 2*a*lambda*F*snapshot) / (1 + 2*a*lambda*F)`` with ``a`` the
entry's step size (``lr``, or AdaGrad's ``lr / sqrt(sum g^2)``), which is stable for any lambda.

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

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from learn import _check
from learn.errors import LearnInputError, StateError
from learn.shift import InputShift
from learn.state import State, expect_array, register, rng_from_json, rng_to_json

__all__ = ["CONTEXT_BUCKETS", "CONTEXT_WINDOWS", "Draw", "FastGRNNRouter", "context_bucket"]

CONTEXT_WINDOWS = (1024, 4096, 16384, 65536)
"""Upper token limits (inclusive) of the first four buckets; above 65,536 is the fifth."""
CONTEXT_BUCKETS = ("1k", "4k", "16k", "64k", "64k+")

RULE_TEMPERATURE = 0.7
RULE_TOP_P = 0.9
RULE_CONFIDENCE = 0.5
_VAR_FLOOR = 1e-8
OPTIMIZERS = ("adagrad", "sgd")
_ADAGRAD_EPS = 1e-8


def context_bucket(estimated_tokens: Any) -> str:
    """The smallest context window that holds the tokens.

    >>> [context_bucket(n) for n in (0, 1024, 1025, 4096, 16385, 65536, 65537)]
    ['1k', '1k', '4k', '4k', '64k', '64k', '64k+']
    """
    return CONTEXT_BUCKETS[_bucket_index(estimated_tokens)]


def _bucket_index(estimated_tokens: Any) -> int:
    n = _check.integer(estimated_tokens, "estimated_tokens", lo=0)
    for i, edge in enumerate(CONTEXT_WINDOWS):
        if n <= edge:
            return i
    return len(CONTEXT_WINDOWS)


class Draw(NamedTuple):
    """The randomness of one route, passed in: routing reads the router and changes nothing.

    ``u`` in [0, 1]: the route explores when ``u < epsilon``. ``k``, an integer of at least 0: an
    exploring route picks target ``k % len(targets)``. A route given no draw never explores (the
    greedy answer, whatever ``epsilon``); the caller owns the randomness, e.g. the service derives
    it from the state and the request, so that equal requests get equal answers.

    >>> d = Draw.from_rng(np.random.default_rng(0))
    >>> 0.0 <= d.u < 1.0 and d.k >= 0
    True
    """

    u: float
    k: int

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> Draw:
        """A uniform draw from ``rng`` (for a caller that keeps its own generator)."""
        return cls(float(rng.random()), int(rng.integers(2**63)))


def _check_draw(draw: Any) -> tuple[float, int]:
    if not isinstance(draw, Draw):
        raise LearnInputError("draw", "expected a Draw(u, k)")
    u, k = draw
    if type(u) is not float or not 0.0 <= u <= 1.0:
        u = _check.number(u, "draw.u", lo=0.0, hi=1.0)
    if type(k) is not int or k < 0:
        k = _check.integer(k, "draw.k", lo=0)
    return u, k


def _sigmoid(x: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@register
class FastGRNNRouter:
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

    kind: ClassVar[str] = "router"

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
        ewc_lambda: float = 2000.0,
        zeta: float = 1.0,
        nu: float = 1e-4,
        norm_momentum: float = 0.0,
        seed: int = 0,
        optimizer: str = "adagrad",
        skip: bool = True,
        shift_window: int = 50,
        shift_beta: float = 0.1,
        shift_min: float = 2.0,
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
        self.costs = self._check_costs(costs)
        self.cost_weight = _check.number(cost_weight, "cost_weight", lo=0.0)
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
        self._index = {t: i for i, t in enumerate(self.targets)}
        self._cost = np.array([self.costs.get(t, 0.0) for t in self.targets], dtype=np.float64)
        self._init_params()

    def _check_costs(self, costs: Any) -> dict[str, float]:
        if costs is None:
            return {}
        if not isinstance(costs, Mapping):
            raise LearnInputError("costs", "expected a map from target to cost")
        out = {}
        for name, value in costs.items():
            if name not in self.targets:
                raise LearnInputError("costs", "names an unknown target")
            out[name] = _check.number(value, "costs", lo=0.0)
        return out

    def set_costs(
        self, costs: Mapping[str, float] | None = None, cost_weight: float | None = None
    ) -> None:
        """Replace the cost map and/or the cost weight (both are settings, saved with the state)."""
        new_costs = self._check_costs(costs) if costs is not None else self.costs
        new_weight = (
            self.cost_weight
            if cost_weight is None
            else _check.number(cost_weight, "cost_weight", lo=0.0)
        )
        self.costs, self.cost_weight = new_costs, new_weight
        self._cost = np.array([self.costs.get(t, 0.0) for t in self.targets], dtype=np.float64)

    # --- parameters --------------------------------------------------------------------------

    def _init_params(self) -> None:
        n, d, hd, r = len(self.targets), self.in_dim, self.hidden, self.rank
        init = np.random.default_rng(np.random.SeedSequence([self.seed, 0]))
        total = hd * d
        keep = max(1, int(round((1.0 - self.sparsity) * total)))
        mask = np.zeros(total, dtype=bool)
        mask[init.permutation(total)[:keep]] = True
        self._mask = mask.reshape(hd, d)
        # scale so that a pre-activation sums about keep/hd unit inputs to unit variance
        w_std = 1.0 / math.sqrt(max(keep / hd, 1.0))
        f_std = math.sqrt(w_std / math.sqrt(r))
        # All five heads live in one matrix, so that a route is one mat-vec for every head; the
        # named parameters are views into it (updates are in place, which keeps the views valid).
        nb = len(CONTEXT_BUCKETS)
        self._HW = np.zeros((n + nb + 3, hd))
        self._Hb = np.zeros(n + nb + 3)
        self._HW[:n] = init.standard_normal((n, hd)) * (0.01 / math.sqrt(hd))
        self._Hb[n + nb] = _logit((RULE_TEMPERATURE - 0.1) / 1.4)
        self._Hb[n + nb + 1] = _logit((RULE_TOP_P - 0.5) / 0.5)
        self._rows = {
            "model": slice(0, n),
            "bucket": slice(n, n + nb),
            "temperature": slice(n + nb, n + nb + 1),
            "top_p": slice(n + nb + 1, n + nb + 2),
            "confidence": slice(n + nb + 2, n + nb + 3),
        }
        self._p: dict[str, np.ndarray] = {
            "cell.U": init.standard_normal((hd, r)) * f_std,
            "cell.V": init.standard_normal((r, d)) * f_std,
            "cell.b_h": np.zeros(hd),
            "cell.b_z": np.zeros(hd),
        }
        for head, rows in self._rows.items():
            self._p[f"{head}.W"] = self._HW[rows]
            self._p[f"{head}.b"] = self._Hb[rows]
        if self.skip:
            self._p["skip.W"] = np.zeros((n, d))
        # AdaGrad's per-entry sum of squared gradients (empty for plain SGD)
        self._g2: dict[str, np.ndarray] = (
            {name: np.zeros_like(v) for name, v in self._p.items()}
            if self.optimizer == "adagrad"
            else {}
        )
        self._mean = np.zeros(d)
        self._var = np.ones(d)
        self._norm_n = 0
        self._ema = np.full(n, 0.5)
        self._outcomes = np.zeros(n, dtype=np.int64)
        self._head_updates = 0
        self._bucket_updates = 0
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 1])))
        self._fisher: dict[str, np.ndarray] = {}
        self._snap: dict[str, np.ndarray] = {}
        self._shift = InputShift(d, self.shift_window, self.shift_beta, self.shift_min)
        self._derive()

    def _derive(self) -> None:
        """Recompute the caches that follow from the state (never serialised)."""
        self._maskf = self._mask.astype(np.float64)
        self._scale = 1.0 / np.sqrt(self._var + _VAR_FLOOR)
        self._refresh_w()

    def _refresh_w(self) -> None:
        w = self._p["cell.U"] @ self._p["cell.V"]
        w *= self._maskf
        self._W = w

    def param_names(self) -> list[str]:
        return list(self._p)

    def params(self) -> dict[str, np.ndarray]:
        """Copies of every learnable array, by name (``cell.U``, ``model.W``, ...)."""
        return {k: v.copy() for k, v in self._p.items()}

    @property
    def sparsity_actual(self) -> float:
        """Fraction of the effective input weights ``W`` that are exactly zero."""
        return float(np.mean(self._W == 0.0))

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

    # --- forward -----------------------------------------------------------------------------

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self._mean) * self._scale

    def _cell(self, xs: np.ndarray) -> tuple[np.ndarray, ...]:
        p = self._p
        pre = self._W @ xs
        z = _sigmoid(pre + p["cell.b_z"])
        c = np.tanh(pre + p["cell.b_h"])
        g = self.zeta * (1.0 - z) + self.nu
        return z, c, g, g * c

    def _logits(self, h: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Every head's pre-activation; the skip path adds a linear read of ``xs`` to the model rows."""
        z = self._HW @ h + self._Hb
        if self.skip:
            z[self._rows["model"]] += self._p["skip.W"] @ xs
        return z

    def _heads(self, h: np.ndarray, xs: np.ndarray) -> dict[str, Any]:
        z = self._logits(h, xs)
        sg = _sigmoid(z)
        rows = self._rows
        return {
            "quality": sg[rows["model"]],
            "bucket": z[rows["bucket"]],
            "temperature": 0.1 + 1.4 * float(sg[rows["temperature"]][0]),
            "top_p": 0.5 + 0.5 * float(sg[rows["top_p"]][0]),
            "confidence": float(sg[rows["confidence"]][0]),
        }

    def expected_quality(self, embedding: Any) -> np.ndarray:
        """Per-target expected quality for this input in the current mode (changes nothing)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        mode = self.mode
        if mode == "fastgrnn":
            xs = self._standardise(x)
            return self._heads(self._cell(xs)[3], xs)["quality"]
        if mode == "ema":
            return self._ema.copy()
        return np.full(len(self.targets), 0.5)

    def route(
        self,
        embedding: Any,
        estimated_tokens: Any = None,
        adapter_logits: Any = None,
        draw: Draw | None = None,
    ) -> dict[str, Any]:
        """Pick a target and sampling parameters; changes nothing.

        Explores (a target picked by ``draw``) when ``draw.u < epsilon``; without a draw the
        answer is the greedy choice.
        """
        x = _check.vector(embedding, "embedding", self.in_dim)
        explore = None if draw is None else _check_draw(draw)
        bucket = None if estimated_tokens is None else _bucket_index(estimated_tokens)
        adapter = (
            None
            if adapter_logits is None
            else _check.vector(adapter_logits, "adapter_logits", len(self.targets))
        )
        mode = self.mode
        n = len(self.targets)
        if mode == "fastgrnn":
            xs = self._standardise(x)
            out = self._heads(self._cell(xs)[3], xs)
            score = out["quality"] - self.cost_weight * self._cost
            if bucket is None:
                bucket = int(np.argmax(out["bucket"])) if self._bucket_updates else 0
            temperature, top_p, confidence = out["temperature"], out["top_p"], out["confidence"]
        else:
            if mode == "ema":
                score = self._ema - self.cost_weight * self._cost
            else:
                score = np.zeros(n)
            bucket = 0 if bucket is None else bucket
            temperature, top_p, confidence = RULE_TEMPERATURE, RULE_TOP_P, RULE_CONFIDENCE
        if adapter is not None:
            score = score + adapter
        choice = int(np.argmax(score))
        exploration = explore is not None and explore[0] < self.epsilon
        if exploration:
            choice = explore[1] % n
        return {
            "model": self.targets[choice],
            "context_bucket": CONTEXT_BUCKETS[bucket],
            "temperature": float(temperature),
            "top_p": float(top_p),
            "confidence": float(confidence),
            "algo": mode,
            "exploration": exploration,
        }

    # --- learning ----------------------------------------------------------------------------

    def target_index(self, target: Any, field: str = "target") -> int:
        if not isinstance(target, str):
            raise LearnInputError(field, "expected a target name")
        try:
            return self._index[target]
        except KeyError:
            raise LearnInputError(field, "unknown target") from None

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
        bucket = None if estimated_tokens is None else _bucket_index(estimated_tokens)
        t = None if temperature is None else _check.number(temperature, "temperature", 0.1, 1.5)
        tp = None if top_p is None else _check.number(top_p, "top_p", 0.5, 1.0)
        if x is None and (bucket is not None or t is not None or tp is not None):
            raise LearnInputError(
                "embedding", "is required with estimated_tokens, temperature or top_p"
            )
        baseline = float(self._ema[k])
        self._ema[k] = (1.0 - self.ema_alpha) * self._ema[k] + self.ema_alpha * q
        self._outcomes[k] += 1
        if x is None:
            return False
        fired = self._shift.observe(x, self._scale)  # against the statistics before x
        self._update_norm(x)
        self._sgd(self._standardise(x), k, q, bucket, t, tp, baseline)
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
            buckets = [_bucket_index(n) for n in estimated_tokens]
        epochs = _check.integer(epochs, "epochs", lo=1)
        loss = 0.0
        for _ in range(epochs):
            order = self._rng.permutation(m)
            total = 0.0
            for i in order:
                k, q = ks[i], float(qs[i])
                baseline = float(self._ema[k])
                self._ema[k] = (1.0 - self.ema_alpha) * self._ema[k] + self.ema_alpha * q
                self._update_norm(X[i])
                total += self._sgd(self._standardise(X[i]), k, q, buckets[i], None, None, baseline)
            loss = total / m
        return loss

    def loss(self, embedding: Any, target: Any, quality: Any) -> float:
        """Binary cross-entropy of the model head on one outcome (for boundary detection)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        k = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        xs = self._standardise(x)
        p = float(self._heads(self._cell(xs)[3], xs)["quality"][k])
        p = min(max(p, 1e-7), 1.0 - 1e-7)
        return -(q * math.log(p) + (1.0 - q) * math.log(1.0 - p))

    def grads(self, embedding: Any, target: Any, quality: Any) -> dict[str, np.ndarray]:
        """Gradients of :meth:`loss` for every cell and model-head array (for an EWC Fisher)."""
        x = _check.vector(embedding, "embedding", self.in_dim)
        k = self.target_index(target)
        q = _check.number(quality, "quality", lo=0.0, hi=1.0)
        return self._model_grads(self._standardise(x), k, q)[0]

    def _update_norm(self, x: np.ndarray) -> None:
        # The first sample sets the mean and an isotropic variance guess of its own scale (so the
        # features have the right order of magnitude from the start); after that the exact running
        # mean/variance (Welford), or an EMA once 1/n falls below norm_momentum.
        self._norm_n += 1
        if self._norm_n == 1:
            self._mean = x.copy()
            self._var = np.full(self.in_dim, float(np.mean(x * x)) + _VAR_FLOOR)
            self._scale = 1.0 / np.sqrt(self._var + _VAR_FLOOR)
            return
        beta = max(1.0 / self._norm_n, self.norm_momentum)
        delta = x - self._mean
        self._mean = self._mean + beta * delta
        self._var = (1.0 - beta) * (self._var + beta * delta * delta)
        self._scale = 1.0 / np.sqrt(self._var + _VAR_FLOOR)

    def _model_grads(
        self, xs: np.ndarray, k: int, q: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
        """BCE gradients of target ``k``'s expected quality, back-propagated into the cell.

        With ``dpre`` the gradient at the pre-activation, ``dW = outer(dpre, xs) * M``; the factor
        gradients ``dU = dW @ V.T`` and ``dV = U.T @ dW`` are computed without forming ``dW``.
        """
        p = self._p
        z, c, g, h = self._cell(xs)
        wk = p["model.W"][k]
        zk = wk @ h + p["model.b"][k]
        if self.skip:
            zk += p["skip.W"][k] @ xs
        pk = float(_sigmoid(zk))
        err = pk - q
        gh = err * wk
        dpre_h = gh * g * (1.0 - c * c)
        dpre_z = -gh * self.zeta * c * z * (1.0 - z)
        dpre = dpre_h + dpre_z
        U, V = p["cell.U"], p["cell.V"]
        gW = np.zeros_like(p["model.W"])
        gW[k] = err * h
        gb = np.zeros_like(p["model.b"])
        gb[k] = err
        grads = {
            "cell.U": dpre[:, None] * (self._maskf @ (V * xs).T),
            "cell.V": ((U * dpre[:, None]).T @ self._maskf) * xs,
            "cell.b_h": dpre_h,
            "cell.b_z": dpre_z,
            "model.W": gW,
            "model.b": gb,
        }
        if self.skip:
            gS = np.zeros_like(p["skip.W"])
            gS[k] = err * xs
            grads["skip.W"] = gS
        return grads, h, pk

    def _apply(self, name: str, grad: np.ndarray) -> None:
        """One step on parameter ``name``, in place (the head arrays are views into one matrix).

        AdaGrad divides each entry's step by the root of its summed squared gradients: rarely
        moved, informative entries keep large steps while the noisy ones settle, which one pass of
        bandit feedback needs (plain SGD at one rate either stalls or keeps chasing noise). The
        per-entry rate keeps the EWC proximal step exact per entry.
        """
        p = self._p[name]
        rate: Any = self.lr
        if self._g2:
            g2 = self._g2[name]
            g2 += grad * grad
            rate = self.lr / (np.sqrt(g2) + _ADAGRAD_EPS)
        f = self._fisher.get(name)
        if f is None or self.ewc_lambda == 0.0:
            p -= rate * grad
        else:
            k = (2.0 * self.ewc_lambda) * rate * f
            p[...] = (p - rate * grad + k * self._snap[name]) / (1.0 + k)

    def _sgd(
        self,
        xs: np.ndarray,
        k: int,
        q: float,
        bucket: int | None,
        temperature: float | None,
        top_p: float | None,
        baseline: float,
    ) -> float:
        grads, h, pk = self._model_grads(xs, k, q)
        rows = self._rows
        # The side heads learn on the same hidden state without moving the cell: one gradient
        # entry per head row (``gz``), turned into ``outer(gz, h)`` for the weights.
        z = self._logits(h, xs)
        sg = _sigmoid(z)
        gz = np.zeros_like(z)
        conf_row = rows["confidence"].start
        gz[conf_row] = sg[conf_row] - (1.0 - abs(q - pk))
        heads = ["confidence"]
        if bucket is not None:
            zb = z[rows["bucket"]]
            prob = np.exp(zb - zb.max())
            prob /= prob.sum()
            prob[bucket] -= 1.0
            gz[rows["bucket"]] = prob
            heads.append("bucket")
            self._bucket_updates += 1
        advantage = q - baseline
        for name, used, lo, span in (
            ("temperature", temperature, 0.1, 1.4),
            ("top_p", top_p, 0.5, 0.5),
        ):
            if used is None or advantage == 0.0:
                continue
            row = rows[name].start
            sv = float(sg[row])
            # move the head's output towards a value that did better than usual (away if worse)
            gz[row] = -advantage * (used - (lo + span * sv)) * span * sv * (1.0 - sv)
            heads.append(name)
        for name, grad in grads.items():
            self._apply(name, grad)
        for head in heads:
            sl = rows[head]
            self._apply(f"{head}.W", np.outer(gz[sl], h))
            self._apply(f"{head}.b", gz[sl])
        self._refresh_w()
        self._head_updates += 1
        pk = min(max(pk, 1e-7), 1.0 - 1e-7)
        return -(q * math.log(pk) + (1.0 - q) * math.log(1.0 - pk))

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
            if name not in self._p:
                raise LearnInputError("fisher", "names an unknown parameter")
            f = _check.array(value, f"fisher.{name}")
            if f.shape != self._p[name].shape:
                raise LearnInputError(f"fisher.{name}", f"expected shape {self._p[name].shape}")
            if (f < 0).any():
                raise LearnInputError(f"fisher.{name}", "must be non-negative")
            new_f[name] = f.copy()
            if snapshot is None:
                new_s[name] = self._p[name].copy()
            else:
                if not isinstance(snapshot, Mapping) or name not in snapshot:
                    raise LearnInputError(f"snapshot.{name}", "is missing")
                s = _check.array(snapshot[name], f"snapshot.{name}")
                if s.shape != self._p[name].shape:
                    raise LearnInputError(
                        f"snapshot.{name}", f"expected shape {self._p[name].shape}"
                    )
                new_s[name] = s.copy()
        self._fisher, self._snap = new_f, new_s

    # --- persistence -------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "in_dim": self.in_dim,
            "targets": list(self.targets),
            "hidden": self.hidden,
            "rank": self.rank,
            "sparsity": self.sparsity,
            "trained": self.trained,
            "epsilon": self.epsilon,
            "costs": dict(self.costs),
            "cost_weight": self.cost_weight,
            "ema_alpha": self.ema_alpha,
            "lr": self.lr,
            "ewc_lambda": self.ewc_lambda,
            "zeta": self.zeta,
            "nu": self.nu,
            "norm_momentum": self.norm_momentum,
            "seed": self.seed,
            "optimizer": self.optimizer,
            "skip": self.skip,
            "shift_window": self.shift_window,
            "shift_beta": self.shift_beta,
            "shift_min": self.shift_min,
        }

    def to_state(self) -> State:
        arrays = {f"param.{k}": v for k, v in self._p.items()}
        arrays.update({f"fisher.{k}": v for k, v in self._fisher.items()})
        arrays.update({f"snapshot.{k}": v for k, v in self._snap.items()})
        arrays.update({f"adagrad.{k}": v for k, v in self._g2.items()})
        arrays.update(self._shift.arrays("shift"))
        arrays.update(
            {
                "mask": self._mask,
                "norm.mean": self._mean,
                "norm.var": self._var,
                "ema": self._ema,
                "outcomes": self._outcomes,
            }
        )
        return State(
            settings=self.settings(),
            scalars={
                "norm_n": self._norm_n,
                "head_updates": self._head_updates,
                "bucket_updates": self._bucket_updates,
                "anchored": sorted(self._fisher),
                "rng": rng_to_json(self._rng),
                "shift": self._shift.scalars(),
            },
            arrays=arrays,
        )

    @classmethod
    def upgrade(cls, state: State, version: int) -> State:
        """A version-2 state (before the input-shift monitor) with a fresh monitor added.

        The monitor only observes, so the router learns on exactly as before; it
        starts counting windows from the upgrade.
        """
        if version != 2:
            raise StateError(f"no upgrade from router layout {version}")
        fresh = cls(**state.settings).to_state()  # the monitor's defaults and empty window
        shift = {k: v for k, v in fresh.arrays.items() if k.startswith("shift.")}
        return State({**fresh.settings, **state.settings}, {**state.scalars, "shift": fresh.scalars["shift"]},
                     {**state.arrays, **shift})

    @classmethod
    def from_state(cls, state: State) -> FastGRNNRouter:
        try:
            core = cls(**state.settings)
        except LearnInputError as exc:
            raise StateError(f"router settings are invalid ({exc.field})") from exc
        a, sc = state.arrays, state.scalars
        n, d = len(core.targets), core.in_dim
        for name, ref in core._p.items():
            ref[...] = expect_array(a, f"param.{name}", ref.shape)  # in place: heads are views
        anchored = sc["anchored"]
        if not isinstance(anchored, list) or not set(anchored) <= set(core._p):
            raise StateError("router anchor names unknown parameters")
        core._fisher = {k: expect_array(a, f"fisher.{k}", core._p[k].shape) for k in anchored}
        core._snap = {k: expect_array(a, f"snapshot.{k}", core._p[k].shape) for k in anchored}
        core._mask = expect_array(a, "mask", (core.hidden, d), np.bool_)
        core._mean = expect_array(a, "norm.mean", (d,))
        core._var = expect_array(a, "norm.var", (d,))
        core._ema = expect_array(a, "ema", (n,))
        core._outcomes = expect_array(a, "outcomes", (n,), np.int64)
        for name, ref in core._g2.items():
            core._g2[name] = expect_array(a, f"adagrad.{name}", ref.shape)
        core._shift.restore(a, "shift", sc["shift"])
        if len(a) != len(core._p) + len(core._g2) + 2 * len(anchored) + 8:
            raise StateError("router blob holds unexpected arrays")
        core._norm_n = int(sc["norm_n"])
        core._head_updates = int(sc["head_updates"])
        core._bucket_updates = int(sc["bucket_updates"])
        core._rng = rng_from_json(sc["rng"])
        core._derive()
        return core
