"""The router's network: one FastGRNN step and five linear heads, forward, gradients and a step.

The cell is one step of FastGRNN (Kusupati et al., 2018) from a zero hidden state, because a router
sees one embedding per decision (with ``h_prev = 0`` the recurrent matrix contributes nothing, so
it is left out)::

    pre = W @ x            W = (U @ V) * M    U: hidden x rank, V: rank x in_dim, M fixed 0/1 mask
    z   = sigmoid(pre + b_z)
    c   = tanh(pre + b_h)
    h   = (zeta * (1 - z) + nu) * c

``W`` is low-rank and sparse: the seeded mask ``M`` keeps exactly ``1 - sparsity`` of the input
weights. The five heads live in one matrix, so that a forward pass is one mat-vec for every head;
the named parameters are views into it:

- model: per-target expected quality ``sigmoid(W_m @ h + b_m + S @ xs)``, where ``S @ xs`` is a
  linear skip path from the standardised embedding ``xs`` (with ``skip``; a zero matrix at the
  start). The skip path gives the router the linear model a logistic regression would learn; the
  cell adds the non-linear part on top.
- context bucket: logits of a softmax over the 5 buckets.
- temperature ``0.1 + 1.4 sigmoid(.)`` and top_p ``0.5 + 0.5 sigmoid(.)``: exactly 0.7 and 0.9
  with zero weights.
- confidence ``sigmoid(.)``: trained towards ``1 - |quality - expected quality|``.

>>> net = FastGRNNNet(n_targets=2, in_dim=4, hidden=8, rank=2, sparsity=0.5, seed=0)
>>> sorted(net.p)[:4], net.p["model.W"].shape
(['bucket.W', 'bucket.b', 'cell.U', 'cell.V'], (2, 8))
>>> out = net.heads(net.cell(np.ones(4))[3], np.ones(4))
>>> round(out["temperature"], 12), round(out["top_p"], 12), out["confidence"]
(0.7, 0.9, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from learn.context import CONTEXT_BUCKETS

__all__ = ["FastGRNNNet", "RULE_CONFIDENCE", "bce", "RULE_TEMPERATURE", "RULE_TOP_P"]

RULE_TEMPERATURE = 0.7
RULE_TOP_P = 0.9
RULE_CONFIDENCE = 0.5


def sigmoid(x: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _sigmoid_of_half(x: np.ndarray) -> np.ndarray:
    """``sigmoid(v)`` written into ``x``, which holds ``0.5 * v``: the operations of
    :func:`sigmoid` after its first, so the same bits."""
    np.tanh(x, x)
    x += 1.0
    x *= 0.5
    return x


def bce(q: float, p: float) -> float:
    """Binary cross-entropy of quality ``q`` against the estimate ``p`` (clipped away from 0 and 1)."""
    p = min(max(p, 1e-7), 1.0 - 1e-7)
    return -(q * math.log(p) + (1.0 - q) * math.log(1.0 - p))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class FastGRNNNet:
    """The parameters ``p`` (by name: ``cell.U``, ``model.W``, ...), the mask, and the maths."""

    def __init__(
        self,
        n_targets: int,
        in_dim: int,
        hidden: int,
        rank: int,
        sparsity: float,
        seed: int,
        zeta: float = 1.0,
        nu: float = 1e-4,
        skip: bool = True,
    ) -> None:
        self.zeta, self.nu, self.skip = zeta, nu, skip
        n, d, hd, r = n_targets, in_dim, hidden, rank
        init = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        total = hd * d
        keep = max(1, int(round((1.0 - sparsity) * total)))
        mask = np.zeros(total, dtype=bool)
        mask[init.permutation(total)[:keep]] = True
        self.mask = mask.reshape(hd, d)
        # scale so that a pre-activation sums about keep/hd unit inputs to unit variance
        w_std = 1.0 / math.sqrt(max(keep / hd, 1.0))
        f_std = math.sqrt(w_std / math.sqrt(r))
        # updates are in place, which keeps the head views valid
        nb = len(CONTEXT_BUCKETS)
        self.HW = np.zeros((n + nb + 3, hd))
        self.Hb = np.zeros(n + nb + 3)
        self.HW[:n] = init.standard_normal((n, hd)) * (0.01 / math.sqrt(hd))
        self.Hb[n + nb] = _logit((RULE_TEMPERATURE - 0.1) / 1.4)
        self.Hb[n + nb + 1] = _logit((RULE_TOP_P - 0.5) / 0.5)
        self.rows = {
            "model": slice(0, n),
            "bucket": slice(n, n + nb),
            "temperature": slice(n + nb, n + nb + 1),
            "top_p": slice(n + nb + 1, n + nb + 2),
            "confidence": slice(n + nb + 2, n + nb + 3),
        }
        self.p: dict[str, np.ndarray] = {
            "cell.U": init.standard_normal((hd, r)) * f_std,
            "cell.V": init.standard_normal((r, d)) * f_std,
            "cell.b_h": np.zeros(hd),
            "cell.b_z": np.zeros(hd),
        }
        for head, rows in self.rows.items():
            self.p[f"{head}.W"] = self.HW[rows]
            self.p[f"{head}.b"] = self.Hb[rows]
        if skip:
            self.p["skip.W"] = np.zeros((n, d))
        self.derive()

    def derive(self) -> None:
        """Recompute the caches that follow from the mask and the parameters (never serialised)."""
        self.maskf = self.mask.astype(np.float64)
        self.refresh_w()

    def refresh_w(self) -> None:
        w = self.p["cell.U"] @ self.p["cell.V"]
        w *= self.maskf
        self.W = w

    # --- forward -----------------------------------------------------------------------------

    def cell(self, xs: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(z, c, g, h)`` of the cell on the standardised input ``xs``."""
        p = self.p
        pre = self.W @ xs
        z = sigmoid(pre + p["cell.b_z"])
        c = np.tanh(pre + p["cell.b_h"])
        g = self.zeta * (1.0 - z) + self.nu
        return z, c, g, g * c

    def logits(self, h: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Every head's pre-activation; the skip path adds a linear read of ``xs`` to the model rows."""
        z = self.HW @ h + self.Hb
        if self.skip:
            z[self.rows["model"]] += self.p["skip.W"] @ xs
        return z

    def heads(self, h: np.ndarray, xs: np.ndarray) -> dict[str, Any]:
        z = self.logits(h, xs)
        quality, temperature, top_p, confidence = self._outputs(sigmoid(z))
        return {"quality": quality, "bucket": z[self.rows["bucket"]], "temperature": temperature,
                "top_p": top_p, "confidence": confidence}

    def read(self, xs: np.ndarray, quality: bool = True) -> tuple[Any, np.ndarray, float, float, float]:
        """What a route reads: ``(quality, bucket logits, temperature, top_p, confidence)`` at the
        standardised input ``xs``, bit for bit those of :meth:`heads` (``quality=False``: the
        model rows are left out, None).

        The operations of :meth:`cell` and :meth:`heads` in the same order, with fewer numpy
        calls: only ``h`` of the cell is kept, each element-wise step writes into the array it
        reads (the same bits in place), and a factor ``zeta`` of 1 is not applied (``x * 1.0``
        is ``x``).

        >>> net, x = FastGRNNNet(n_targets=2, in_dim=4, hidden=8, rank=2, sparsity=0.5, seed=0), np.ones(4)
        >>> full = net.heads(net.cell(x)[3], x)
        >>> net.read(x, quality=False)[2:] == (full["temperature"], full["top_p"], full["confidence"])
        True
        """
        p = self.p
        pre = self.W @ xs
        t = pre + p["cell.b_z"]  # z = sigmoid(pre + b_z)
        t *= 0.5
        _sigmoid_of_half(t)
        np.subtract(1.0, t, t)  # g = zeta * (1 - z) + nu
        if self.zeta != 1.0:
            t *= self.zeta
        t += self.nu
        pre += p["cell.b_h"]  # c = tanh(pre + b_h)
        np.tanh(pre, pre)
        t *= pre  # h = g * c
        z = self.HW @ t
        z += self.Hb
        if quality and self.skip:
            z[self.rows["model"]] += p["skip.W"] @ xs
        q, temperature, top_p, confidence = self._outputs(_sigmoid_of_half(z * 0.5))
        return (q if quality else None), z[self.rows["bucket"]], temperature, top_p, confidence

    def _outputs(self, sg: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """The heads' values from the sigmoid of every head's pre-activation."""
        n = self.rows["temperature"].start
        t, tp, conf = sg[n:].tolist()
        return sg[self.rows["model"]], 0.1 + 1.4 * t, 0.5 + 0.5 * tp, conf

    # --- gradients ---------------------------------------------------------------------------

    def model_grads(
        self, xs: np.ndarray, k: int, q: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
        """BCE gradients of target ``k``'s expected quality, back-propagated into the cell.

        With ``dpre`` the gradient at the pre-activation, ``dW = outer(dpre, xs) * M``; the factor
        gradients ``dU = dW @ V.T`` and ``dV = U.T @ dW`` are computed without forming ``dW``.
        Returns the gradients, the hidden state and the expected quality.
        """
        p = self.p
        z, c, g, h = self.cell(xs)
        wk = p["model.W"][k]
        zk = wk @ h + p["model.b"][k]
        if self.skip:
            zk += p["skip.W"][k] @ xs
        pk = float(sigmoid(zk))
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
            "cell.U": dpre[:, None] * (self.maskf @ (V * xs).T),
            "cell.V": ((U * dpre[:, None]).T @ self.maskf) * xs,
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

    def side_grads(
        self,
        h: np.ndarray,
        xs: np.ndarray,
        q: float,
        pk: float,
        bucket: int | None,
        temperature: float | None,
        top_p: float | None,
        advantage: float,
    ) -> tuple[np.ndarray, list[str]]:
        """Gradients of the side heads at their pre-activations (one entry per head row), and the
        heads that learn from this outcome. They learn on the same hidden state without moving the
        cell: the confidence head towards ``1 - |q - pk|``, the bucket head (softmax) towards the
        reported bucket, temperature and top_p (reward-weighted regression) towards values used
        with a positive ``advantage`` (away when negative)."""
        rows = self.rows
        z = self.logits(h, xs)
        sg = sigmoid(z)
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
        for name, used, lo, span in (
            ("temperature", temperature, 0.1, 1.4),
            ("top_p", top_p, 0.5, 0.5),
        ):
            if used is None or advantage == 0.0:
                continue
            row = rows[name].start
            sv = float(sg[row])
            gz[row] = -advantage * (used - (lo + span * sv)) * span * sv * (1.0 - sv)
            heads.append(name)
        return gz, heads

    def train_step(self, step: Callable[..., None], xs: np.ndarray, k: int, q: float, bucket: int | None,
                   temperature: float | None, top_p: float | None, advantage: float, lr: float,
                   lam: float) -> float:
        """One step on an outcome: the cell and model head on its loss, the side heads on their
        targets (:meth:`side_grads`), each array moved by the optimiser's ``step`` (a proximal step
        towards its EWC snapshot with ``lam``). Returns the outcome's loss before the step."""
        grads, h, pk = self.model_grads(xs, k, q)
        gz, heads = self.side_grads(h, xs, q, pk, bucket, temperature, top_p, advantage)
        p = self.p
        for name, grad in grads.items():
            step(name, p[name], grad, lr, lam)
        for head in heads:
            rows = self.rows[head]
            step(f"{head}.W", p[f"{head}.W"], np.outer(gz[rows], h), lr, lam)
            step(f"{head}.b", p[f"{head}.b"], gz[rows], lr, lam)
        self.refresh_w()
        return bce(q, pk)
