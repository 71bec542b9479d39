"""State written by the previous layout (version 2) is read on, not thrown away.

The blobs in ``data/`` were written by the version-2 release with
``data/make_v2_blobs.py``, which also recorded that release's answers for a
probe; the current code must give the same answers from the same state and
keep learning from it.
"""

import json
import pathlib

import numpy as np
import pytest
from safetensors.numpy import load as load_arrays

from learn import EWC, FastGRNNRouter, MicroLoRA, SCHEMA_VERSION, StateError, from_bytes, to_bytes
from learn.state import OLDEST_READABLE

DATA = pathlib.Path(__file__).parent / "data"
OLD = json.loads((DATA / "v2-answers.json").read_text())
PROBE = np.array(OLD["probe"])


def old_blob(kind: str) -> bytes:
    return (DATA / f"v2-{kind}.safetensors").read_bytes()


def test_version_2_is_the_oldest_layout_read():
    assert (OLDEST_READABLE, SCHEMA_VERSION) == (2, 7)


# The old release's answers came from another CPU's BLAS, whose summation order may differ in
# the last bit; a state read in a wrong layout moves them by far more (the test below checks that).
RTOL = 1e-12


def same_answer(got, recorded) -> bool:
    """Equal to a few units in the last place, never more: exact equality would test the BLAS."""
    return bool(np.allclose(np.asarray(got, dtype=float), np.asarray(recorded, dtype=float),
                            rtol=RTOL, atol=0.0))


def answers(router, lora, ewc) -> dict:
    return {"expected_quality": router.expected_quality(PROBE),
            "adapter": lora.apply(PROBE / np.linalg.norm(PROBE)),
            "penalty": ewc.penalty("p", PROBE)}


def old_cores() -> tuple:
    return tuple(from_bytes(old_blob(kind), kind) for kind in ("router", "instant", "ewc"))


def test_version_2_states_give_the_old_release_answers():
    router, lora, ewc = old_cores()
    for name, got in answers(router, lora, ewc).items():
        assert same_answer(got, OLD[name]), name
    assert ewc.boundaries == OLD["boundaries"]


def test_an_answer_one_ulp_away_is_the_same_answer():
    """What another machine's BLAS gave (one ulp off): the comparison must accept it."""
    for name in ("expected_quality", "adapter", "penalty"):
        recorded = np.asarray(OLD[name], dtype=float)
        assert same_answer(np.nextafter(recorded, np.inf), recorded), name
        assert same_answer(np.nextafter(recorded, -np.inf), recorded), name


def test_a_state_read_in_a_wrong_layout_gives_other_answers():
    """The tolerance still catches a misread layout: every array's elements reversed."""
    for kind, name in (("router", "expected_quality"), ("instant", "adapter"), ("ewc", "penalty")):
        state = from_bytes(old_blob(kind), kind).to_state()
        state.arrays = {k: np.ascontiguousarray(np.flip(a, axis=-1)) for k, a in state.arrays.items()}
        wrong = type(from_bytes(old_blob(kind), kind)).from_state(state)
        router, lora, ewc = old_cores()
        cores = {"router": router, "instant": lora, "ewc": ewc} | {kind: wrong}
        got = answers(cores["router"], cores["instant"], cores["ewc"])[name]
        assert not same_answer(got, OLD[name]), kind


def test_a_version_2_router_keeps_its_weights_and_gets_a_fresh_monitor():
    router = from_bytes(old_blob("router"), "router")
    stored = load_arrays(old_blob("router"))
    for name, value in router.to_state().arrays.items():
        if name.startswith("shift."):
            assert name not in stored
        else:
            assert np.array_equal(value, stored[name]), name
    assert (router.boundaries, router.shift_score, router.shift_window) == (0, None, 50)


@pytest.mark.parametrize("kind", ["router", "instant", "ewc"])
def test_an_upgraded_state_learns_on_and_is_written_in_the_current_layout(kind):
    core = from_bytes(old_blob(kind), kind)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal(8)
        if isinstance(core, FastGRNNRouter):
            core.record_outcome("a", 0.9, embedding=x)
        elif isinstance(core, MicroLoRA):
            core.learn(x / np.linalg.norm(x), "a", 0.9)
        else:
            assert isinstance(core, EWC)
            core.consolidate("p", x, x)
    blob = to_bytes(core)
    assert b'"schema_version":"7"' in blob
    assert to_bytes(from_bytes(blob, kind)) == blob


def test_a_version_2_blob_is_still_checked():
    blob = bytearray(old_blob("router"))
    blob[-1] ^= 1
    with pytest.raises(StateError, match="checksum"):
        from_bytes(bytes(blob), "router")
