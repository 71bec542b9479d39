"""Every counter ``health`` shows counts what its name says (issue 12 item 10).

``outcomes`` counts ``record_outcome`` calls: 15 calls read 45 after batch training and replay,
which counted their replayed samples as outcomes. A real worker applies the events here.
"""

from __future__ import annotations

import numpy as np

from bench._procs import wait_for

NS = "counters"
N = 15


def test_outcomes_count_record_outcome_calls_not_training_or_replay(workers, learn_session) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1")
    assert d({"verb": "init_router", "body": {"namespace": NS, "targets": ["a", "b"], "in_dim": 6}})["ok"]
    rng = np.random.default_rng(0)
    for i in range(N):
        x = rng.standard_normal(6)
        out = d({"verb": "record_outcome", "body": {"namespace": NS, "target": "ab"[i % 2],
                                                      "quality": float(x[0] > 0), "embedding": x.tolist()}})
        assert out["ok"], out
    trained = d({"verb": "train_router", "body": {"namespace": NS, "epochs": 3}})
    assert trained["ok"] and trained["data"]["samples"] == N, trained
    # a replay event exactly as beat's kg.replay_routers queues it (a sample of the logged outcomes)
    rows = store.outcomes(NS)[:6]
    samples = [{"embedding": o["embedding"], "target": o["target"], "quality": o["quality"]} for o in rows]
    learn_session.learning.submit(NS, "router", "train_router", {"samples": samples, "epochs": 1},
                                  event_id="replay-v1", wait=False)
    wait_for(lambda: "replay-v1" in [e for _, e, _, _ in store.applied_log(NS, "router")], 30,
             "the replay event to be applied")

    health = d({"verb": "health", "body": {"namespace": NS}})["data"]
    router = health["cores"]["router"]
    assert sum(router["outcomes"].values()) == N
    assert router["outcomes"] == {"a": 8, "b": 7}
    # updates: events applied since init_router (15 outcomes, one training, one replay)
    assert router["updates"] == health["updates"]["router"] == N + 2
    assert health["cores"]["router"]["boundaries"] == 0  # fewer than one 50-input window
    assert health["boundaries"] == 0 and health["fisher_keys"] == 0  # no loss or consolidate yet
    assert health["queue"]["pending_events"] == 0


def test_adapter_and_ewc_counters_count_their_own_events_not_replays(workers, learn_session) -> None:
    """The adapter replays a stored sample with every feedback once it holds 4: replays are steps,
    not updates. ``losses_seen`` counts record_loss calls, ``fisher_keys`` param ids."""
    d = learn_session.dispatch
    workers("w1")
    ns = "counters-instant"
    assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4}})["ok"]
    rng = np.random.default_rng(1)
    for i in range(7):
        out = d({"verb": "feedback", "body": {"namespace": ns, "embedding": rng.standard_normal(4).tolist(),
                                              "model": "ab"[i % 2], "payload": {"quality": 0.9}, "now_ms": i}})
        assert out["ok"] and out["data"]["updates"] == i + 1, out
    for i in range(5):
        assert d({"verb": "record_loss", "body": {"namespace": ns, "loss": 1.0 + 0.01 * i}})["ok"]
    for pid in ("w", "b", "w"):
        assert d({"verb": "consolidate", "body": {"namespace": ns, "param_id": pid, "params": [1.0],
                                                  "grads": [0.5]}})["ok"]
    health = d({"verb": "health", "body": {"namespace": ns}})["data"]
    assert health["updates"] == {"instant": 7, "router": 0, "ewc": 8, "attention": 0, "patterns": 0}
    assert health["cores"]["ewc"]["losses_seen"] == 5
    assert health["fisher_keys"] == health["cores"]["ewc"]["fisher_keys"] == 2
    assert health["boundaries"] == 0
