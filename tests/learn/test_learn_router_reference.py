"""``FastGRNNRouter.route`` gives the answers of its first, plainest implementation, bit for bit.

``route`` was tuned for latency (issue 13: it is on every request's path), and equal state and
request must keep giving equal answers: the model, the context bucket, the exploration flag and
every bit of temperature, top_p and confidence. The reference below is the code before that
tuning, kept verbatim as the specification (it reads the router's state: the network's
parameters, the input statistics and the Bayesian head's arrays); the later changes are the
Thompson sample's spread, ``thompson_scale`` times the posterior's, and the epsilon floor's fade,
``epsilon_fade`` (learn/router_bayes.py). Routers of every policy and mode
(rule, EMA, network; a sketched and an unsketched Bayesian head; trained side heads; costs), asked
with and without a draw, token estimate and adapter logits, must answer as it does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from learn import Draw, FastGRNNRouter, from_bytes, to_bytes
from learn.context import CONTEXT_BUCKETS
from learn.router_bayes import normal_list

_MASK = (1 << 64) - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ref_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ref_normals(k: int, n: int) -> np.ndarray:
    out = np.empty(n + (n & 1))
    state = k & _MASK
    for i in range(0, n, 2):
        u = []
        for _ in range(2):
            state = (state + _GOLDEN) & _MASK
            z = state
            z = ((z ^ (z >> 30)) * _M1) & _MASK
            z = ((z ^ (z >> 27)) * _M2) & _MASK
            z ^= z >> 31
            u.append(((z >> 11) + 0.5) / 2.0**53)
        r = math.sqrt(-2.0 * math.log(u[0]))
        out[i], out[i + 1] = r * math.cos(2.0 * math.pi * u[1]), r * math.sin(2.0 * math.pi * u[1])
    return out[:n]


def ref_heads(net, xs: np.ndarray) -> dict:
    p = net.p
    pre = net.W @ xs
    z = ref_sigmoid(pre + p["cell.b_z"])
    c = np.tanh(pre + p["cell.b_h"])
    g = net.zeta * (1.0 - z) + net.nu
    h = g * c
    zz = net.HW @ h + net.Hb
    if net.skip:
        zz[net.rows["model"]] += p["skip.W"] @ xs
    sg = ref_sigmoid(zz)
    rows = net.rows
    return {
        "quality": sg[rows["model"]],
        "bucket": zz[rows["bucket"]],
        "temperature": 0.1 + 1.4 * float(sg[rows["temperature"]][0]),
        "top_p": 0.5 + 0.5 * float(sg[rows["top_p"]][0]),
        "confidence": float(sg[rows["confidence"]][0]),
    }


def ref_bayes_score(head, xs: np.ndarray, router, draw) -> np.ndarray:
    if head.sketch is None:
        phi = np.concatenate(([1.0], xs))
    else:
        bucket = np.abs(head.sketch) - 1
        sign = np.sign(head.sketch) * math.sqrt((head.m - 1) / head.dim)
        sk = np.bincount(bucket, weights=sign * xs, minlength=head.m - 1)
        phi = np.empty(head.m)
        phi[0] = 1.0
        phi[1:] = sk
    mean = np.minimum(np.maximum(head.mu @ phi, 0.0), 1.0)
    var = (head.cov @ phi) @ phi
    p = head.moments[1] / head.moments[0]
    sd = np.sqrt(np.maximum(var, 0.0) * max(p * (1.0 - p), 0.05))
    if router.policy == "ucb":
        return mean + router.ucb_alpha * sd
    return mean if draw is None else mean + (router.thompson_scale * sd) * ref_normals(draw[1], len(mean))


def ref_route(r: FastGRNNRouter, x, estimated_tokens=None, adapter=None, draw=None) -> dict:
    x = np.asarray(x, dtype=np.float64)
    explore = None if draw is None else (float(draw.u), int(draw.k))
    bucket = None
    if estimated_tokens is not None:
        bucket = next((i for i, edge in enumerate((1024, 4096, 16384, 65536)) if estimated_tokens <= edge), 4)
    adapter = None if adapter is None else np.asarray(adapter, dtype=np.float64)
    mode = r.mode
    n = len(r.targets)
    cost = np.array([r.costs.get(t, 0.0) for t in r.targets], dtype=np.float64)
    if mode == "fastgrnn":
        xs = (x - r._norm.mean) * r._norm.scale
        out = ref_heads(r._net, xs)
        score = out["quality"] - r.cost_weight * cost
        if bucket is None:
            bucket = int(np.argmax(out["bucket"])) if r._bucket_updates else 0
        temperature, top_p, confidence = out["temperature"], out["top_p"], out["confidence"]
    else:
        score = r._ema - r.cost_weight * cost if mode == "ema" else np.zeros(n)
        bucket = 0 if bucket is None else bucket
        temperature, top_p, confidence = 0.7, 0.9, 0.5
    if r._bayes is not None:
        xs = (x - r._norm.mean) * r._norm.scale
        score = ref_bayes_score(r._bayes, xs, r, explore) - r.cost_weight * cost
    if adapter is not None:
        score = score + adapter
    choice = int(np.argmax(score))
    fewest = min(r.outcome_counts.values())
    rate = r.epsilon if r.epsilon_fade == 0 or fewest <= r.epsilon_fade else r.epsilon * (r.epsilon_fade / fewest)
    exploration = explore is not None and explore[0] < rate
    if exploration:
        choice = explore[1] % n
    return {"model": r.targets[choice], "context_bucket": CONTEXT_BUCKETS[bucket],
            "temperature": float(temperature), "top_p": float(top_p), "confidence": float(confidence),
            "algo": mode, "exploration": exploration}


TARGETS = ["small", "medium", "large", "huge"]


def trained(policy: str, in_dim: int, n_targets: int, outcomes: int, seed: int, **kw) -> FastGRNNRouter:
    """A router fed ``outcomes`` outcomes of every kind (embeddings with token estimates and the
    sampling values used, so that every head moves; a few without an embedding)."""
    r = FastGRNNRouter(in_dim=in_dim, targets=TARGETS[:n_targets], policy=policy, seed=seed, hidden=32, **kw)
    rng = np.random.default_rng(seed + 100)
    for i in range(outcomes):
        target, q = TARGETS[i % n_targets], float(rng.random())
        if i % 7 == 3:
            r.record_outcome(target, q)
            continue
        r.record_outcome(target, q, embedding=rng.standard_normal(in_dim) * 2.0 + 0.3,
                         estimated_tokens=int(rng.integers(0, 100_000)),
                         temperature=float(rng.uniform(0.1, 1.5)), top_p=float(rng.uniform(0.5, 1.0)))
    return r


CASES = {
    # name: (policy, in_dim, targets, outcomes, extra settings)
    "thompson, sketched head (in_dim above bayes_dim), as the service runs it":
        ("thompson", 48, 3, 120, {"bayes_dim": 16}),
    "thompson, unsketched head, costs": ("thompson", 12, 4, 90, {"costs": {"large": 1.0, "huge": 2.5},
                                                                 "cost_weight": 0.1, "epsilon": 0.3}),
    "thompson, the whole posterior's spread (a version-5 router)": ("thompson", 48, 3, 120,
                                                                   {"bayes_dim": 16, "thompson_scale": 1.0}),
    "thompson, never trained (rule mode)": ("thompson", 12, 3, 0, {}),
    "thompson, outcomes without embeddings only (EMA mode)": ("thompson", 12, 3, 0, {"trained": False}),
    "ucb, sketched head": ("ucb", 48, 3, 120, {"bayes_dim": 16, "ucb_alpha": 2.0}),
    "ucb, a faded epsilon floor": ("ucb", 12, 2, 120, {"epsilon": 0.5, "epsilon_fade": 20.0}),
    "ucb, a constant epsilon floor (a version-6 router)": ("ucb", 12, 2, 120, {"epsilon_fade": 0.0}),
    "epsilon, network": ("epsilon", 20, 3, 100, {"costs": {"medium": 0.5}, "cost_weight": 0.2}),
    "epsilon, rule mode, no exploration": ("epsilon", 20, 2, 0, {"epsilon": 0.0}),
    "epsilon, trained=True from the start": ("epsilon", 20, 2, 0, {"trained": True}),
}


def requests(in_dim: int, n: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        x = rng.standard_normal(in_dim) * (0.1, 1.0, 5.0)[i % 3] + rng.normal()
        tokens = None if i % 4 == 0 else int(rng.integers(0, 200_000))
        adapter = None if i % 5 else (rng.standard_normal(n) * 0.05).tolist()
        draw = None if i % 6 == 5 else Draw(float(rng.random()), int(rng.integers(0, 2**63)) * (1 + i % 2))
        yield x, tokens, adapter, draw


@pytest.mark.parametrize("name", CASES)
def test_route_answers_are_those_of_the_reference(name):
    policy, in_dim, n, outcomes, extra = CASES[name]
    r = trained(policy, in_dim, n, outcomes, seed=len(name), **extra)
    if name.startswith("thompson, outcomes without"):
        for i in range(20):
            r.record_outcome(TARGETS[i % n], (i % 5) / 4)
    restored = from_bytes(to_bytes(r), "router")
    chosen, explored = set(), 0
    for x, tokens, adapter, draw in requests(in_dim, n, 600, seed=len(name) + 1):
        want = ref_route(r, x, tokens, adapter, draw)
        for router in (r, restored):
            got = router.route(x, estimated_tokens=tokens, adapter_logits=adapter, draw=draw)
            assert got == want
            for key in ("temperature", "top_p", "confidence"):  # == on floats: also the same bits
                assert math.copysign(1.0, got[key]) == math.copysign(1.0, want[key])
        got = r.route(x.tolist(), estimated_tokens=tokens, adapter_logits=adapter, draw=draw)
        assert got == want
        chosen.add(want["model"])
        explored += want["exploration"]
    # the cases exercise what they claim: several targets chosen, exploration taken
    assert len(chosen) > 1 or name.startswith("epsilon, rule")
    assert explored > 0 or r.epsilon == 0.0


def test_the_reference_sees_trained_side_heads():
    """The side heads moved (else the comparison of temperature, top_p, confidence would be idle)."""
    r = trained("thompson", 48, 3, 120, seed=1, bayes_dim=16)
    out = r.route(np.ones(48), draw=Draw(0.5, 1))
    assert out["temperature"] != 0.7 and out["top_p"] != 0.9 and out["confidence"] != 0.5
    assert r._bucket_updates > 0 and r._bayes.sketch is not None


def test_normals_are_those_of_the_reference():
    for k in (0, 1, 7, 2**63 + 5, 2**64 - 1, 123456789012345):
        for n in (1, 2, 3, 4, 5, 64):
            assert np.array(normal_list(k, n)).tobytes() == ref_normals(k, n).tobytes()
