"""The pattern bank through the service (real redis-server, Celery workers and beat): trajectories
recorded one at a time and in bulk, stamped with the time they were queued, clustered by verb and
by the beat job exactly once per state version, and found with their statistics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np

from bench._procs import wait_for
from workers.app import make_app
from workers.store_keys import StateKeys
from workers.store_record import now_ms

NS = "pat"
DIM = 6
TARGETS = ["gpt", "mix"]


def axis(i: int, noise: float = 0.0, rng: np.random.Generator | None = None) -> list[float]:
    x = np.zeros(DIM)
    x[i] = 1.0
    if rng is not None:
        x += noise * rng.standard_normal(DIM)
    return x.tolist()


def trajectory(i: int, rng: np.random.Generator, **extra) -> dict:
    """Around axis 0: GPT-4 answered well; around axis 1: Mixtral answered badly."""
    x = axis(i % 2, 0.05, rng)
    return {"embedding": x, "quality": 0.9 if i % 2 == 0 else 0.2,
            "steps": [{"embedding": x, "target": TARGETS[i % 2]}], **extra}


def ok(d, verb: str, async_: bool = False, **body) -> dict:
    got = d({"verb": verb, "async": async_, "body": {"namespace": NS, **body}})
    assert got["ok"], got
    return got["data"]


def test_trajectories_are_recorded_one_and_in_bulk_clustered_by_verb_and_found(workers, learn_session) -> None:
    d = learn_session.dispatch
    workers("w1")
    rng = np.random.default_rng(0)
    assert ok(d, "init_patterns", dim=DIM, targets=TARGETS, k=2, seed=4)["k"] == 2
    before = now_ms()
    one = ok(d, "record_trajectory", **trajectory(0, rng), event_id="t0")
    assert one["buffered"] == 1 and one["patterns"] == 0 and one["recorded"] == 1
    again = d({"verb": "record_trajectory", "body": {"namespace": NS, **trajectory(0, rng), "event_id": "t0"}})
    assert again["ok"] and again["data"]["recorded"] == 1  # the same event id takes effect once
    bulk = ok(d, "record_trajectories", trajectories=[trajectory(i, rng) for i in range(1, 12)])
    assert bulk["events"] == 11 and bulk["applied"] == 11 and bulk["failed"] == []
    assert bulk["buffered"] == 12 and bulk["recorded"] == 12
    queued = ok(d, "record_trajectories", async_=True,
                trajectories=[trajectory(i, rng, event_id=f"b{i}") for i in range(12, 14)])
    assert queued["status"] == "queued" and queued["events"] == 2
    after = now_ms()
    found = ok(d, "find_patterns", embedding=axis(0))
    assert found["patterns"] == []  # nothing is clustered yet

    clustered = ok(d, "cluster_patterns")
    assert clustered["patterns"] == 2 and clustered["buffered"] == 0 and clustered["clusterings"] == 1
    assert clustered["recorded"] == 14  # the async pair was applied first: one queue, arrival order
    gpt = ok(d, "find_patterns", embedding=axis(0), k=2)
    best, other = gpt["patterns"]
    assert best["similarity"] > 0.99 > other["similarity"]
    assert best["count"] == 7 and abs(best["mean_quality"] - 0.9) < 1e-12
    assert best["targets"]["gpt"]["count"] == 7 and best["targets"]["mix"] == {"count": 0, "mean_quality": None}
    assert before <= best["last_seen_ms"] <= after  # stamped by the service when it was queued
    mix = ok(d, "find_patterns", embedding=axis(1), k=1)["patterns"]
    assert len(mix) == 1 and mix[0]["targets"]["mix"]["count"] == 7
    assert abs(mix[0]["targets"]["mix"]["mean_quality"] - 0.2) < 1e-12

    # health shows the bank; a read changes nothing
    version = learn_session.learning.store.version(NS, "patterns")
    health = d({"verb": "health", "body": {"namespace": NS}})["data"]["cores"]["patterns"]
    assert health["ready"] and health["patterns"] == 2 and health["buffered"] == 0
    assert ok(d, "find_patterns", embedding=axis(0), k=2) == gpt
    assert learn_session.learning.store.version(NS, "patterns") == version


def test_bad_trajectories_name_their_field_and_queue_nothing(workers, learn_session) -> None:
    d = learn_session.dispatch
    workers("w1")
    store = learn_session.learning.store
    ok(d, "init_patterns", dim=DIM, targets=TARGETS, max_steps=1)
    blob, depth = store.r.get(StateKeys.of(NS, "patterns").blob), store.depth(NS, "patterns")
    good = trajectory(0, np.random.default_rng(1))
    cases = [
        ("record_trajectory", dict(good, embedding=[0.0] * DIM), "embedding"),
        ("record_trajectory", dict(good, embedding=[1.0] * 3), "embedding"),
        ("record_trajectory", dict(good, quality=2.0), "quality"),
        ("record_trajectory", dict(good, steps=[{"embedding": axis(0), "target": "zz"}]), "steps.0.target"),
        ("record_trajectory", dict(good, steps=[{"embedding": [1.0]}]), "steps.0.embedding"),
        ("record_trajectory", dict(good, steps=[good["steps"][0]] * 2), "steps"),
        ("record_trajectory", dict(good, at_ms=5), "at_ms"),  # the service stamps the time
        ("record_trajectories", {"trajectories": [good, dict(good, quality=-1.0)]}, "trajectories.1.quality"),
        ("record_trajectories", {"trajectories": [good, good, dict(good, embedding=[0.0] * DIM)]},
         "trajectories.2.embedding"),
        ("record_trajectories", {"trajectories": []}, "trajectories"),
        ("find_patterns", {"embedding": axis(0), "k": 65}, "k"),
        ("find_patterns", {"embedding": [1.0] * 3}, "embedding"),
        ("init_patterns", {"dim": 8192, "targets": TARGETS, "max_trajectories": 1024}, "max_trajectories"),
        ("init_patterns", {"dim": 384, "targets": TARGETS, "k": 256, "max_trajectories": 4096}, "max_iter"),
        ("init_patterns", {"dim": 4, "targets": TARGETS, "quality_floor": 0.0}, "quality_floor"),
    ]
    for verb, body, field in cases:
        got = d({"verb": verb, "body": {"namespace": NS, **body}})
        assert got["ok"] is False and got["error"].startswith(f"{field}:"), (verb, field, got)
    assert store.r.get(StateKeys.of(NS, "patterns").blob) == blob and store.depth(NS, "patterns") == depth
    fresh = d({"verb": "record_trajectory", "body": {"namespace": "nobody", **good}})
    assert fresh["ok"] is False and fresh["error"].startswith("namespace:") and "init_patterns" in fresh["error"]


def test_the_beat_job_clusters_each_bank_once_per_state_version(workers, learn_session, env, settings,
                                                               tmp_path) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    w1 = workers("w1")
    rng = np.random.default_rng(2)
    ok(d, "init_patterns", dim=DIM, targets=TARGETS, k=2)
    ok(d, "record_trajectories", trajectories=[trajectory(i, rng) for i in range(8)])
    w1.stop()
    version = store.version(NS, "patterns")

    job = make_app(settings).tasks["kg.cluster_patterns"]  # the beat's task, run here twice
    assert job() == {"queued": {NS: "accepted"}}
    assert job() == {"queued": {NS: "duplicate"}}  # the same version: the same event, once
    assert store.depth(NS, "patterns") == 1
    workers("w2")
    wait_for(lambda: store.depth(NS, "patterns") == 0 and store.version(NS, "patterns") == version + 1, 30,
             "the clustering to be applied")
    assert [eid for _, eid, _, ok_ in store.applied_log(NS, "patterns") if eid.startswith("cluster-")] == \
        [f"cluster-v{version}"]
    assert job() == {"queued": {}}  # nothing new: nothing queued
    assert len(ok(d, "find_patterns", embedding=axis(0), k=5)["patterns"]) == 2

    # and on the beat's own clock: new trajectories are clustered, once per version
    ok(d, "record_trajectories", trajectories=[trajectory(i, rng) for i in range(8, 12)])
    second = store.version(NS, "patterns")
    fast = dict(env, KG_BEAT_CLUSTER_S="1")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO"],
                            env=fast, cwd=tmp_path, stdout=open(tmp_path / "beat.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: ok(d, "find_patterns", embedding=axis(0))["buffered"] == 0, 60,
                 "the beat to cluster the new trajectories", every=0.2)
        ids = [eid for _, eid, _, _ in store.applied_log(NS, "patterns") if eid.startswith("cluster-")]
        assert ids == [f"cluster-v{version}", f"cluster-v{second}"]
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
    counted = ok(d, "find_patterns", embedding=axis(0), k=2)["patterns"]
    assert sum(p["count"] for p in counted) == 12
