"""One contract, run on every learning core (river's ``check_estimator`` idea).

For each core: its settings round-trip through the constructor and the state; its state
round-trips bit-exactly (``to_state``/``from_state`` and ``to_bytes``/``from_bytes``) and answers
the same afterwards; reads change nothing; seeding is reproducible; bad input raises
LearnInputError naming its field and leaves the state unchanged; bad settings name theirs.

A core enters the suite with one :class:`Case`: how to build and train it, its reads, its bad
calls and bad settings.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from learn import (
    EWC,
    Draw,
    FastGRNNRouter,
    GraphAttention,
    LearnInputError,
    MicroLoRA,
    PatternBank,
    from_bytes,
    peek_kind,
    to_bytes,
)

NAN, INF = float("nan"), float("inf")
NOW = 1_700_000_000_000


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def edge(src, dst, relation="knows", weight=1.0, age_ms=0):
    return {"src": src, "dst": dst, "relation": relation, "weight": weight, "t_ms": NOW - age_ms}


Call = tuple[Callable[..., Any], tuple, dict]
"""A bound method with its arguments."""


@dataclass
class Case:
    cls: type
    settings: dict[str, Any]
    train: Callable[[Any, np.random.Generator], None]
    reads: Callable[[Any, np.random.Generator], list[Call]]
    bad_calls: Callable[[Any, np.random.Generator], list[tuple[str, Callable[..., Any], tuple, dict]]]
    bad_settings: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def make(self, data_seed: int = 0, **changes: Any) -> Any:
        """A core built with the case's settings (and ``changes``), trained on data drawn from
        ``default_rng(data_seed)``."""
        core = self.cls(**{**self.settings, **changes})
        self.train(core, np.random.default_rng(data_seed))
        return core


def answers(case: Case, core: Any, seed: int = 1) -> list[Any]:
    """The answers of every read of ``case`` on ``core`` (arrays as lists, for equality)."""
    out = []
    for fn, args, kw in case.reads(core, np.random.default_rng(seed)):
        out.append(_plain(fn(*args, **kw)))
    return out


def _first_array(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else _first_array(value[0])


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tolist())
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- the cores ---------------------------------------------------------------------------


def _instant_train(lora: MicroLoRA, rng: np.random.Generator) -> None:
    """Feedback, a consolidation into the base, and more feedback: every array takes part."""
    x = unit(rng, 8)
    for _ in range(6):
        lora.learn(x, "a", 1.0)
    lora.consolidate()
    lora.learn(unit(rng, 8), "b", 0.0)


def _instant_reads(lora: MicroLoRA, rng: np.random.Generator) -> list[Call]:
    x = unit(rng, 8)
    return [(lora.apply, (x,), {}), (lora.apply, (x, [0.25, -1.0]), {}), (lora.params, (), {}),
            (lora.apply_parts, (x,), {})]


def _instant_bad(lora: MicroLoRA, rng: np.random.Generator) -> list:
    x = unit(rng, 8)
    return [
        ("embedding", lora.learn, ([0.1] * 7, "a", 1.0), {}),
        ("embedding", lora.learn, ([0.1] * 7 + [NAN], "a", 1.0), {}),
        ("embedding", lora.learn, ([0.1] * 7 + [INF], "a", 1.0), {}),
        ("embedding", lora.learn, (["0.1"] * 8, "a", 1.0), {}),
        ("embedding", lora.learn, ("not a vector", "a", 1.0), {}),
        ("target", lora.learn, (x, "zzz", 1.0), {}),
        ("target", lora.learn, (x, 0, 1.0), {}),
        ("quality", lora.learn, (x, "a", 1.5), {}),
        ("quality", lora.learn, (x, "a", NAN), {}),
        ("quality", lora.learn, (x, "a", "0.9"), {}),
        ("quality", lora.learn, (x, "a", True), {}),
        ("embedding", lora.apply, ([1.0] * 9,), {}),
        ("logits", lora.apply, (x, [1.0, 2.0, 3.0]), {}),
        ("fisher.A", lora.anchor, ({"A": np.ones((3, 8)), "B": np.ones((2, 2))},), {}),
        ("min_new_updates", lora.consolidate, (-1,), {}),
        ("min_new_updates", lora.consolidate, (1.5,), {}),
        ("embedding", lora.apply_parts, ([1.0] * 7,), {}),
    ]


def _ewc_train(ewc: EWC, rng: np.random.Generator) -> None:
    ewc.consolidate("w", [1.0, 2.0], [0.5, 0.5])
    ewc.record_loss(1.0)
    for i in range(11):  # the ring wraps, a boundary fires
        x = unit(rng, 8) + (3.0 if i >= 8 else 0.0)
        ewc.consolidate("p", x, x * 2)
        ewc.record_loss(float(x[0]))


def _ewc_reads(ewc: EWC, rng: np.random.Generator) -> list[Call]:
    p, q = rng.standard_normal(2), rng.standard_normal(8)
    return [(ewc.penalty, ("w", p), {}), (ewc.penalty_grad, ("w", p), {}), (ewc.penalty, ("p", q), {}),
            (ewc.penalty_grad, ("p", q), {}), (ewc.penalty, ("new", p), {}), (ewc.fisher, ("p",), {}),
            (ewc.snapshot, ("p",), {}), (ewc.param_ids, (), {})]


def _ewc_bad(ewc: EWC, rng: np.random.Generator) -> list:
    return [
        ("params", ewc.consolidate, ("w", [1.0, 2.0, 3.0], [0.5, 0.5, 0.5]), {}),
        ("grads", ewc.consolidate, ("w", [1.0, 2.0], [0.5]), {}),
        ("grads", ewc.consolidate, ("w", [1.0, 2.0], [0.5, NAN]), {}),
        ("params", ewc.consolidate, ("w", [1.0, INF], [0.5, 0.5]), {}),
        ("params", ewc.penalty, ("w", [1.0]), {}),
        ("param_id", ewc.consolidate, ("", [1.0], [1.0]), {}),
        ("param_id", ewc.consolidate, (7, [1.0], [1.0]), {}),
        ("loss", ewc.record_loss, (NAN,), {}),
        ("loss", ewc.record_loss, ("1.0",), {}),
        ("params", ewc.consolidate, ("w", [], []), {}),
    ]


def _router_train(r: FastGRNNRouter, rng: np.random.Generator) -> None:
    for _ in range(5):
        r.record_outcome("a", 1.0, embedding=unit(rng, 8))
    for i in range(11):  # with shift_window 2: 5 input windows closed (4 scored), one half full
        x = unit(rng, 8) + (3.0 if i >= 8 else 0.0)
        r.record_outcome("b", 0.3, embedding=x, estimated_tokens=100 * i)


def _router_reads(r: FastGRNNRouter, rng: np.random.Generator) -> list[Call]:
    calls: list[Call] = []
    for _ in range(10):
        x = unit(rng, 8)
        calls += [(r.expected_quality, (x,), {}), (r.route, (x,), {}),
                  (r.route, (x, 20000, [0.0, 0.1]), {"draw": Draw.from_rng(rng)})]
    x = unit(rng, 8)
    return calls + [(r.loss, (x, "b", 0.4), {}), (r.grads, (x, "a", 0.9), {}), (r.params, (), {})]


def _router_bad(r: FastGRNNRouter, rng: np.random.Generator) -> list:
    x = unit(rng, 8)
    return [
        ("embedding", r.route, ([0.1] * 7,), {}),
        ("embedding", r.route, ([NAN] * 8,), {}),
        ("estimated_tokens", r.route, (x,), {"estimated_tokens": -1}),
        ("estimated_tokens", r.route, (x,), {"estimated_tokens": 1.5}),
        ("adapter_logits", r.route, (x,), {"adapter_logits": [1.0]}),
        ("draw", r.route, (x,), {"draw": (0.1, 1)}),
        ("draw.u", r.route, (x,), {"draw": Draw(1.5, 1)}),
        ("draw.u", r.route, (x,), {"draw": Draw(NAN, 1)}),
        ("draw.k", r.route, (x,), {"draw": Draw(0.1, -1)}),
        ("draw.k", r.route, (x,), {"draw": Draw(0.1, 1.0)}),
        ("target", r.record_outcome, ("zzz", 1.0), {"embedding": x}),
        ("quality", r.record_outcome, ("a", -0.1), {"embedding": x}),
        ("quality", r.record_outcome, ("a", INF), {}),
        ("embedding", r.record_outcome, ("a", 1.0), {"embedding": [1.0] * 9}),
        ("embedding", r.record_outcome, ("a", 1.0), {"estimated_tokens": 10}),
        ("temperature", r.record_outcome, ("a", 1.0), {"embedding": x, "temperature": 3.0}),
        ("targets", r.train_batch, ([x, x], ["a", "nope"], [1.0, 0.0]), {}),
        ("qualities", r.train_batch, ([x, x], ["a", "b"], [1.0, 2.0]), {}),
        ("embeddings", r.train_batch, ([[1.0] * 3], ["a"], [1.0]), {}),
    ]


def _attention_train(att: GraphAttention, rng: np.random.Generator) -> None:
    """Attention learns nothing online; its one setter stands in for an update."""
    att.set_relation_bias("knows", rng.standard_normal(att.heads))


def _attention_reads(att: GraphAttention, rng: np.random.Generator) -> list[Call]:
    q = rng.standard_normal(att.dim)
    nodes = {f"n{i}": rng.standard_normal(att.dim) for i in range(10)}
    edges = [edge("n0", f"n{i}", age_ms=1000 * i) for i in range(1, 10)]
    return [(att.attend, (q, nodes, edges, NOW), {}), (att.relation_bias, ("knows",), {})]


def _attention_bad(att: GraphAttention, rng: np.random.Generator) -> list:
    q = rng.standard_normal(att.dim)
    nodes = {"a": rng.standard_normal(att.dim)}
    return [
        ("query", att.attend, (q[:-1], nodes, [], NOW), {}),
        ("query", att.attend, ([NAN] * att.dim, nodes, [], NOW), {}),
        ("subgraph.nodes", att.attend, (q, {"a": [INF] * att.dim}, [], NOW), {}),
        ("subgraph.nodes", att.attend, (q, [1, 2], [], NOW), {}),
        ("subgraph.edges", att.attend, (q, nodes, [{"src": "a"}], NOW), {}),
        ("subgraph.edges", att.attend, (q, nodes, [edge("a", "b", weight=NAN)], NOW), {}),
        ("subgraph.edges", att.attend, (q, nodes, "edges", NOW), {}),
        ("now_ms", att.attend, (q, nodes, [], 1.5), {}),
        ("bias", att.set_relation_bias, ("knows", [1.0]), {}),
    ]


def _trajectory(rng: np.random.Generator, dim: int = 8, steps: int = 2, targets=("a", "b")) -> dict:
    return {"embedding": rng.standard_normal(dim).tolist(), "quality": float(rng.random()),
            "steps": [{"embedding": rng.standard_normal(dim).tolist(), "target": targets[i % len(targets)]}
                      for i in range(steps)]}


def _patterns_train(bank: PatternBank, rng: np.random.Generator) -> None:
    """14 trajectories through a buffer of 6: clustered twice on the way, two left buffered."""
    for i in range(14):
        bank.record(_trajectory(rng, steps=i % 3), at_ms=NOW + i)


def _patterns_reads(bank: PatternBank, rng: np.random.Generator) -> list[Call]:
    calls: list[Call] = [(bank.centroids, (), {})]
    for _ in range(4):
        calls += [(bank.find, (rng.standard_normal(8), 2), {}), (bank.find, (rng.standard_normal(8),), {"k": 10})]
    return calls + [(bank.check, (_trajectory(rng),), {})]


def _patterns_bad(bank: PatternBank, rng: np.random.Generator) -> list:
    good = _trajectory(rng)
    x = good["embedding"]

    def t(**changes):
        return dict(good, **changes)

    return [
        ("embedding", bank.record, (t(embedding=x[:7]), NOW), {}),
        ("embedding", bank.record, (t(embedding=[0.0] * 8), NOW), {}),
        ("embedding", bank.record, (t(embedding=[NAN] + x[1:]), NOW), {}),
        ("embedding", bank.record, ({"quality": 0.5}, NOW), {}),
        ("quality", bank.record, (t(quality=1.5), NOW), {}),
        ("quality", bank.record, (t(quality="0.5"), NOW), {}),
        ("quality", bank.record, ({"embedding": x}, NOW), {}),
        ("at_ms", bank.record, (good, 1.5), {}),
        ("steps", bank.record, (t(steps=[{"embedding": x}] * 4), NOW), {}),
        ("steps", bank.record, (t(steps="none"), NOW), {}),
        ("steps.0", bank.record, (t(steps=["x"]), NOW), {}),
        ("steps.1.embedding", bank.record, (t(steps=[{"embedding": x}, {"embedding": x[:3]}]), NOW), {}),
        ("steps.0.target", bank.record, (t(steps=[{"embedding": x, "target": "zzz"}]), NOW), {}),
        ("steps.0.target", bank.record, (t(steps=[{"embedding": x, "target": 3}]), NOW), {}),
        ("trajectory", bank.record, (x, NOW), {}),
        ("steps.0.embedding", bank.check, (t(steps=[{"embedding": [INF] * 8}]),), {}),
        ("embedding", bank.find, (x[:7],), {}),
        ("embedding", bank.find, ([0.0] * 8,), {}),
        ("k", bank.find, (x, 0), {}),
        ("k", bank.find, (x, 1.5), {}),
    ]


CASES = {
    "instant": Case(
        MicroLoRA, {"targets": ["a", "b"], "in_dim": 8, "seed": 0, "base_min_inputs": 4}, _instant_train,
        _instant_reads, _instant_bad,
        bad_settings=[({"targets": t}, "targets") for t in ([], ["a", "a"], ["a", ""], "ab", [1, 2], None)]
        + [({"in_dim": bad}, "in_dim") for bad in (0, -1, 2.5, "384", True)]
        + [({"base_rank": 0}, "base_rank"), ({"base_micro_scale": 1.5}, "base_micro_scale"),
           ({"base_lambda": -1.0}, "base_lambda"), ({"base_fisher_decay": NAN}, "base_fisher_decay"),
           ({"base_ridge": 0.0}, "base_ridge"), ({"base_max_norm": -1.0}, "base_max_norm"),
           ({"base_min_inputs": 0}, "base_min_inputs")],
    ),
    "ewc": Case(
        EWC, {}, _ewc_train, _ewc_reads, _ewc_bad,
        bad_settings=[({"decay": 1.5}, "decay"), ({"ring_size": 0}, "ring_size"),
                      ({"ewc_lambda": NAN}, "ewc_lambda")],
    ),
    "router": Case(
        FastGRNNRouter, {"in_dim": 8, "targets": ["a", "b"], "epsilon": 0.5, "hidden": 16, "shift_window": 2},
        _router_train,
        _router_reads, _router_bad,
        bad_settings=[
            ({"targets": []}, "targets"),
            ({"targets": ["a", "a"]}, "targets"),
            ({"in_dim": 0}, "in_dim"),
            ({"epsilon": 1.5}, "epsilon"),
            ({"epsilon": NAN}, "epsilon"),
            ({"costs": {"zzz": 1.0}}, "costs"),
            ({"costs": {"a": -1.0}}, "costs"),
            ({"costs": []}, "costs"),
            ({"cost_weight": -1.0}, "cost_weight"),
            ({"cost_weight": None}, "cost_weight"),
            ({"trained": "yes"}, "trained"),
            ({"optimizer": "adam"}, "optimizer"),
            ({"skip": "yes"}, "skip"),
        ],
    ),
    # the router's Bayesian policies (learn/router_bayes.py); in_dim 8 over bayes_dim 4: the sketch
    "router-thompson": Case(
        FastGRNNRouter, {"in_dim": 8, "targets": ["a", "b"], "epsilon": 0.2, "hidden": 16, "shift_window": 2,
                         "policy": "thompson", "bayes_dim": 4},
        _router_train, _router_reads, _router_bad,
        bad_settings=[({"policy": "greedy"}, "policy"), ({"prior_precision": 0.0}, "prior_precision"),
                      ({"bayes_dim": 0}, "bayes_dim"), ({"bayes_dim": 257}, "bayes_dim"),
                      ({"ucb_alpha": -1.0}, "ucb_alpha"), ({"thompson_scale": -0.5}, "thompson_scale"),
                      ({"thompson_scale": 11.0}, "thompson_scale")],
    ),
    "router-ucb": Case(
        FastGRNNRouter, {"in_dim": 8, "targets": ["a", "b"], "epsilon": 0.0, "hidden": 16, "shift_window": 2,
                         "policy": "ucb", "prior_precision": 3.0},
        _router_train, _router_reads, _router_bad,
        bad_settings=[({"policy": 1}, "policy"), ({"ucb_alpha": NAN}, "ucb_alpha")],
    ),
    "attention": Case(
        GraphAttention, {"dim": 32, "seed": 0, "relations": ["knows", "works_at"]}, _attention_train,
        _attention_reads, _attention_bad,
        bad_settings=[({"dim": 30}, "dim"), ({"heads": 0}, "heads"), ({"relations": ["r", "r"]}, "relations")],
    ),
    "patterns": Case(
        PatternBank, {"dim": 8, "targets": ["a", "b"], "max_trajectories": 6, "k": 3, "max_steps": 3, "seed": 0},
        _patterns_train, _patterns_reads, _patterns_bad,
        bad_settings=[({"dim": 0}, "dim"), ({"targets": []}, "targets"), ({"k": 0}, "k"),
                      ({"max_trajectories": 0}, "max_trajectories"), ({"max_steps": -1}, "max_steps"),
                      ({"quality_floor": 0.0}, "quality_floor"), ({"quality_floor": 1.5}, "quality_floor"),
                      ({"step_weight": -1.0}, "step_weight"), ({"max_iter": 0}, "max_iter"),
                      ({"seed": -1}, "seed")],
    ),
}

KINDS = list(CASES)
"""Case names: a core's kind, or its kind and a mode (``router-thompson``)."""


def test_every_registered_core_is_in_the_suite():
    from learn.state import _KINDS

    assert set(_KINDS) == {case.cls.kind for case in CASES.values()}
    assert all(CASES[kind].cls is cls for kind, cls in _KINDS.items())


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_settings_round_trip_through_the_constructor_and_the_state(kind):
    case = CASES[kind]
    core = case.make()
    settings = core.settings()
    assert list(settings) == [p for p in inspect.signature(case.cls.__init__).parameters if p != "self"]
    assert json.loads(json.dumps(settings)) == settings  # JSON as it is
    assert case.cls(**settings).settings() == settings
    assert from_bytes(to_bytes(core), case.cls.kind).settings() == settings
    assert to_bytes(case.cls(**settings)) == to_bytes(case.cls(**case.settings))  # a fresh core
    settings_copy = core.settings()
    for value in settings_copy.values():  # a copy: changing it changes nothing in the core
        if isinstance(value, list):
            value.append("x")
    assert core.settings() == settings


@pytest.mark.parametrize("kind", KINDS)
def test_bad_settings_name_their_field(kind):
    case = CASES[kind]
    assert case.bad_settings
    for changes, name in case.bad_settings:
        with pytest.raises(LearnInputError) as info:
            case.cls(**{**case.settings, **changes})
        assert info.value.field == name, (changes, info.value.field)


# --- state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_is_bit_exact(kind):
    case = CASES[kind]
    core = case.make()
    blob = to_bytes(core)
    assert peek_kind(blob) == case.cls.kind == core.kind
    again = from_bytes(blob, core.kind)
    assert to_bytes(again) == blob
    via_state = case.cls.from_state(core.to_state())
    assert to_bytes(via_state) == blob
    for name, arr in core.to_state().arrays.items():
        for copy in (again, via_state):
            assert np.array_equal(copy.to_state().arrays[name], arr)
            assert copy.to_state().arrays[name].dtype == arr.dtype
    assert again.to_state().scalars == core.to_state().scalars
    assert answers(case, again) == answers(case, core)
    # and they go on alike: the same updates give the same bytes
    case.train(core, np.random.default_rng(9))
    case.train(again, np.random.default_rng(9))
    assert to_bytes(again) == to_bytes(core)


@pytest.mark.parametrize("kind", KINDS)
def test_a_restored_core_owns_its_arrays(kind):
    """from_state copies: a later update of the restored core leaves the state it came from."""
    case = CASES[kind]
    core = case.make()
    state = core.to_state()
    frozen = {k: v.copy() for k, v in state.arrays.items()}
    restored = case.cls.from_state(state)
    case.train(restored, np.random.default_rng(3))
    assert all(np.array_equal(state.arrays[k], v) for k, v in frozen.items())


# --- reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_reads_change_nothing(kind):
    case = CASES[kind]
    core = case.make()
    before = to_bytes(core)
    first = answers(case, core)
    assert to_bytes(core) == before
    assert answers(case, core) == first  # and a read answers alike when repeated


# --- seeding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_seeding_is_reproducible(kind):
    case = CASES[kind]
    a, b = case.make(5), case.make(5)
    assert to_bytes(a) == to_bytes(b)
    assert answers(case, a) == answers(case, b)
    if "seed" in case.settings:  # (EWC has no seed: nothing in it is drawn)
        other = case.make(5, seed=case.settings["seed"] + 1)
        assert to_bytes(other) != to_bytes(a)
        assert answers(case, other) != answers(case, a)
        fn, args, kw = case.reads(a, np.random.default_rng(1))[0]
        fn2, _, _ = case.reads(other, np.random.default_rng(1))[0]
        assert not np.allclose(_first_array(fn(*args, **kw)), _first_array(fn2(*args, **kw)))


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_names_the_field_and_leaves_state_unchanged(kind, rejects):
    case = CASES[kind]
    core = case.make()
    rng = np.random.default_rng(2)
    bad = case.bad_calls(core, rng)
    assert bad
    for name, fn, args, kw in bad:
        rejects(core, name, fn, *args, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_error_messages_never_echo_values(kind, rejects):
    case = CASES[kind]
    core = case.make()
    secret = [123456.789] * 5
    fn = {"instant": lambda: core.learn(secret, "a", 1.0), "ewc": lambda: core.penalty("w", secret),
          "router": lambda: core.route(secret), "attention": lambda: core.attend(secret, {}, [], NOW),
          "patterns": lambda: core.find(secret, 1)}[core.kind]
    err = rejects(core, {"ewc": "params", "attention": "query"}.get(core.kind, "embedding"), fn)
    assert "123456" not in str(err)
