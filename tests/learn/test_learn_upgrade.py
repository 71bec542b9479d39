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
    assert (OLDEST_READABLE, SCHEMA_VERSION) == (2, 3)


def test_version_2_states_give_the_old_release_answers():
    """Equal to 1e-12 relative: the BLAS path of the CPU may change the last bit of a dot product
    (seen on another machine of the same kind), while a wrong layout changes every digit."""
    router = from_bytes(old_blob("router"), "router")
    lora = from_bytes(old_blob("instant"), "instant")
    ewc = from_bytes(old_blob("ewc"), "ewc")
    close = {"rtol": 1e-12, "atol": 0.0}
    np.testing.assert_allclose(router.expected_quality(PROBE), OLD["expected_quality"], **close)
    np.testing.assert_allclose(lora.apply(PROBE / np.linalg.norm(PROBE)), OLD["adapter"], **close)
    np.testing.assert_allclose(ewc.penalty("p", PROBE), OLD["penalty"], **close)
    assert ewc.boundaries == OLD["boundaries"]


def test_the_old_answers_catch_a_wrong_layout():
    """The tolerance above still tells a transposed adapter from the stored one."""
    lora = from_bytes(old_blob("instant"), "instant")
    lora._A[...] = lora._A[:, ::-1]  # the same numbers in another layout
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(lora.apply(PROBE / np.linalg.norm(PROBE)), OLD["adapter"],
                                   rtol=1e-12, atol=0.0)


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
    assert b'"schema_version":"3"' in blob
    assert to_bytes(from_bytes(blob, kind)) == blob


def test_a_version_2_blob_is_still_checked():
    blob = bytearray(old_blob("router"))
    blob[-1] ^= 1
    with pytest.raises(StateError, match="checksum"):
        from_bytes(bytes(blob), "router")
