"""The MicroLoRA adapter beside the router, on the bandit protocol of :mod:`bench.routing_bandit`.

An arm wraps a router learner (in this process or through the service) and, on every prompt,
first asks the adapter for its logits (``apply_adapter``, or ``MicroLoRA.apply``), routes with
them (``adapter_logits``, times ``scale``; the router adds them to its scores), and after the
outcome sends the chosen model's correctness to the adapter as feedback (``feedback``: model =
the chosen target, quality = its correctness) besides the router's ``record_outcome``. On the
held-out part it only reads: ``apply_adapter`` then ``route``. ``scale`` is what a client would
multiply the adapter's logits by (1: as returned).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CoreAdapter:
    """A :class:`learn.MicroLoRA` in this process (what the ``feedback`` update and the
    ``apply_adapter`` read call)."""

    def __init__(self, targets: list[str], dim: int, seed: int) -> None:
        from learn import MicroLoRA

        self.lora, self.targets = MicroLoRA(targets=targets, in_dim=dim, seed=seed), targets

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.lora.apply(x)

    def feedback(self, k: int, q: float, x: np.ndarray) -> None:
        self.lora.learn(x, self.targets[k], q)


class ServiceAdapter:
    """The adapter through ``Session.dispatch``: ``init_instant``, ``apply_adapter``, ``feedback``."""

    def __init__(self, session: Any, ns: str, targets: list[str], dim: int, seed: int) -> None:
        self.d, self.ns, self.targets = session.dispatch, ns, targets
        out = self.d({"verb": "init_instant", "body": {"namespace": ns, "targets": targets, "in_dim": dim,
                                                       "seed": seed}})
        assert out["ok"], out

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = self.d({"verb": "apply_adapter", "body": {"namespace": self.ns, "embedding": x.tolist()}})
        assert out["ok"], out
        return np.asarray(out["data"]["logits"])

    def feedback(self, k: int, q: float, x: np.ndarray) -> None:
        out = self.d({"verb": "feedback", "body": {"namespace": self.ns, "embedding": x.tolist(),
                                                   "model": self.targets[k], "payload": {"quality": q},
                                                   "now_ms": 0}})
        assert out["ok"], out


class WithAdapter:
    """A router learner that routes with the adapter's logits and feeds the adapter its outcomes."""

    def __init__(self, router: Any, adapter: Any, scale: float) -> None:
        self.router, self.adapter, self.scale = router, adapter, scale
        self.logit_gaps: list[float] = []  # adapter logit of the strong minus the weak target, per route

    def route(self, x: np.ndarray, i: int, learn: bool, explore: bool = True) -> int:
        logits = self.scale * self.adapter.logits(x)
        self.logit_gaps.append(float(logits[1] - logits[0]))
        return self.router.route(x, i, learn, adapter_logits=logits.tolist(), explore=explore)

    def record(self, k: int, q: float, x: np.ndarray) -> None:
        self.router.record(k, q, x)
        self.adapter.feedback(k, q, x)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The router's estimates plus the adapter's logits: what the choice compares."""
        return self.router.scores(X) + self.scale * np.array([self.adapter.logits(x) for x in X])

    def extra(self, n_stream: int) -> dict[str, float]:
        gaps = np.array(self.logit_gaps)
        return {"adapter_gap_end_of_stream": float(gaps[n_stream - 1]),
                "adapter_gap_heldout_mean": float(gaps[n_stream:].mean()),
                "adapter_gap_heldout_abs_mean": float(np.abs(gaps[n_stream:]).mean())}


def paired(rows: list[dict], size: str, cw: float) -> str:
    """Each adapter arm minus its plain router on the same order: mean [min, max] over orders."""
    sel = [r for r in rows if r["size"] == size and r["cost_weight"] == cw]
    plain = {(r["learner"], r["order"]): r for r in sel}
    keys = (("heldout_gpt4_share", ".2f"), ("heldout_accuracy", ".3f"), ("gain_over_random", ".3f"),
            ("stream_regret_per_prompt", ".3f"), ("apgr", ".3f"))
    lines = [f"\n{size} stream, cost weight {cw}: adapter arm minus the plain router, same order",
             "| arm | GPT-4 share | accuracy | gain over random | regret per prompt | APGR | "
             "adapter logit gap (strong - weak), held out: mean abs |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["learner"] for r in sel if " + adapter" in r["learner"]):
        base = name.split(" + adapter")[0]
        rs = [(r, plain[(base, r["order"])]) for r in sel if r["learner"] == name]
        cells = []
        for key, fmt in keys:
            d = np.array([r[key] - b[key] for r, b in rs])
            cells.append(f"{d.mean():+{fmt}} [{d.min():+{fmt}}, {d.max():+{fmt}}]")
        gap = np.mean([r["adapter_gap_heldout_abs_mean"] for r, _ in rs])
        lines.append(f"| {name} | {' | '.join(cells)} | {gap:.3f} |")
    return "\n".join(lines)
