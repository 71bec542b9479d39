"""Write the version-2 state blobs that tests/learn/test_learn_upgrade.py reads.

Run against the last release that wrote version 2 (commit 5188e38):

    git worktree add /tmp/v2 5188e38
    PYTHONPATH=/tmp/v2 python tests/learn/data/make_v2_blobs.py

It also records what that release answered for a probe, so the test can check
that the current code reads the old state to the same answers.
"""

import json
import pathlib

import numpy as np

from learn import EWC, FastGRNNRouter, MicroLoRA, SCHEMA_VERSION, to_bytes


def main() -> None:
    assert SCHEMA_VERSION == 2, "run this against the version-2 release"
    here = pathlib.Path(__file__).parent
    rng = np.random.default_rng(0)
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    router = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, epsilon=0.0, seed=3)
    ewc = EWC()
    for i in range(40):
        x = rng.standard_normal(8)
        lora.learn(x / np.linalg.norm(x), "a" if i % 3 else "b", float(rng.random()))
        router.record_outcome("a" if i % 2 else "b", float(rng.random()), embedding=x)
        ewc.consolidate("p", x, x * 2)
        ewc.record_loss(float(x[0]))
    probe = rng.standard_normal(8)
    for core in (lora, router, ewc):
        (here / f"v2-{core.kind}.safetensors").write_bytes(to_bytes(core))
    answers = {
        "probe": probe.tolist(),
        "expected_quality": router.expected_quality(probe).tolist(),
        "adapter": lora.apply(probe / np.linalg.norm(probe)).tolist(),
        "penalty": ewc.penalty("p", probe),
        "boundaries": ewc.boundaries,
    }
    (here / "v2-answers.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
