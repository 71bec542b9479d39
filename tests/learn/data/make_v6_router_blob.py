"""Write the version-6 UCB router blob that tests/learn/test_learn_router_bandit.py reads.

Run against the last release that wrote version 6 (the commit before ``epsilon_fade``):

    git worktree add /tmp/v6 <commit>
    PYTHONPATH=/tmp/v6 python tests/learn/data/make_v6_router_blob.py

It records that release's routes of a UCB router with an epsilon floor of 0.1 (draws below and
above the floor, and none) for a few probes, and the same after five more outcomes, so the test
can check that the current code reads the old state to the same answers (its floor stays at
epsilon, never fading) and learns on alike.
"""

import json
import pathlib

import numpy as np

from learn import SCHEMA_VERSION, Draw, FastGRNNRouter, to_bytes

TARGETS = ["a", "b", "c"]


def routes(router: FastGRNNRouter, probes: list[list[float]]) -> list[dict]:
    out = []
    for i, p in enumerate(probes):
        for draw in (Draw(0.05, 2 * i + 1), Draw(0.95, 7 * i + 3), None):
            out.append(router.route(p, estimated_tokens=3000, draw=draw))
    return out


def main() -> None:
    assert SCHEMA_VERSION == 6, "run this against the version-6 release"
    here = pathlib.Path(__file__).parent
    rng = np.random.default_rng(6)
    router = FastGRNNRouter(in_dim=12, targets=TARGETS, hidden=16, policy="ucb", bayes_dim=8,
                            epsilon=0.1, costs={"c": 1.0}, cost_weight=0.1, seed=6)
    for i in range(30):
        router.record_outcome(TARGETS[i % 3], float(rng.random()), embedding=rng.standard_normal(12).tolist())
    probes = [rng.standard_normal(12).tolist() for _ in range(16)]
    (here / "v6-router.safetensors").write_bytes(to_bytes(router))
    answers = {"probes": probes, "routes": routes(router, probes), "settings": router.settings(),
               "expected_quality": [router.expected_quality(p).tolist() for p in probes]}
    later = [(TARGETS[i % 3], float(rng.random()), rng.standard_normal(12).tolist()) for i in range(5)]
    for t, q, x in later:
        router.record_outcome(t, q, embedding=x)
    answers |= {"later": later, "routes_after": routes(router, probes)}
    (here / "v6-router-answers.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
