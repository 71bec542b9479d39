"""Beat's background jobs, run by a real beat process and worker with short periods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np

from bench._procs import wait_for
from kg.config import Settings
from workers.app import beat_schedule
from workers.events import event_bytes
from workers.store_keys import StateKeys

FAST = {"KG_BEAT_SWEEP_S": "1", "KG_BEAT_TRAIN_S": "1", "KG_BEAT_REPLAY_S": "2", "KG_BEAT_CONSOLIDATE_S": "2"}


def test_schedule_has_every_job() -> None:
    schedule = beat_schedule(Settings.from_env({}))
    assert {j["task"] for j in schedule.values()} == {
        "kg.sweep", "kg.train_routers", "kg.replay_routers", "kg.consolidate", "kg.consolidate_adapters",
        "kg.cluster_patterns"}
    assert all(j["options"]["expires"] == j["schedule"] for j in schedule.values())


def test_beat_trains_replays_anchors_snapshots_and_sweeps(workers, learn_session, env, tmp_path) -> None:
    ns = "beat"
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1", **FAST)
    assert d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 6}})["ok"]
    rng = np.random.default_rng(0)
    for i in range(300):
        x = rng.standard_normal(6)
        out = d({"verb": "record_outcome", "async": True, "body": {
            "namespace": ns, "target": "ab"[i % 2], "quality": float(x[0] > 0) if i % 2 else 0.5,
            "embedding": x.tolist()}})
        assert out["ok"]
    # an event whose trigger was lost: only the sweep can start its drain
    store.enqueue(ns, "ewc", "orphan", event_bytes("orphan", "record_loss", {"loss": 1.0}, False), trigger=False)

    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO"],
                            env=dict(env, **FAST), cwd=tmp_path, stdout=open(tmp_path / "beat.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ids() -> list[str]:
            return [eid for _, eid, _, _ in store.applied_log(ns, "router")]

        wait_for(lambda: any(i.startswith("anchor-v") for i in ids()) and any(i.startswith("replay-v") for i in ids())
                 and any(i.startswith("train-") for i in ids()), 60, "training, replay and anchor events",
                 every=0.2)
        wait_for(lambda: store.result(ns, "ewc", "orphan") not in (None, {"status": "pending"}), 20,
                 "the sweep to drain the orphan event")
        beats = d({"verb": "health", "body": {"namespace": ns}})["data"]["workers"]
        assert {w["role"] for w in beats} == {"worker", "beat"}
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
    log = store.applied_log(ns, "router")
    assert all(ok for *_, ok in log)
    trained = [i for i in ids() if i.startswith("train-")]
    assert len(trained) == len(set(trained))
    first, last = trained[0].split("-")[1:]
    assert int(first) == 2  # the outcomes after the init event, in order
    state = store.load(ns, "router").core().to_state()
    assert state.scalars["anchored"], "the router carries an EWC anchor"
    assert store.r.llen(StateKeys.of(ns, "router").snaps) >= 1
    assert store.result(ns, "ewc", "orphan")["ok"]
    assert not list(tmp_path.glob("celerybeat-schedule*")), "beat keeps no shelve (pickle) file"
