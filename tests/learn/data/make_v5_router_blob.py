"""Write the version-5 Thompson router blob that tests/learn/test_learn_router_bandit.py reads.

Run against the last release that wrote version 5 (the commit before ``thompson_scale``):

    git worktree add /tmp/v5 <commit>
    PYTHONPATH=/tmp/v5 python tests/learn/data/make_v5_router_blob.py

It records that release's routes of a Thompson router (with and without a draw) for a few probes,
and the same after five more outcomes, so the test can check that the current code reads the old
state to the same answers (its Thompson samples spread as the whole posterior) and learns on alike.
"""

import json
import pathlib

import numpy as np

from learn import SCHEMA_VERSION, Draw, FastGRNNRouter, to_bytes

TARGETS = ["a", "b", "c"]


def routes(router: FastGRNNRouter, probes: list[list[float]]) -> list[dict]:
    out = []
    for i, p in enumerate(probes):
        for draw in (Draw(0.9, 2 * i + 1), Draw(0.95, 7 * i + 3), None):
            out.append(router.route(p, estimated_tokens=3000, draw=draw))
    return out


def main() -> None:
    assert SCHEMA_VERSION == 5, "run this against the version-5 release"
    here = pathlib.Path(__file__).parent
    rng = np.random.default_rng(5)
    router = FastGRNNRouter(in_dim=12, targets=TARGETS, hidden=16, policy="thompson", bayes_dim=8,
                            epsilon=0.1, costs={"c": 1.0}, cost_weight=0.1, seed=5)
    for i in range(15):
        router.record_outcome(TARGETS[i % 3], float(rng.random()), embedding=rng.standard_normal(12).tolist())
    probes = [rng.standard_normal(12).tolist() for _ in range(16)]
    (here / "v5-router.safetensors").write_bytes(to_bytes(router))
    answers = {"probes": probes, "routes": routes(router, probes), "settings": router.settings(),
               "expected_quality": [router.expected_quality(p).tolist() for p in probes]}
    later = [(TARGETS[i % 3], float(rng.random()), rng.standard_normal(12).tolist()) for i in range(5)]
    for t, q, x in later:
        router.record_outcome(t, q, embedding=x)
    answers |= {"later": later, "routes_after": routes(router, probes)}
    (here / "v5-router-answers.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
