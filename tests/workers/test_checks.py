"""workers.checks.learn_errors: a core's LearnInputError becomes the service's InvalidInput."""

import threading

import pytest

from kg.errors import InvalidInput
from learn import FastGRNNRouter, LearnInputError, MicroLoRA
from workers import checks
from workers import requests as rq


def test_a_learn_input_error_becomes_invalid_input_naming_the_same_field():
    with pytest.raises(InvalidInput) as info:
        with checks.learn_errors():
            raise LearnInputError("adapter_logits", "must be finite (no NaN or infinity)")
    assert (info.value.field, info.value.message) == ("adapter_logits", "must be finite (no NaN or infinity)")
    assert info.value.__cause__ is None and info.value.__suppress_context__  # raised "from None"


def test_a_core_refusal_inside_the_block_is_converted():
    router = FastGRNNRouter(in_dim=3, targets=["a", "b"])
    with pytest.raises(InvalidInput, match="^adapter_logits: expected 2 values, got 3$"):
        with checks.learn_errors():
            router.route([1.0, 2.0, 3.0], adapter_logits=[0.0, 0.0, 0.0])


def test_a_wrong_embedding_size_says_which_init_sets_the_size():
    """A client that called init_instant with its default size and sends 64-value embeddings
    learns what to change (the adapter's size is not the router's)."""
    adapter = MicroLoRA(targets=["weak", "strong"])
    feedback = rq.Feedback.model_validate({"namespace": "n", "embedding": [0.1] * 64, "model": "weak",
                                           "payload": {"quality": 1.0}, "now_ms": 0})
    with pytest.raises(InvalidInput) as info:
        checks.feedback(adapter, feedback)
    assert info.value.field == "embedding"
    assert info.value.message == "expected 384 values, got 64 (the adapter's in_dim: init_instant sets it, 384 unless given)"
    outcome = rq.RecordOutcome.model_validate({"namespace": "n", "target": "weak", "quality": 1.0,
                                               "embedding": [0.1] * 63})
    with pytest.raises(InvalidInput, match=r"^embedding: expected 64 values, got 63 \(the router's in_dim, set by init_router\)$"):
        checks.outcome(FastGRNNRouter(in_dim=64, targets=["weak", "strong"]), outcome)


def test_other_errors_and_answers_pass_through_unchanged():
    with pytest.raises(KeyError):
        with checks.learn_errors():
            raise KeyError("x")
    with pytest.raises(InvalidInput, match="^namespace: gone$"):
        with checks.learn_errors():
            raise InvalidInput("namespace", "gone")
    with checks.learn_errors():
        value = 7
    assert value == 7


def test_one_context_serves_threads_at_once():
    """The context holds no state: a refusal in one thread does not leak into another's block."""
    errors, barrier = [], threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(200):
            try:
                with checks.learn_errors():
                    if i % 2:
                        raise LearnInputError(f"f{i}", "bad")
            except InvalidInput as exc:
                errors.append((i, exc.field))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(errors)) == [(i, f"f{i}") for i in (1, 3, 5, 7)] and len(errors) == 800
