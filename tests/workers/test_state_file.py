"""State files: a namespace trained through the service, exported, imported into another Redis,
answers bit-identically there and learns on identically; bad files are refused naming what is
wrong with nothing written; an existing state is replaced only with ``--replace``, and the replaced
version stays for ``kg state rollback`` (real redis-servers and Celery workers)."""

from __future__ import annotations

import doctest
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import learn
import workers.state_format
from bench._procs import REPO, RedisServer, Worker, wait_for, worker_env
from kg.config import Settings
from kg.errors import Conflict
from service.root import Session
from workers.connect import redis_client
from workers.errors import StateFileError
from workers.state_file import load_state, read_state_file, save_state
from workers.state_format import FORMAT, MAX_FILE_BYTES, encode
from workers.store_keys import StateKeys
from workers.store_record import Record
from workers.weight_store import WeightStore

X = [0.5, -1.0, 0.25, 2.0, 0.0, 1.5, -0.75, 0.125]
Y = [-0.25, 0.75, 1.0, -1.5, 0.5, 0.0, 2.0, -0.5]
NODES = {"a": [0.1 * i for i in range(8)], "b": [1.0 - 0.1 * i for i in range(8)], "c": X}
READS = [
    ("route", {"embedding": X}),
    ("route", {"embedding": Y, "estimated_tokens": 300, "adapter_logits": [0.5, -0.5]}),
    ("apply_adapter", {"embedding": X}),
    ("apply_adapter", {"embedding": Y, "logits": [0.25, 0.75]}),
    ("apply_adapter", {"embedding": X, "parts": True}),
    ("ewc_penalty", {"param_id": "w", "params": Y}),
    ("attend", {"query": X, "now_ms": 1000,
                "subgraph": {"nodes": NODES, "edges": [{"src": "a", "dst": "b", "t_ms": 500},
                                                        {"src": "c", "dst": "a", "relation": "r"}]}}),
    ("find_patterns", {"embedding": X, "k": 3}),
    ("find_patterns", {"embedding": Y}),
]


def kg(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def answers(dispatch, ns: str, reads: list = READS) -> list[dict]:
    out = []
    for verb, body in reads:
        got = dispatch({"verb": verb, "body": {"namespace": ns, **body}})
        assert got["ok"], got
        out.append({k: v for k, v in got["data"].items() if k != "version"})
    return out


def train(dispatch, ns: str) -> None:
    """Every core initialised and moved on by updates the workers apply."""
    def ok(verb: str, **body) -> dict:
        got = dispatch({"verb": verb, "body": {"namespace": ns, **body}})
        assert got["ok"], got
        return got

    ok("init_instant", targets=["a", "b"], in_dim=8, seed=3)
    ok("init_router", targets=["a", "b"], in_dim=8, seed=5, costs={"a": 1.0, "b": 2.0}, cost_weight=0.1)
    ok("init_attention", dim=8, heads=2, seed=7, relations=["r"])
    for i, q in enumerate((0.9, 0.2, 0.7, 0.4)):
        ok("feedback", embedding=X if i % 2 else Y, model="ab"[i % 2], payload={"quality": q}, now_ms=i)
        ok("record_outcome", target="ab"[i % 2], quality=q, embedding=Y if i % 2 else X, estimated_tokens=100 + i)
        ok("record_loss", loss=1.0 + 0.1 * i)
    for i in range(8):  # enough buffered inputs for a BaseLoRA consolidation: the base moves too
        ok("feedback", embedding=(np.array(X) * (1 + 0.1 * i)).tolist(), model="ba"[i % 2],
           payload={"quality": 0.1 * i}, now_ms=10 + i)
    assert ok("consolidate_adapter")["data"]["consolidated"]
    ok("feedback", embedding=Y, model="a", payload={"quality": 0.95}, now_ms=20)  # micro moves on after it
    ok("consolidate", param_id="w", params=X, grads=Y)
    ok("train_router", epochs=2)
    ok("init_patterns", dim=8, targets=["a", "b"], k=3, seed=9)
    ok("record_trajectories", trajectories=[
        {"embedding": (np.array(X if i % 2 else Y) + 0.1 * i).tolist(), "quality": q,
         "steps": [{"embedding": X, "target": "ab"[i % 2]}] * (1 + i % 2)}
        for i, q in enumerate((0.9, 0.2, 0.7, 0.4, 1.0))])
    ok("cluster_patterns")
    ok("record_trajectory", embedding=Y, quality=0.5)  # one left buffered: it moves too


def states(client) -> list[bytes]:
    return sorted(client.keys("kg:w:*"))


@pytest.fixture
def second_stack(tmp_path: Path):
    """Another redis-server and its own KG_HOME: the other machine."""
    server = RedisServer(tmp_path / "b")
    server.start()
    env = worker_env(server.url, tmp_path / "home-b")
    started: list[Worker] = []
    yield server, env, started
    for w in started:
        w.kill9()
    server.stop()


def test_doctests() -> None:
    result = doctest.testmod(workers.state_format)
    assert result.attempted > 0 and result.failed == 0


def test_a_namespace_moves_to_another_redis_and_answers_bit_identically(
        workers, learn_session, env, tmp_path, second_stack) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    workers("w1")
    train(d, "trained")
    before = answers(d, "trained")
    assert before[-2]["patterns"] and before[-2]["buffered"] == 1
    parts = before[4]  # apply_adapter with its parts: a consolidated base beside the micro adapter
    assert parts["consolidations"] == 1 and any(parts["base"]) and any(parts["micro"])
    path = tmp_path / "trained.kgstate"
    out = kg(env, "state", "export", "-n", "trained", str(path))
    assert out.returncode == 0, out.stderr
    assert "5 core(s) written" in out.stdout

    server_b, env_b, started = second_stack
    out = kg(env_b, "state", "import", str(path), "-n", "moved")
    assert out.returncode == 0, out.stderr
    with Session(Settings.from_env(env_b)) as there:
        assert answers(there.dispatch, "moved") == before  # bit-identical: floats compared exactly
        store_b = there.learning.store
        for kind in ("instant", "ewc", "router", "attention", "patterns"):
            src, dst = store.load("trained", kind), store_b.load("moved", kind)
            assert dst.state == src.state and dst.updates == src.updates and dst.version == 1
            assert store_b.epoch("moved", kind) == 1  # checks of later events run against it
        assert sorted(k.core for k in store_b.states() if k.namespace == "moved") == \
            ["attention", "ewc", "instant", "patterns", "router"]  # the beat's sweeps and snapshots see it

        # and it learns on identically: the same updates on both sides, the same answers again
        started.append(Worker(env_b, "b1", tmp_path).start())
        for dispatch, ns in ((d, "trained"), (there.dispatch, "moved")):
            for verb, body in (("record_outcome", {"target": "b", "quality": 0.8, "embedding": X}),
                               ("feedback", {"embedding": Y, "model": "a", "payload": {"quality": 0.3},
                                             "now_ms": 9}),
                               ("consolidate", {"param_id": "w", "params": Y, "grads": X}),
                               ("cluster_patterns", {})):
                got = dispatch({"verb": verb, "body": {"namespace": ns, **body}})
                assert got["ok"], got
        assert answers(there.dispatch, "moved") == answers(d, "trained")
        assert answers(d, "trained") != before
    inspected = kg(env, "state", "inspect", str(path))
    assert inspected.returncode == 0, inspected.stderr
    manifest = json.loads(inspected.stdout)
    assert manifest["format"] == FORMAT and manifest["format_version"] == 1
    assert manifest["namespace"] == "trained" and manifest["service_version"] == "0.1.0"
    assert manifest["cores"]["router"]["updates"] > 0
    assert manifest["cores"]["router"]["sha256"] == read_state_file(path).parts["router"].sha256


def _file(tmp_path: Path, name: str = "good.kgstate", **cores) -> Path:
    """A state file of learn cores made here (no Redis involved)."""
    records = [Record.of(core, "src", 7, 11) for core in cores.values()]
    path = tmp_path / name
    path.write_bytes(encode("src", records, written_ms=1, service_version="0.1.0"))
    return path


def _rewrite_manifest(raw: bytes, change) -> bytes:
    """The file with its safetensors header changed by ``change(header)`` (the data untouched)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


class _WrongShape:
    """A router whose skip weights have the wrong shape, under a valid checksum (a file written by
    something other than this service)."""

    kind = "router"

    def __init__(self, router) -> None:
        self.router = router

    def to_state(self):
        state = self.router.to_state()
        name = next(n for n in state.arrays if n.startswith("param."))
        state.arrays[name] = np.zeros(state.arrays[name].shape[:-1] + (state.arrays[name].shape[-1] + 1,))
        return state


def test_a_bad_file_is_refused_naming_what_is_wrong_and_nothing_is_written(redis_server, settings, env,
                                                                            tmp_path) -> None:
    router = learn.FastGRNNRouter(in_dim=8, targets=["a", "b"], seed=1)
    good = _file(tmp_path, router=router, instant=learn.MicroLoRA(targets=["a", "b"], in_dim=8, seed=1))
    raw = good.read_bytes()
    flipped = bytearray(raw)
    flipped[-40] ^= 0x01  # one bit of the last part's data
    wrong = Record("router", "src", 7, 11, learn.to_bytes(_WrongShape(router)), 1)
    wrong_dim = encode("src", [wrong], written_ms=1, service_version="0.1.0")
    cases = {
        "truncated.kgstate": (raw[:-100], "truncated: 100 byte(s) missing"),
        "flipped.kgstate": (bytes(flipped), "SHA-256 mismatch"),
        "future.kgstate": (_rewrite_manifest(raw, lambda h: h["__metadata__"].update(format_version="2")),
                           "format version '2': this release reads versions 1 to 1 (the file was written "
                           "by a later release"),
        "other.kgstate": (_rewrite_manifest(raw, lambda h: h["__metadata__"].update(format="x")),
                          "not a state file"),
        "dims.kgstate": (wrong_dim, "router: array 'param."),
        "garbage.kgstate": (b"PK\x03\x04 a zip, not a state file", "not a state file"),
        "unlisted.kgstate": (_rewrite_manifest(raw, lambda h: h["__metadata__"].update(
            manifest=json.dumps({**json.loads(h["__metadata__"]["manifest"]), "cores": {}}))),
            "manifest lists no cores"),
    }
    store = WeightStore(redis_server.client(), settings.workers)
    assert states(store.r) == []
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(StateFileError) as caught:
            load_state(path, "target", settings=settings)
        assert reason in caught.value.reason, (name, caught.value.reason)
        assert str(path) in str(caught.value)
        assert states(store.r) == [], name  # nothing written, not even the registry
    with pytest.raises(StateFileError, match="has shape"):
        read_state_file(tmp_path / "dims.kgstate")

    # from the command line: exit 2, the reason on stderr, nothing written
    out = kg(env, "state", "import", str(tmp_path / "flipped.kgstate"), "-n", "target")
    assert out.returncode == 2 and "SHA-256 mismatch" in out.stderr and "flipped.kgstate" in out.stderr
    huge = tmp_path / "huge.kgstate"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: refused by its size, never read
    out = kg(env, "state", "import", str(huge))
    assert out.returncode == 2 and f"more than the {MAX_FILE_BYTES}" in out.stderr
    assert states(store.r) == []

    load_state(good, "target", settings=settings)  # the good file goes in
    assert store.version("target", "router") == 1 and store.load("target", "router").state == learn.to_bytes(router)


def test_an_existing_state_is_replaced_only_with_replace_and_stays_for_rollback(
        workers, redis_server, tmp_path) -> None:
    # history is kept at most once an hour: the replaced version must stay all the same
    env = worker_env(redis_server.url, tmp_path / "home", KG_STATE_HISTORY_EVERY_MS="3600000")
    settings = Settings.from_env(env)
    workers("w1", **{"KG_STATE_HISTORY_EVERY_MS": "3600000"})
    with Session(settings) as s:
        d = s.dispatch
        store = s.learning.store
        train(d, "shipped")
        path = tmp_path / "shipped.kgstate"
        save_state("shipped", path, cores=["router", "instant"], settings=settings)
        assert sorted(read_state_file(path).parts) == ["instant", "router"]
        shipped = answers(d, "shipped", READS[:4])  # router and instant

        assert d({"verb": "init_router", "body": {"namespace": "live", "targets": ["a", "b"], "in_dim": 8,
                                                  "seed": 99}})["ok"]
        for q in (0.1, 0.9, 0.5):
            assert d({"verb": "record_outcome", "body": {"namespace": "live", "target": "a", "quality": q,
                                                         "embedding": Y}})["ok"]
        live_version = store.version("live", "router")
        live_blob = store.load("live", "router").state
        live_route = d({"verb": "route", "body": {"namespace": "live", "embedding": X}})["data"]

        # refused: the router is held; and all or none: the instant core is not written either
        out = kg(env, "state", "import", str(path), "-n", "live")
        assert out.returncode == 2
        assert f"already holds router (version {live_version})" in out.stderr and "--replace" in out.stderr
        assert store.version("live", "router") == live_version and store.load("live", "router").state == live_blob
        assert store.version("live", "instant") == 0 and store.load("live", "instant") is None
        with pytest.raises(Conflict):
            load_state(path, "live", settings=settings)
        assert store.version("live", "instant") == 0

        out = kg(env, "state", "import", str(path), "-n", "live", "--replace")
        assert out.returncode == 0, out.stderr
        assert f"router     version {live_version} -> {live_version + 1}" in out.stdout
        assert "instant    version 0 -> 1" in out.stdout
        assert store.version("live", "router") == live_version + 1
        assert answers(d, "live", READS[:4]) == shipped
        # an update checked and applied on the imported router (its epoch is the import's)
        got = d({"verb": "record_outcome", "body": {"namespace": "live", "target": "b", "quality": 0.4,
                                                    "embedding": X}})
        assert got["ok"] and got["data"]["version"] == live_version + 2, got

        shown = json.loads(kg(env, "state", "show", "-n", "live", "--core", "router", "--json").stdout)
        kept = {v["version"] for v in shown[0]["versions"] if v["where"] != "current"}
        assert live_version in kept
        out = kg(env, "state", "rollback", "-n", "live", "--core", "router", "--to-version", str(live_version))
        assert out.returncode == 0, out.stderr
        assert store.load("live", "router").state == live_blob
        assert d({"verb": "route", "body": {"namespace": "live", "embedding": X}})["data"] | {"version": 0} == \
            live_route | {"version": 0}


def test_a_write_that_races_the_import_makes_it_read_and_check_again(learn_session, settings, tmp_path) -> None:
    """The WATCH of ``commit_states``: a commit in between aborts the transaction; the retry
    replaces the version that commit wrote, which stays in the history."""
    store = learn_session.learning.store
    ewc = learn.EWC()
    first = Record.of(ewc, "race", 1, 0)
    assert store.commit("race", "ewc", version=0, done=0, record=first, applied=[])[0]
    ewc.record_loss(2.0)
    calls: list[dict] = []

    def check(versions: dict[str, int]) -> None:
        calls.append(versions)
        if len(calls) == 1:  # a drain commits while the import is between its read and its write
            other = WeightStore(redis_client(settings), settings.workers)  # its own connection
            racing = Record.of(ewc, "race", 2, 1)
            assert other.commit("race", "ewc", version=1, done=0, record=racing, applied=[])[0]

    imported = Record.of(learn.EWC(), "elsewhere", 40, 9)
    replaced = store.commit_states("race", {"ewc": imported}, check)
    assert calls == [{"ewc": 1}, {"ewc": 2}] and replaced == {"ewc": 2}
    now = store.load("race", "ewc")
    assert now.version == 3 and now.state == imported.state and now.updates == 9 and now.namespace == "race"
    assert {r.version for _, r in store.history("race", "ewc")} >= {1, 2, 3}
    assert store.r.sismember("kg:w:states", StateKeys.of("race", "ewc").member)


def test_export_refuses_what_it_cannot_write(learn_session, settings, tmp_path) -> None:
    with pytest.raises(Exception, match="has no learned state to export"):
        save_state("empty", tmp_path / "x.kgstate", settings=settings)
    store = learn_session.learning.store
    assert store.commit("one", "ewc", version=0, done=0, record=Record.of(learn.EWC(), "one", 1, 0), applied=[])[0]
    with pytest.raises(Exception, match=r"has no state of \['router'\]"):
        save_state("one", tmp_path / "x.kgstate", cores=["ewc", "router"], settings=settings)
    assert not (tmp_path / "x.kgstate").exists()
    assert sorted(save_state("one", tmp_path / "x.kgstate", settings=settings).parts) == ["ewc"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x.kgstate")] == []  # no temp file left
    assert os.path.getsize(tmp_path / "x.kgstate") < MAX_FILE_BYTES
    with pytest.raises(StateFileError, match="cannot be written"):
        save_state("one", tmp_path / "no-such-dir" / "x.kgstate", settings=settings)


def test_events_queued_before_an_import_are_applied_on_the_imported_state(workers, learn_session,
                                                                          tmp_path) -> None:
    d = learn_session.dispatch
    store = learn_session.learning.store
    router = learn.FastGRNNRouter(in_dim=8, targets=["a", "b"], seed=21)
    path = _file(tmp_path, router=router)
    w1 = workers("w1")
    assert d({"verb": "init_router", "body": {"namespace": "q", "targets": ["a", "b"], "in_dim": 8}})["ok"]
    w1.stop()
    queued = d({"verb": "record_outcome", "async": True,
                "body": {"namespace": "q", "target": "b", "quality": 0.6, "embedding": X}})
    assert queued["ok"] and store.depth("q", "router") == 1, queued
    loaded = load_state(path, "q", replace=True, settings=learn_session.settings)
    assert loaded.replaced == {"router": 1} and store.version("q", "router") == 2
    workers("w2")
    ticket = queued["data"]["ticket"]
    wait_for(lambda: d({"verb": "poll", "body": {"ticket": ticket}})["data"]["status"] != "pending", 30,
             "the queued event to be applied")
    result = d({"verb": "poll", "body": {"ticket": ticket}})["data"]
    assert result["status"] == "applied" and result["version"] == 3, result
    router.record_outcome("b", 0.6, embedding=np.array(X))
    assert store.load("q", "router").state == learn.to_bytes(router)


DATA = Path(__file__).parent / "data"


def test_a_file_written_by_the_first_release_still_loads_and_answers_the_same(redis_server, settings) -> None:
    """``data/state-v1.kgstate`` was written by the release that introduced state files (format 1,
    learn state schema 3: every core initialised and moved on by updates), with the answers it gave
    then in ``state-v1-answers.json``. Every later release must load it and give those answers;
    if the format or a core's layout changes, this file stays and the reader learns to upgrade it."""
    expected = json.loads((DATA / "state-v1-answers.json").read_text())
    state_file = read_state_file(DATA / "state-v1.kgstate")
    assert state_file.format_version == 1 and state_file.namespace == "fixture"
    assert {k: p.state_schema_version for k, p in state_file.parts.items()} == \
        {"attention": 3, "ewc": 3, "instant": 3, "router": 3}
    loaded = load_state(DATA / "state-v1.kgstate", settings=settings)
    assert loaded.namespace == "fixture" and loaded.replaced == {"attention": 0, "ewc": 0, "instant": 0,
                                                                 "router": 0}
    with Session(settings) as s:
        got = answers(s.dispatch, "fixture", [tuple(r) for r in expected["reads"]])
    assert alike(got, expected["answers"])  # a tolerance: a later BLAS may sum in another order


def alike(got: object, want: object) -> bool:
    """Equal, floats within 1e-9 relative (a wrong layout or an unloaded array is far off that)."""
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(alike, got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(alike(got[k], want[k]) for k in want)
    return got == want
