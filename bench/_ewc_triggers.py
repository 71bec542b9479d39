"""When to anchor the router (EWC): at a detected boundary, on a clock, or never (issue 14, 4e).

The service's anchor, in this process: ``anchor_router`` (the workers' table entry, so the same
code) on the last ``ANCHOR_MAX`` outcomes (128, as beat's ``consolidate`` and the boundary trigger
of :mod:`workers.boundary` send), Fisher = mean squared gradient of every array ``grads`` returns
(cell, model head, skip path), snapshot = the router's current values, pull ``ewc_lambda`` (a
router setting). Each arm streams A then B from a fresh router (epsilon 1.0, the forgetting
protocol's per-prompt draws) and anchors:

- ``none``: never (the plain router);
- ``boundary``: when ``record_outcome`` reports a fire of the input-shift monitor (what the
  service does with ``KG_ANCHOR_ON_BOUNDARY`` on and no beat);
- ``clock N``: after every N outcomes, on A and B alike (what beat's ``consolidate`` does: each
  anchor replaces the previous one);
- ``boundary + clock N``: both (the service's default with beat running).

Forgetting on A is measured against the same arm at the end of A.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import numpy as np

from bench.routing_eval import STRONG, WEAK
from learn import Draw, FastGRNNRouter
from learn.limits import ANCHOR_MAX
from workers.verbs import UPDATES

Quality = Callable[[FastGRNNRouter], dict[str, dict[str, float]]]  # {"A": {loss, apgr}, "B": ...}


def arms(lambdas: list[float], clocks: list[int]) -> list[tuple[str, float, bool, int]]:
    """(name, lambda, anchor at a boundary, clock period or 0) of every arm."""
    out = [("none", 0.0, False, 0)]
    for lam in lambdas:
        out.append((f"boundary, lambda {lam:g}", lam, True, 0))
        for n in clocks:
            out.append((f"clock {n}, lambda {lam:g}", lam, False, n))
            out.append((f"boundary + clock {n}, lambda {lam:g}", lam, True, n))
    return out


def run_arm(E: np.ndarray, S: np.ndarray, W: np.ndarray, seed: int, a_stream: np.ndarray,
            b_stream: np.ndarray, quality: Quality, lam: float, at_boundary: bool,
            clock: int) -> dict[str, Any]:
    kw = {"ewc_lambda": lam} if lam else {}
    r = FastGRNNRouter(in_dim=E.shape[1], targets=[WEAK, STRONG], epsilon=1.0, seed=seed, **kw)
    recent: deque[dict[str, Any]] = deque(maxlen=ANCHOR_MAX)
    anchors: list[tuple[int, str]] = []  # (position in the A-then-B stream, why)
    order = np.concatenate([a_stream, b_stream])
    end_a: dict[str, Any] = {}
    for pos, i in enumerate(order):
        draw = Draw.from_rng(np.random.default_rng([seed, int(i)]))  # as bench.forgetting_eval
        choice = r.route(E[i], draw=draw)["model"]
        q = float(S[i] if choice == STRONG else W[i])
        fired = r.record_outcome(choice, q, embedding=E[i])
        recent.append({"embedding": E[i], "target": choice, "quality": q})
        why = ("boundary" if at_boundary and fired else
               "clock" if clock and (pos + 1) % clock == 0 else None)
        if why:
            UPDATES["anchor_router"].apply(r, {"samples": list(recent)})
            anchors.append((pos, why))
        if pos + 1 == len(a_stream):
            end_a = quality(r)
    n_a = len(a_stream)
    return {
        "end_A": end_a, "after_B": quality(r),
        "anchors_A": [p for p, _ in anchors if p < n_a],
        "anchors_B": [(p - n_a, why) for p, why in anchors if p >= n_a],
    }


def run_seed(E: np.ndarray, S: np.ndarray, W: np.ndarray, seed: int, a_stream: np.ndarray,
             b_stream: np.ndarray, quality: Quality, lambdas: list[float],
             clocks: list[int]) -> dict[str, Any]:
    out = {}
    for name, lam, at_boundary, clock in arms(lambdas, clocks):
        out[name] = run_arm(E, S, W, seed, a_stream, b_stream, quality, lam, at_boundary, clock)
        x = out[name]
        print(f"  seed {seed} {name}: forgetting {x['after_B']['A']['loss'] - x['end_A']['A']['loss']:+.4f} "
              f"B APGR {x['after_B']['B']['apgr']:.3f} anchors A/B {len(x['anchors_A'])}/{len(x['anchors_B'])}",
              flush=True)
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """Mean ± sd over seeds of each arm (``runs``: one ``run_seed`` result per seed)."""
    def m(vals: list[float], fmt: str = ".3f") -> str:
        v = np.array(vals)
        return f"{v.mean():{fmt}} ± {v.std():{fmt}}"

    lines = ["| anchor | loss on A, end of A | loss on A after B | forgetting on A (loss increase) | "
             "APGR on A after B | APGR drop on A | loss on B | APGR on B | B APGR vs no EWC | anchors on A / on B |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in runs[0]:
        rs = [r[name] for r in runs]
        base = [r["none"] for r in runs]
        lines.append(
            f"| {name} | {m([x['end_A']['A']['loss'] for x in rs])} | {m([x['after_B']['A']['loss'] for x in rs])} | "
            f"{m([x['after_B']['A']['loss'] - x['end_A']['A']['loss'] for x in rs], '+.3f')} | "
            f"{m([x['after_B']['A']['apgr'] for x in rs])} | "
            f"{m([x['end_A']['A']['apgr'] - x['after_B']['A']['apgr'] for x in rs], '+.3f')} | "
            f"{m([x['after_B']['B']['loss'] for x in rs])} | {m([x['after_B']['B']['apgr'] for x in rs])} | "
            f"{m([x['after_B']['B']['apgr'] / b['after_B']['B']['apgr'] for x, b in zip(rs, base)])} | "
            f"{'; '.join(str(len(x['anchors_A'])) + '/' + str(len(x['anchors_B'])) for x in rs)} |")
    return "\n".join(lines)
