"""Write the version-3 router blob that tests/learn/test_learn_router_bandit.py reads.

Run against the last release that wrote version 3 (the commit before the router's Bayesian head):

    git worktree add /tmp/v3 <commit>
    PYTHONPATH=/tmp/v3 python tests/learn/data/make_v3_blobs.py

It records what that release answered for a probe (expected qualities, and the route with and
without a draw), so the test can check that the current code reads the old state to the same
answers: a version-3 router is an epsilon-greedy router, and stays one.
"""

import json
import pathlib

import numpy as np

from learn import Draw, FastGRNNRouter, SCHEMA_VERSION, to_bytes


def main() -> None:
    assert SCHEMA_VERSION == 3, "run this against the version-3 release"
    here = pathlib.Path(__file__).parent
    rng = np.random.default_rng(0)
    router = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, epsilon=0.3, seed=3,
                            costs={"a": 1.0}, cost_weight=0.1, shift_window=5)
    for i in range(40):
        x = rng.standard_normal(8)
        router.record_outcome("a" if i % 2 else "b", float(rng.random()), embedding=x)
    probe = rng.standard_normal(8)
    (here / "v3-router.safetensors").write_bytes(to_bytes(router))
    draws = [Draw(0.9, 1), Draw(0.1, 0), Draw(0.1, 1)]
    answers = {
        "probe": probe.tolist(),
        "expected_quality": router.expected_quality(probe).tolist(),
        "routes": [router.route(probe, estimated_tokens=2000, draw=d) for d in draws],
        "greedy": router.route(probe),
        "boundaries": router.boundaries,
        "settings": router.settings(),
    }
    (here / "v3-answers.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
