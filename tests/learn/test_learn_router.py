"""FastGRNN router: sparsity, rule vs trained answers, exploration, adapter, buckets, costs, learning."""

from __future__ import annotations

import numpy as np
import pytest

from learn import (
    CONTEXT_BUCKETS,
    EWC,
    Draw,
    FastGRNNRouter,
    MicroLoRA,
    context_bucket,
)


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)

KEYS = {"model", "context_bucket", "temperature", "top_p", "confidence", "algo", "exploration"}


def synthetic_rule(x: np.ndarray) -> dict[str, float]:
    """Quality per target: "cheap" is right when x[0] > 0, "strong" when x[0] <= 0."""
    good = x[0] > 0
    return {"cheap": 1.0 if good else 0.0, "strong": 0.0 if good else 1.0}


@pytest.mark.parametrize("in_dim,hidden", [(384, 128), (64, 32), (1000, 128)])
def test_about_ninety_percent_of_input_weights_are_zero(in_dim, hidden):
    r = FastGRNNRouter(in_dim=in_dim, targets=["a", "b"], hidden=hidden)
    assert abs(r.sparsity_actual - 0.9) < 0.005
    assert r.params()["cell.U"].shape == (hidden, 8)
    assert r.params()["cell.V"].shape == (8, in_dim)


def test_sparsity_mask_is_fixed_while_learning(rng):
    r = FastGRNNRouter(in_dim=32, targets=["a", "b"], epsilon=0.0)
    zeros = r.sparsity_actual
    for _ in range(50):
        r.record_outcome("a", float(rng.random()), embedding=rng.standard_normal(32))
    assert r.sparsity_actual == zeros


def test_untrained_router_answers_by_rule(rng):
    r = FastGRNNRouter(in_dim=16, targets=["first", "second", "third"], epsilon=0.0)
    out = r.route(unit(rng, 16))
    assert set(out) == KEYS
    assert out == {
        "model": "first",
        "context_bucket": "1k",
        "temperature": 0.7,
        "top_p": 0.9,
        "confidence": 0.5,
        "algo": "rule",
        "exploration": False,
    }


def test_trained_flag_answers_from_the_network_with_rule_like_defaults(rng):
    r = FastGRNNRouter(in_dim=16, targets=["a", "b"], epsilon=0.0, trained=True)
    out = r.route(unit(rng, 16))
    assert out["algo"] == "fastgrnn"
    assert out["temperature"] == pytest.approx(0.7)
    assert out["top_p"] == pytest.approx(0.9)
    assert out["confidence"] == pytest.approx(0.5)
    assert 0.1 <= out["temperature"] <= 1.5 and 0.5 <= out["top_p"] <= 1.0


def test_router_learns_a_synthetic_rule_from_bandit_outcomes(rng):
    r = FastGRNNRouter(in_dim=16, targets=["strong", "cheap"], epsilon=0.2, seed=1)
    before = r.route(unit(rng, 16))
    assert before["algo"] == "rule"
    explore = np.random.default_rng(1)
    for _ in range(1500):
        x = unit(rng, 16)
        chosen = r.route(x, draw=Draw.from_rng(explore))["model"]  # only the chosen target's outcome is observed
        r.record_outcome(chosen, synthetic_rule(x)[chosen], embedding=x)
    r.epsilon = 0.0
    test = [unit(rng, 16) for _ in range(400)]
    hits = [synthetic_rule(x)[r.route(x)["model"]] for x in test]
    assert np.mean(hits) > 0.9  # a rule answer or a coin flip would be right about half the time
    assert r.route(test[0])["algo"] == "fastgrnn"


def test_train_batch_learns_the_same_rule(rng):
    X = np.array([unit(rng, 16) for _ in range(600)])
    targets = ["cheap" if i % 2 else "strong" for i in range(600)]
    qualities = [synthetic_rule(x)[t] for x, t in zip(X, targets)]
    r = FastGRNNRouter(in_dim=16, targets=["strong", "cheap"], epsilon=0.0, seed=2)
    first = r.train_batch(X, targets, qualities, epochs=1)
    last = r.train_batch(X, targets, qualities, epochs=3)
    assert last < first
    test = [unit(rng, 16) for _ in range(300)]
    assert np.mean([synthetic_rule(x)[r.route(x)["model"]] for x in test]) > 0.9


def test_outcome_ema_uses_alpha_point_one_and_drives_the_ema_mode(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0)
    r.record_outcome("b", 1.0)
    r.record_outcome("a", 0.0)
    assert r.outcome_ema["b"] == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)
    assert r.outcome_ema["a"] == pytest.approx(0.9 * 0.5)
    assert r.outcome_counts == {"a": 1, "b": 1}
    out = r.route(unit(rng, 8))
    assert out["algo"] == "ema" and out["model"] == "b"


def test_epsilon_zero_never_explores_and_one_always_does(rng):
    x = unit(rng, 8)
    draws = np.random.default_rng(0)
    greedy = FastGRNNRouter(in_dim=8, targets=["a", "b", "c"], epsilon=0.0)
    assert not any(greedy.route(x, draw=Draw.from_rng(draws))["exploration"] for _ in range(300))
    assert {greedy.route(x, draw=Draw.from_rng(draws))["model"] for _ in range(50)} == {"a"}
    explorer = FastGRNNRouter(in_dim=8, targets=["a", "b", "c"], epsilon=1.0)
    outs = [explorer.route(x, draw=Draw.from_rng(draws)) for _ in range(300)]
    assert all(o["exploration"] for o in outs)
    counts = {t: sum(o["model"] == t for o in outs) for t in "abc"}
    assert min(counts.values()) > 60  # roughly uniform over the three targets


def test_the_draw_decides_exploration_and_its_target(rng):
    """``u < epsilon`` explores, to target ``k % n``; no draw: the greedy answer, whatever epsilon."""
    x = unit(rng, 8)
    r = FastGRNNRouter(in_dim=8, targets=["a", "b", "c"], epsilon=0.25)
    assert r.route(x) == r.route(x, draw=Draw(0.25, 2)) == r.route(x, draw=Draw(1.0, 2))
    assert r.route(x)["model"] == "a" and not r.route(x)["exploration"]
    for k, target in ((0, "a"), (1, "b"), (5, "c"), (2**64 + 1, "c")):
        out = r.route(x, draw=Draw(0.2499, k))
        assert out["exploration"] and out["model"] == target
    assert FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=1.0).route(x)["exploration"] is False


def test_adapter_logits_bend_the_choice(rng):
    x = unit(rng, 16)
    rule = FastGRNNRouter(in_dim=16, targets=["a", "b"], epsilon=0.0)
    assert rule.route(x)["model"] == "a"
    assert rule.route(x, adapter_logits=[0.0, 0.3])["model"] == "b"

    learned = FastGRNNRouter(in_dim=16, targets=["a", "b"], epsilon=0.0)
    for _ in range(300):
        learned.record_outcome("a", 0.8, embedding=x)
        learned.record_outcome("b", 0.6, embedding=x)
    q = learned.expected_quality(x)
    gap = float(q[0] - q[1])
    assert gap > 0.05 and learned.route(x)["model"] == "a"
    assert learned.route(x, adapter_logits=[0.0, 0.5 * gap])["model"] == "a"  # a small nudge: no
    assert learned.route(x, adapter_logits=[0.0, 2.0 * gap])["model"] == "b"  # a strong one: yes

    # the real thing: an instant adapter that learned to like "b" for this input
    lora = MicroLoRA(targets=["a", "b"], in_dim=16, seed=0)
    for _ in range(600):
        lora.learn(x, "b", 1.0)
    bent = lora.apply(x)
    assert bent[1] - bent[0] > gap
    assert learned.route(x, adapter_logits=bent)["model"] == "b"


@pytest.mark.parametrize(
    "tokens,bucket",
    [
        (0, "1k"),
        (1, "1k"),
        (1024, "1k"),
        (1025, "4k"),
        (4096, "4k"),
        (4097, "16k"),
        (16384, "16k"),
        (16385, "64k"),
        (65536, "64k"),
        (65537, "64k+"),
        (10**9, "64k+"),
    ],
)
def test_context_bucket_edges(tokens, bucket, rng):
    assert context_bucket(tokens) == bucket
    r = FastGRNNRouter(in_dim=8, targets=["a"], epsilon=0.0)
    assert r.route(unit(rng, 8), estimated_tokens=tokens)["context_bucket"] == bucket


def test_bucket_head_learns_from_reported_token_counts(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a"], epsilon=0.0)
    for _ in range(200):
        r.record_outcome("a", 1.0, embedding=unit(rng, 8), estimated_tokens=20000)
    assert r.route(unit(rng, 8))["context_bucket"] == "64k"
    assert r.route(unit(rng, 8), estimated_tokens=10)["context_bucket"] == "1k"
    assert CONTEXT_BUCKETS.index("64k") == 3


def test_temperature_head_moves_towards_values_that_did_better(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a"], epsilon=0.0)
    for i in range(400):
        good = i % 2 == 0
        r.record_outcome(
            "a", 1.0 if good else 0.0, embedding=unit(rng, 8), temperature=0.2 if good else 1.2
        )
    assert r.route(unit(rng, 8))["temperature"] < 0.6


def test_cost_aware_choice(rng):
    x = unit(rng, 8)
    r = FastGRNNRouter(
        in_dim=8, targets=["big", "small"], epsilon=0.0, costs={"big": 1.0, "small": 0.0}
    )
    for _ in range(300):
        r.record_outcome("big", 0.9, embedding=x)
        r.record_outcome("small", 0.7, embedding=x)
    q = r.expected_quality(x)
    assert q[0] > q[1]
    assert r.route(x)["model"] == "big"  # cost_weight 0: quality only
    gap = float(q[0] - q[1])
    r.cost_weight = 0.5 * gap
    assert r.route(x)["model"] == "big"
    r.cost_weight = 2.0 * gap
    assert r.route(x)["model"] == "small"


def test_confidence_head_learns_where_the_estimate_is_reliable(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a"], epsilon=0.0, seed=3)
    for _ in range(1500):
        x = unit(rng, 8)
        noisy = x[0] > 0
        q = float(rng.integers(2)) if noisy else 1.0
        r.record_outcome("a", q, embedding=x)
    xs = [unit(rng, 8) for _ in range(300)]
    steady = [r.route(x)["confidence"] for x in xs if x[0] <= 0]
    noisy = [r.route(x)["confidence"] for x in xs if x[0] > 0]
    assert np.mean(steady) > np.mean(noisy) + 0.1


def test_ewc_anchor_keeps_the_model_head_near_its_snapshot(rng):
    def drift(anchored: bool) -> float:
        r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, seed=0, ewc_lambda=2000.0)  # the earlier default
        for _ in range(200):
            x = unit(rng, 8)
            r.record_outcome("a", 1.0 if x[0] > 0 else 0.0, embedding=x)
        ewc = EWC()
        for _ in range(200):
            x = unit(rng, 8)
            for name, g in r.grads(x, "a", 1.0 if x[0] > 0 else 0.0).items():
                ewc.consolidate(name, r.params()[name], g)
        snap = r.params()
        if anchored:
            r.anchor({k: ewc.fisher(k) for k in ewc.param_ids()})
        for _ in range(300):
            x = unit(rng, 8)
            r.record_outcome("a", 0.0 if x[0] > 0 else 1.0, embedding=x)  # the rule flips
        now = r.params()
        return float(np.linalg.norm(now["model.W"] - snap["model.W"]))

    assert drift(True) < 0.5 * drift(False)


# --- learning quality levers: skip path and AdaGrad -------------------------------------------


def test_skip_path_is_a_linear_read_of_the_standardised_input(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, trained=True, seed=4)
    x = unit(rng, 8)
    before = r.expected_quality(x)
    S = rng.standard_normal((2, 8))
    r._net.p["skip.W"][...] = S  # the learned matrix, set by hand to check the read-out
    z_before = np.log(before / (1.0 - before))
    after = r.expected_quality(x)
    z_after = np.log(after / (1.0 - after))
    xs = (x - r._norm.mean) * r._norm.scale  # no outcome yet: mean 0, unit scale
    assert np.allclose(z_after - z_before, S @ xs)
    plain = FastGRNNRouter(in_dim=8, targets=["a", "b"], skip=False)
    assert "skip.W" not in plain.param_names()
    assert "param.skip.W" not in plain.to_state().arrays


def test_skip_path_learns_from_outcomes_and_only_the_chosen_row_moves(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0)
    for _ in range(20):
        r.record_outcome("b", 1.0, embedding=unit(rng, 8))
    S = r.params()["skip.W"]
    assert np.all(S[0] == 0.0) and np.any(S[1] != 0.0)


def test_adagrad_accumulates_squared_gradients_and_shrinks_its_steps(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, lr=0.01)
    x = unit(rng, 8)
    r.record_outcome("b", 0.5, embedding=x)  # fixes the input normaliser for x (mean x from now on)
    g2_b = r.to_state().arrays["adagrad.model.b"][1]
    moves, g2 = [], 0.0
    for _ in range(30):
        g = r.grads(x, "a", 1.0)["model.b"][0]
        g2 += g * g
        b0 = r.params()["model.b"][0]
        r.record_outcome("a", 1.0, embedding=x)
        moves.append(r.params()["model.b"][0] - b0)
    assert r.to_state().arrays["adagrad.model.b"][0] == pytest.approx(g2)
    assert r.to_state().arrays["adagrad.model.b"][1] == g2_b  # "b" not chosen: no gradient
    assert moves[0] == pytest.approx(0.01)  # first step: lr * g / |g|, whatever the gradient's size
    assert all(0 < m2 < m1 for m1, m2 in zip(moves, moves[1:]))


def test_sgd_optimizer_keeps_a_constant_rate_and_has_no_accumulators(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, optimizer="sgd", lr=0.01)
    x = unit(rng, 8)
    r.record_outcome("b", 0.5, embedding=x)  # fixes the input normaliser for x
    for _ in range(3):
        g = r.grads(x, "a", 1.0)["model.b"][0]
        b0 = r.params()["model.b"][0]
        r.record_outcome("a", 1.0, embedding=x)
        assert r.params()["model.b"][0] - b0 == pytest.approx(-0.01 * g)
    assert not any(k.startswith("adagrad.") for k in r.to_state().arrays)


@pytest.mark.parametrize("optimizer,skip", [("adagrad", True), ("adagrad", False), ("sgd", False)])
def test_every_optimizer_learns_the_bandit_rule(optimizer, skip, rng):
    r = FastGRNNRouter(
        in_dim=16, targets=["strong", "cheap"], epsilon=0.2, seed=1, optimizer=optimizer, skip=skip,
        lr=0.01,
    )
    explore = np.random.default_rng(1)
    for _ in range(1500):
        x = unit(rng, 16)
        chosen = r.route(x, draw=Draw.from_rng(explore))["model"]
        r.record_outcome(chosen, synthetic_rule(x)[chosen], embedding=x)
    r.epsilon = 0.0
    test = [unit(rng, 16) for _ in range(400)]
    assert np.mean([synthetic_rule(x)[r.route(x)["model"]] for x in test]) > 0.9


def test_ewc_anchor_with_adagrad_pulls_entries_to_the_snapshot(rng):
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, seed=2, ewc_lambda=2000.0)  # the earlier default
    for _ in range(50):
        x = unit(rng, 8)
        r.record_outcome("a", float(x[0] > 0), embedding=x)
    snap = r.params()
    r.anchor({"skip.W": np.full((2, 8), 1.0)})
    free = FastGRNNRouter.from_state(r.to_state())
    free.anchor({})
    for _ in range(100):
        x = unit(rng, 8)
        for core in (r, free):
            core.record_outcome("a", float(x[0] <= 0), embedding=x)  # the rule flips
    held = np.linalg.norm(r.params()["skip.W"] - snap["skip.W"])
    moved = np.linalg.norm(free.params()["skip.W"] - snap["skip.W"])
    assert held < 0.2 * moved


def test_batch_training_and_replay_do_not_count_as_outcomes(rng):
    """``outcomes`` counts record_outcome calls (issue 12 item 10: 15 calls read 45 after the
    beat's training and replay passed over the logged samples)."""
    r = FastGRNNRouter(in_dim=8, targets=["a", "b"], epsilon=0.0, seed=0)
    xs = [unit(rng, 8) for _ in range(15)]
    ts = ["ab"[i % 2] for i in range(15)]
    qs = [float(x[0] > 0) for x in xs]
    for x, t, q in zip(xs, ts, qs):
        r.record_outcome(t, q, embedding=x)
    assert r.outcome_counts == {"a": 8, "b": 7}
    steps = r.updates
    r.train_batch(xs, ts, qs, epochs=2)  # batch training over the log
    r.train_batch(xs[:6], ts[:6], qs[:6])  # a replay of older samples
    assert r.outcome_counts == {"a": 8, "b": 7}
    assert r.updates == steps + 2 * 15 + 6, "training steps are counted as steps"
    assert FastGRNNRouter.from_state(r.to_state()).outcome_counts == {"a": 8, "b": 7}
