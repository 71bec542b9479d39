"""Write the version-4 MicroLoRA blob that tests/learn/test_base_lora.py reads.

Run against the last release that wrote version 4 (the commit before the instant core's base
adapter):

    git worktree add /tmp/v4 <commit>
    PYTHONPATH=/tmp/v4 python tests/learn/data/make_v4_instant_blob.py

It records what that release answered for a probe, and what it answered after five more feedback
events (with replay and an EWC anchor, so every array of the state takes part), so the test can
check that the current code reads the old state to the same answers and learns on from it alike.
"""

import json
import pathlib

import numpy as np

from learn import MicroLoRA, SCHEMA_VERSION, to_bytes


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def main() -> None:
    assert SCHEMA_VERSION == 4, "run this against the version-4 release"
    here = pathlib.Path(__file__).parent
    rng = np.random.default_rng(4)
    lora = MicroLoRA(targets=["a", "b", "c"], in_dim=8, replay_size=16, ewc_lambda=5.0, seed=4)
    for i in range(30):
        lora.learn(unit(rng, 8), "abc"[i % 3], float(rng.random()))
    lora.anchor({"A": np.full((2, 8), 0.5), "B": np.full((2, 3), 2.0)})
    for i in range(10):
        lora.learn(unit(rng, 8), "abc"[i % 3], float(rng.random()))
    probe = unit(rng, 8)
    (here / "v4-instant.safetensors").write_bytes(to_bytes(lora))
    answers = {"probe": probe.tolist(), "apply": lora.apply(probe, [0.5, -0.5, 0.0]).tolist(),
               "settings": lora.settings(), "updates": lora.updates}
    later = [(unit(rng, 8).tolist(), "abc"[i % 3], float(rng.random())) for i in range(5)]
    for x, t, q in later:
        lora.learn(x, t, q)
    answers |= {"later": later, "apply_after": lora.apply(probe).tolist(), "lr_after": lora.lr,
                "params_after": {k: v.tolist() for k, v in lora.params().items()}}
    (here / "v4-answers.json").write_text(json.dumps(answers, indent=1) + "\n")


if __name__ == "__main__":
    main()
