"""BaseLoRA through the service (real redis-server, Celery workers and beat): the
``consolidate_adapter`` verb and the ``kg.consolidate_adapters`` beat job each consolidate once,
and ``apply_adapter`` answers base + micro afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np

import learn
from bench._procs import wait_for
from kg.config import Settings
from workers.app import make_app

TARGETS = ["a", "b"]
LOGITS = [0.25, -0.25]


def feed(d, ns: str, n: int, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    xs = []
    for i in range(n):
        x = rng.standard_normal(8)
        xs.append((x / np.linalg.norm(x)).tolist())
        out = d({"verb": "feedback", "body": {"namespace": ns, "embedding": xs[-1], "model": TARGETS[i % 2],
                                             "payload": {"quality": float(x[0] > 0)}, "now_ms": i}})
        assert out["ok"], out
    return xs


def adapter(d, ns: str, x: list[float], logits: list[float] | None = None) -> dict:
    body = {"namespace": ns, "embedding": x, "parts": True}
    if logits is not None:
        body["logits"] = logits
    out = d({"verb": "apply_adapter", "body": body})
    assert out["ok"], out
    return out["data"]


def base_events(store, ns: str) -> list[tuple[str, bool]]:
    return [(eid, ok) for _, eid, _, ok in store.applied_log(ns, "instant") if eid.startswith("base-v")]


def test_the_verb_consolidates_once_and_apply_adapter_answers_base_plus_micro(workers, learn_session) -> None:
    ns = "verb"
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1")
    refused = d({"verb": "consolidate_adapter", "body": {"namespace": ns}})
    assert not refused["ok"] and "init_instant" in refused["error"]
    assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": TARGETS, "in_dim": 8}})["ok"]
    stored = store.load(ns, "instant").core()
    assert (stored.base_rank, stored.base_micro_scale, stored.base_lambda, stored.base_min_inputs) == \
        (8, 0.5, 1.0, 8)  # the settings' defaults, saved in the state
    xs = feed(d, ns, 20)
    before = adapter(d, ns, xs[-1], LOGITS)
    assert before["base"] == [0.0, 0.0] and before["consolidations"] == 0
    assert before["logits"] == [g + m for g, m in zip(LOGITS, before["micro"])]

    out = d({"verb": "consolidate_adapter", "body": {"namespace": ns, "event_id": "now-1"}})
    assert out["ok"], out
    assert out["data"]["consolidated"] and out["data"]["consolidations"] == 1 and out["data"]["inputs"] == 20
    again = d({"verb": "consolidate_adapter", "body": {"namespace": ns, "event_id": "now-1"}})
    assert again["ok"] and again["data"]["consolidations"] == 1  # the same event id: applied once
    assert [eid for _, eid, _, _ in store.applied_log(ns, "instant")].count("now-1") == 1

    after = adapter(d, ns, xs[-1], LOGITS)
    assert after["consolidations"] == 1
    assert after["micro"] == [m / 2 for m in before["micro"]]  # base_micro_scale 0.5: B halved
    assert after["logits"] == [g + (m + b) for g, m, b in zip(LOGITS, after["micro"], after["base"])]
    assert np.allclose(after["logits"], before["logits"], atol=0.02)  # the base took the micro's answers
    core = store.load(ns, "instant").core()
    assert after["base"] == core.apply_parts(np.array(xs[-1]))[0].tolist()
    plain = adapter(d, ns, xs[0])  # and without logits: base + micro alone
    assert plain["logits"] == core.apply(np.array(xs[0])).tolist()

    # with nothing new since, an event that asks for new updates changes nothing
    out = d({"verb": "consolidate_adapter", "body": {"namespace": ns, "min_new_updates": 1}})
    assert out["ok"] and not out["data"]["consolidated"] and out["data"]["consolidations"] == 1
    bad = d({"verb": "consolidate_adapter", "body": {"namespace": ns, "min_new_updates": -1}})
    assert not bad["ok"] and bad["error"].startswith("min_new_updates:"), bad


def test_the_beat_job_queues_one_consolidation_per_state_version(workers, learn_session, env) -> None:
    """The job run twice on the same state queues one event (``base-v{version}``), applied once."""
    ns = "job"
    d = learn_session.dispatch
    store = learn_session.learning.store
    w1 = workers("w1")
    assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": TARGETS, "in_dim": 8}})["ok"]
    assert d({"verb": "init_instant", "body": {"namespace": "quiet", "targets": TARGETS, "in_dim": 8}})["ok"]
    feed(d, ns, 12)
    feed(d, "quiet", 3)  # too few updates for the job
    version = store.version(ns, "instant")
    w1.stop()
    app = make_app(Settings.from_env(dict(env, KG_BASE_MIN_UPDATES="10")))
    job = app.tasks["kg.consolidate_adapters"]
    first, second = job.apply().get(), job.apply().get()  # run here; the drain waits for a worker
    assert first == {"queued": {ns: "accepted"}} and second == {"queued": {ns: "duplicate"}}
    assert store.depth(ns, "instant") == 1 and store.depth("quiet", "instant") == 0
    workers("w2")
    wait_for(lambda: store.depth(ns, "instant") == 0 and store.version(ns, "instant") == version + 1, 30,
             "the consolidation to be applied")
    assert base_events(store, ns) == [(f"base-v{version}", True)]
    core = store.load(ns, "instant").core()
    assert core.consolidations == 1 and core.pending_updates == 0 and core.params()["base_B"].any()
    assert job.apply().get() == {"queued": {}}  # nothing new since: nothing queued
    assert store.load("quiet", "instant").core().consolidations == 0
    health = {n: learn_session.dispatch({"verb": "health", "body": {"namespace": n}})["data"]["cores"]["instant"]
              for n in (ns, "quiet")}  # what an operator sees: consolidations, and updates since the last
    assert (health[ns]["consolidations"], health[ns]["pending_updates"]) == (1, 0)
    assert (health["quiet"]["consolidations"], health["quiet"]["pending_updates"]) == (0, 3)


def test_beat_runs_the_consolidation_on_its_schedule(workers, learn_session, env, tmp_path) -> None:
    ns = "beat"
    d = learn_session.dispatch
    store = learn_session.learning.store
    fast = {"KG_BEAT_BASE_S": "1", "KG_BASE_MIN_UPDATES": "10"}
    workers("w1", **fast)
    assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": TARGETS, "in_dim": 8}})["ok"]
    xs = feed(d, ns, 16)
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO"],
                            env=dict(env, **fast), cwd=tmp_path, stdout=open(tmp_path / "beat.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: base_events(store, ns), 60, "a consolidation queued by beat", every=0.2)
        first = store.load(ns, "instant").core()
        feed(d, ns, 12, seed=1)  # enough new updates: the next beat consolidates again
        wait_for(lambda: len(base_events(store, ns)) >= 2, 60, "a second consolidation", every=0.2)
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
    events = base_events(store, ns)
    assert all(ok for _, ok in events) and len(events) == len({eid for eid, _ in events})
    core = store.load(ns, "instant").core()
    assert first.consolidations == 1 and core.consolidations == len(events) == 2
    parts = adapter(d, ns, xs[0])
    assert parts["logits"] == [m + b for m, b in zip(parts["micro"], parts["base"])]
    assert parts["base"] != first.apply_parts(np.array(xs[0]))[0].tolist()  # the second one moved the base
    assert learn.from_bytes(store.load(ns, "instant").state, "instant").consolidations == 2
