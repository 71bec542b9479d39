"""A flipped byte in a stored blob is detected and reported; ``kg state rollback`` restores.

A process that holds a checked copy of the current version keeps answering from it; every load of
the stored bytes (a new process, a restarted worker, ``health``) finds the corruption, loudly.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench._procs import REPO, wait_for
from service.root import Session
from workers.app import publisher
from workers.events import event_bytes
from workers.store_keys import StateKeys


def kg(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_flipped_byte_is_loud_and_rollback_restores(workers, learn_session, settings, env) -> None:
    ns = "corrupt"
    d = learn_session.dispatch
    store = learn_session.learning.store
    w1 = workers("w1")
    assert d({"verb": "init_instant", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4}})["ok"]
    x = [0.5, -1.0, 0.25, 2.0]

    def feedback(dispatch, q: float) -> dict:
        return dispatch({"verb": "feedback", "body": {"namespace": ns, "embedding": x, "model": "a",
                                                      "payload": {"quality": q}, "now_ms": 0}})

    def apply(dispatch) -> dict:
        return dispatch({"verb": "apply_adapter", "body": {"namespace": ns, "embedding": x}})

    for q in (0.9, 0.8, 0.95):
        assert feedback(d, q)["ok"]
    before_last = apply(d)["data"]
    assert feedback(d, 0.99)["ok"]
    assert apply(d)["data"]["logits"] != before_last["logits"]

    key = StateKeys.of(ns, "instant").blob
    raw = bytearray(store.r.get(key))
    raw[len(raw) - 100] ^= 0x10  # one bit of one stored weight
    store.r.set(key, bytes(raw))
    version = store.version(ns, "instant")

    with Session(settings) as fresh:  # a process that loads the blob now
        out = apply(fresh.dispatch)
        assert not out["ok"] and "checksum mismatch" in out["error"] and "kg state rollback" in out["error"]
        out = feedback(fresh.dispatch, 0.9)  # never a silent re-initialisation
        assert not out["ok"] and "checksum mismatch" in out["error"]
    health = d({"verb": "health", "body": {"namespace": ns}})["data"]
    assert not health["cores"]["instant"]["ready"]
    assert "checksum mismatch" in health["cores"]["instant"]["error"]

    # a restarted worker refuses to apply on top of it: the event waits, the error is recorded
    w1.stop()
    workers("w2")
    store.enqueue(ns, "instant", "late", event_bytes("late", "feedback", {
        "embedding": x, "model": "b", "payload": {"quality": 0.1}, "now_ms": 0}, False))
    publisher(settings).send_task("kg.drain", args=[ns, "instant"])
    wait_for(lambda: store.error(ns, "instant"), 20, "the drain to report the corruption")
    assert store.version(ns, "instant") == version and store.depth(ns, "instant") == 1

    shown = kg(env, "state", "show", "-n", ns, "--core", "instant", "--json")
    assert shown.returncode == 1
    versions = json.loads(shown.stdout)[0]["versions"]
    assert versions[0] == {"where": "current", "intact": False, "problem": "checksum mismatch"}
    assert [v["version"] for v in versions[1:]] == list(range(version - 1, 0, -1))

    done = kg(env, "state", "rollback", "-n", ns, "--core", "instant")
    assert done.returncode == 0, done.stderr
    assert f"version {version} -> {version + 1} (the content of version {version - 1}" in done.stdout
    # the rollback re-triggers the waiting event, applied on top of the restored state
    wait_for(lambda: store.depth(ns, "instant") == 0, 20, "the waiting event to be applied")
    assert store.result(ns, "instant", "late")["ok"]
    assert store.version(ns, "instant") == version + 2 and store.error(ns, "instant") is None
    assert d({"verb": "health", "body": {"namespace": ns}})["data"]["cores"]["instant"]["ready"]
    assert feedback(d, 0.99)["ok"]
    assert kg(env, "state", "show", "-n", ns).returncode == 0


def test_rollback_to_a_chosen_version_answers_as_it_did(workers, learn_session, env) -> None:
    ns = "rollback"
    d = learn_session.dispatch
    workers("w1")
    assert d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 3,
                                              "epsilon": 0.0}})["ok"]
    answers = {}
    for i in range(4):
        out = d({"verb": "record_outcome", "body": {"namespace": ns, "target": "ab"[i % 2], "quality": 0.1 * i,
                                                    "embedding": [1.0, float(i), -1.0]}})
        answers[out["data"]["version"]] = d({"verb": "route", "body": {"namespace": ns,
                                                                      "embedding": [0.3, 0.2, 0.1]}})["data"]
    done = kg(env, "state", "rollback", "-n", ns, "--core", "router", "--to-version", "3")
    assert done.returncode == 0, done.stderr
    now = d({"verb": "route", "body": {"namespace": ns, "embedding": [0.3, 0.2, 0.1]}})["data"]
    assert now["version"] == 6
    assert {k: v for k, v in now.items() if k != "version"} == {
        k: v for k, v in answers[3].items() if k != "version"}
    missing = kg(env, "state", "rollback", "-n", ns, "--core", "router", "--to-version", "99")
    assert missing.returncode == 1 and "no version 99" in missing.stderr
