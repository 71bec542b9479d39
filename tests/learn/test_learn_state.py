"""Persistence: bit-exact round trips, save -> load -> continue == never stopped, bad blobs refused."""

from __future__ import annotations

import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import learn
from learn import (
    EWC,
    Draw,
    FastGRNNRouter,
    GraphAttention,
    MicroLoRA,
    StateError,
    from_bytes,
    to_bytes,
)
from learn.state import SCHEMA_VERSION, State


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)

# --- save -> load -> continue ---------------------------------------------------------------


def instant_ops(seed: int, n: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [
        (unit(rng, 12), ["a", "b", "c"][rng.integers(3)], float(rng.choice([0.0, 0.2, 0.5, 0.9, 1.0])))
        for _ in range(n)
    ]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), data=st.data())
def test_instant_save_load_continue_is_bit_identical(seed, n, data):
    cut = data.draw(st.integers(0, n))
    ops = instant_ops(seed, n)
    straight = MicroLoRA(targets=["a", "b", "c"], in_dim=12, seed=seed)
    for op in ops:
        straight.learn(*op)
    resumed = MicroLoRA(targets=["a", "b", "c"], in_dim=12, seed=seed)
    for op in ops[:cut]:
        resumed.learn(*op)
    resumed = from_bytes(to_bytes(resumed), "instant")
    for op in ops[cut:]:
        resumed.learn(*op)
    assert to_bytes(resumed) == to_bytes(straight)
    probe = unit(np.random.default_rng(seed + 1), 12)
    assert np.array_equal(resumed.apply(probe), straight.apply(probe))
    assert resumed.lr == straight.lr and resumed.updates == straight.updates


def test_instant_anchor_survives_a_restart():
    lora = MicroLoRA(targets=["a", "b"], in_dim=12, seed=0, ewc_lambda=10.0)
    for op in instant_ops(1, 10):
        if op[1] != "c":
            lora.learn(*op)
    lora.anchor({"A": np.full((2, 12), 0.5), "B": np.full((2, 2), 0.5)})
    copy = from_bytes(to_bytes(lora), "instant")
    for op in instant_ops(2, 20):
        if op[1] != "c":
            lora.learn(*op)
            copy.learn(*op)
    assert to_bytes(lora) == to_bytes(copy)


def ewc_ops(seed: int, n: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(n):
        if rng.random() < 0.5:
            pid = ["w", "b"][rng.integers(2)]
            shape = (3, 2) if pid == "w" else (4,)
            ops.append(("consolidate", pid, rng.standard_normal(shape), rng.standard_normal(shape)))
        else:
            ops.append(("record_loss", float(rng.standard_normal() + (5 if rng.random() < 0.1 else 0))))
    return ops


def run_ewc(ewc: EWC, ops) -> list:
    out = []
    for op in ops:
        if op[0] == "consolidate":
            ewc.consolidate(*op[1:])
        else:
            out.append(ewc.record_loss(op[1]))
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 60), data=st.data())
def test_ewc_save_load_continue_is_bit_identical(seed, n, data):
    cut = data.draw(st.integers(0, n))
    ops = ewc_ops(seed, n)
    straight = EWC()
    fired = run_ewc(straight, ops)
    resumed = EWC()
    first = run_ewc(resumed, ops[:cut])
    resumed = from_bytes(to_bytes(resumed), "ewc")
    assert first + run_ewc(resumed, ops[cut:]) == fired
    assert to_bytes(resumed) == to_bytes(straight)
    probe = np.ones((3, 2))
    assert resumed.penalty("w", probe) == straight.penalty("w", probe)
    assert resumed.boundaries == straight.boundaries


def run_router(r: FastGRNNRouter, xs, rule, start: int = 0) -> list[dict]:
    outs = []
    for i, x in enumerate(xs, start):
        draw = Draw.from_rng(np.random.default_rng([r.seed, i]))  # the caller's exploration draws
        out = r.route(x, estimated_tokens=100 * i, draw=draw)
        outs.append(out)
        r.record_outcome(out["model"], rule(x, out["model"]), embedding=x, estimated_tokens=100 * i)
        if i % 7 == 3:
            r.record_outcome("c", 0.5)  # an outcome without embedding: EMA only
    return outs


def router_rule(x, target):
    return float((x[0] > 0) == (target == "a"))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), data=st.data())
def test_router_save_load_continue_is_bit_identical(seed, n, data):
    cut = data.draw(st.integers(0, n))
    rng = np.random.default_rng(seed)
    xs = [unit(rng, 10) for _ in range(n)]
    make = lambda: FastGRNNRouter(  # noqa: E731
        in_dim=10, targets=["a", "b", "c"], hidden=16, epsilon=0.3, seed=seed, costs={"a": 1.0},
        shift_window=3,  # cuts fall inside windows, between windows and inside the ring's warm-up
    )
    straight = make()
    outs = run_router(straight, xs, router_rule)
    resumed = make()
    first = run_router(resumed, xs[:cut], router_rule)
    resumed = from_bytes(to_bytes(resumed), "router")
    assert first + run_router(resumed, xs[cut:], router_rule, cut) == outs
    assert to_bytes(resumed) == to_bytes(straight)


def test_router_batch_training_and_anchor_resume_identically(rng):
    X = np.array([unit(rng, 10) for _ in range(40)])
    ts = ["a" if i % 2 else "b" for i in range(40)]
    qs = [router_rule(x, t) for x, t in zip(X, ts)]
    a = FastGRNNRouter(in_dim=10, targets=["a", "b"], hidden=16, seed=1)
    a.train_batch(X[:20], ts[:20], qs[:20], epochs=2)
    a.anchor({"model.W": np.ones((2, 16)), "cell.V": np.full((8, 10), 0.1)})
    b = from_bytes(to_bytes(a), "router")
    for r in (a, b):
        r.train_batch(X[20:], ts[20:], qs[20:], epochs=2)
    assert to_bytes(a) == to_bytes(b)


# --- the blob itself ------------------------------------------------------------------------


def trained_cores():
    rng = np.random.default_rng(0)
    lora = MicroLoRA(targets=["a", "b"], in_dim=8, seed=0)
    router = FastGRNNRouter(in_dim=8, targets=["a", "b"], hidden=16, shift_window=2)
    ewc = EWC()
    for i in range(11):  # 5 input windows closed (4 scored), one half full
        x = unit(rng, 8) + (3.0 if i >= 8 else 0.0)
        lora.learn(x / np.linalg.norm(x), "a", 0.9)
        router.record_outcome("b", 0.3, embedding=x)
        ewc.consolidate("p", x, x * 2)
        ewc.record_loss(float(x[0]))
    return [lora, router, ewc, GraphAttention(dim=16, seed=1)]


def test_bytes_are_identical_across_processes():
    code = (
        "from learn import MicroLoRA, to_bytes; import sys;"
        "c = MicroLoRA(targets=['a','b'], in_dim=8, seed=4);"
        "[c.learn([0.1*i for i in range(8)], 'a', 0.9) for _ in range(5)];"
        "sys.stdout.buffer.write(to_bytes(c))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    c = MicroLoRA(targets=["a", "b"], in_dim=8, seed=4)
    for _ in range(5):
        c.learn([0.1 * i for i in range(8)], "a", 0.9)
    assert out == to_bytes(c)


def header(blob: bytes) -> tuple[int, dict]:
    (n,) = struct.unpack("<Q", blob[:8])
    return n, json.loads(blob[8 : 8 + n])


def with_metadata(blob: bytes, **changes: str) -> bytes:
    n, head = header(blob)
    head["__metadata__"].update(changes)
    text = json.dumps(head).encode()
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


@pytest.mark.parametrize("core", trained_cores(), ids=lambda c: c.kind)
def test_wrong_kind_is_refused(core):
    other = "router" if core.kind != "router" else "instant"
    with pytest.raises(StateError, match="kind mismatch"):
        from_bytes(to_bytes(core), other)


def test_wrong_schema_or_version_is_refused():
    blob = to_bytes(MicroLoRA(targets=["a"], in_dim=4))
    with pytest.raises(StateError, match="schema_version"):
        from_bytes(with_metadata(blob, schema_version=str(SCHEMA_VERSION + 1)), "instant")
    with pytest.raises(StateError, match="schema mismatch"):
        from_bytes(with_metadata(blob, schema="something-else"), "instant")


def test_corruption_is_refused():
    blob = to_bytes(trained_cores()[0])
    flipped = bytearray(blob)
    flipped[-3] ^= 0x40
    with pytest.raises(StateError, match="checksum"):
        from_bytes(bytes(flipped), "instant")
    with pytest.raises(StateError):
        from_bytes(blob[: len(blob) // 2], "instant")
    with pytest.raises(StateError):
        from_bytes(b"\x00" * 3, "instant")
    with pytest.raises(StateError):
        from_bytes(b"not a safetensors blob at all", "instant")
    with pytest.raises(StateError):
        from_bytes("a string", "instant")  # type: ignore[arg-type]
    tampered = with_metadata(blob, scalars=json.dumps({"lr": 1.0}))
    with pytest.raises(StateError, match="checksum"):
        from_bytes(tampered, "instant")


class Forged:
    """Writes an arbitrary State under a real kind, with a valid checksum."""

    def __init__(self, kind: str, state: State) -> None:
        self.kind, self.state = kind, state

    def to_state(self) -> State:
        return self.state


def forge(core, settings=None, scalars=None, arrays=None, drop=()):
    st_ = core.to_state()
    arrs = {k: v for k, v in {**st_.arrays, **(arrays or {})}.items() if k not in drop}
    return to_bytes(
        Forged(core.kind, State({**st_.settings, **(settings or {})}, {**st_.scalars, **(scalars or {})}, arrs))
    )


def test_shape_dtype_and_missing_arrays_are_refused():
    lora = trained_cores()[0]
    with pytest.raises(StateError, match="shape"):
        from_bytes(forge(lora, settings={"in_dim": 9}), "instant")
    with pytest.raises(StateError, match="shape"):
        from_bytes(forge(lora, arrays={"B": np.zeros((2, 3))}), "instant")
    with pytest.raises(StateError, match="dtype"):
        from_bytes(forge(lora, arrays={"replay_t": np.zeros(64)}), "instant")
    with pytest.raises(StateError, match="missing"):
        from_bytes(forge(lora, drop=("A",)), "instant")
    with pytest.raises(StateError, match="out of range"):
        from_bytes(forge(lora, scalars={"replay_n": 99}), "instant")
    with pytest.raises(StateError, match="settings"):
        from_bytes(forge(lora, settings={"targets": []}), "instant")
    with pytest.raises(StateError, match="rng"):
        from_bytes(forge(lora, scalars={"rng": {"bit_generator": "PCG64"}}), "instant")
    router = trained_cores()[1]
    with pytest.raises(StateError, match="shape"):
        from_bytes(forge(router, settings={"hidden": 17}), "router")
    with pytest.raises(StateError, match="unexpected"):
        from_bytes(forge(router, arrays={"extra": np.zeros(2)}), "router")
    ewc = trained_cores()[2]
    with pytest.raises(StateError, match="shape"):
        from_bytes(forge(ewc, scalars={"shapes": [[3]]}), "ewc")
    att = trained_cores()[3]
    with pytest.raises(StateError, match="shape"):
        from_bytes(forge(att, arrays={"Wo": np.zeros((16, 15))}), "attention")


def test_everything_that_drives_the_next_update_is_in_the_blob():
    lora = trained_cores()[0]
    names = set(lora.to_state().arrays) | set(lora.to_state().scalars)
    assert {"A", "B", "replay_x", "replay_t", "replay_s", "fisher_A", "snapshot_A"} <= names
    assert {"lr", "updates", "replay_n", "replay_pos", "rng"} <= names
    router = trained_cores()[1]
    names = set(router.to_state().arrays) | set(router.to_state().scalars)
    assert {"param.cell.U", "param.model.W", "mask", "ema", "norm.mean", "rng"} <= names
    assert {"param.skip.W", "adagrad.cell.U", "adagrad.model.W", "adagrad.skip.W"} <= names
    assert {"shift.ref", "shift.sum", "shift.ring", "shift"} <= names
    assert router.to_state().scalars["shift"]["count"] == 1  # a window in progress is state too
    ewc = trained_cores()[2]
    names = set(ewc.to_state().arrays) | set(ewc.to_state().scalars)
    assert {"ring", "fisher.0", "snapshot.0", "ring_n", "boundaries"} <= names


def test_no_pickle_anywhere_in_learn():
    root = pathlib.Path(learn.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path.name


@pytest.mark.parametrize("old", ["1", "0"])
def test_blobs_of_layouts_older_than_the_oldest_readable_are_refused(old):
    assert SCHEMA_VERSION == 7
    for core in trained_cores():  # the version is global: every kind is refused alike
        with pytest.raises(StateError, match=f"expected 2 to 7, blob holds '{old}'"):
            from_bytes(with_metadata(to_bytes(core), schema_version=old), core.kind)


def test_router_blobs_in_the_first_and_second_layouts_are_refused_under_a_current_header():
    router = trained_cores()[1]
    # version 1: no optimizer state, no skip path
    v1 = [k for k in router.to_state().arrays if k.startswith("adagrad.") or "skip" in k]
    with pytest.raises(StateError, match="missing"):
        from_bytes(forge(router, drop=v1), "router")
    with pytest.raises(StateError, match="unexpected"):
        from_bytes(forge(router, settings={"optimizer": "sgd"}), "router")
    # version 2: no input-shift monitor
    v2 = [k for k in router.to_state().arrays if k.startswith("shift.")]
    with pytest.raises(StateError, match="missing"):
        from_bytes(forge(router, drop=v2), "router")
    st_ = router.to_state()
    no_shift = {k: v for k, v in st_.scalars.items() if k != "shift"}
    with pytest.raises(StateError, match="inconsistent"):
        from_bytes(to_bytes(Forged("router", State(st_.settings, no_shift, st_.arrays))), "router")
    with pytest.raises(StateError, match="out of range"):
        from_bytes(forge(router, scalars={"shift": {**st_.scalars["shift"], "ring_n": 11}}), "router")
    with pytest.raises(StateError, match="out of range"):
        from_bytes(forge(router, scalars={"shift": {**st_.scalars["shift"], "count": 2}}), "router")


def test_router_optimizer_state_survives_a_restart_mid_stream(rng):
    xs = [unit(rng, 10) for _ in range(60)]
    make = lambda: FastGRNNRouter(in_dim=10, targets=["a", "b"], hidden=16, epsilon=0.5, seed=3)  # noqa: E731
    straight, resumed = make(), make()
    run_router_ab = lambda r, part: [  # noqa: E731
        r.record_outcome(r.route(x, draw=d)["model"], router_rule(x, "a"), embedding=x)
        for x, d in part
    ]
    draws = np.random.default_rng(3)
    xs = [(x, Draw.from_rng(draws)) for x in xs]
    run_router_ab(straight, xs)
    run_router_ab(resumed, xs[:30])
    resumed = from_bytes(to_bytes(resumed), "router")
    run_router_ab(resumed, xs[30:])
    assert to_bytes(resumed) == to_bytes(straight)
    g2 = straight.to_state().arrays["adagrad.cell.V"]
    assert g2.any() and np.array_equal(resumed.to_state().arrays["adagrad.cell.V"], g2)
