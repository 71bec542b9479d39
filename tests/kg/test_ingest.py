"""Bulk ingest: real files, idempotent re-runs, resume after a kill, real YAGO11k data."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kg.ingest import Checkpoint, ingest
from kg.timeparse import to_ms
from kg.usercypher import run_read_only

DATA = Path(__file__).resolve().parents[2] / "data" / "temporal-kg"
COUNT = "MATCH ()-[r:FACT]->() WHERE r.ns = $ns RETURN count(r) AS versions, count(DISTINCT r.edge_id) AS ids"


def counts(session, ns):
    row = run_read_only(session.graph, COUNT, ns=ns, t=0, known_at=0)[0]
    return row["versions"], row["ids"]


def write_jsonl(path: Path, n: int, bad_every: int = 0) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                fh.write("{not json\n")
                continue
            rel = "works_at" if i % 10 == 0 else "knows"
            fh.write(json.dumps({"id": f"e{i}", "src": f"p{i % 97}", "dst": f"o{i % 301}", "relation": rel,
                                 "valid_at": 1_000 * i, "attributes": {"row": i}}) + "\n")
    return path


def test_jsonl_ingest_twice_leaves_the_graph_unchanged(store, session, ns, tmp_path):
    path = write_jsonl(tmp_path / "edges.jsonl", 1500, bad_every=100)
    first = ingest(store, ns, path, tmp_path, batch_size=400, progress=False)
    assert first.result.inserted == 1485 and first.skipped["invalid JSON"] == 15
    after_first = counts(session, ns)
    second = ingest(store, ns, path, tmp_path, batch_size=400, progress=False)
    assert second.result.inserted == 0 and second.result.unchanged == 1485
    assert counts(session, ns) == after_first
    # works_at is functional: edges of one subject contradicted each other, history kept
    assert after_first[0] > after_first[1] == 1485


def test_csv_and_tsv_with_iso_dates(store, ns, tmp_path):
    csv_path = tmp_path / "edges.csv"
    csv_path.write_text("id,src,dst,relation,valid_at,invalid_at,attributes\n"
                        'c1,alice,acme,knows,2019-01-01,2020-01-01,"{""k"": ""v, with comma""}"\n'
                        "c2,alice,bob,knows,1546300800000,,\n"
                        "c3,alice,carol,knows,not-a-date,,\n")
    report = ingest(store, ns, csv_path, tmp_path, progress=False)
    assert report.result.inserted == 2 and report.skipped["invalid valid_at"] == 1
    assert "invalid valid_at (at edges.csv:4 (id 'c3'))" in report.summary()
    assert store.get_edge(ns, "c1")["attributes"] == {"k": "v, with comma"}
    tsv_path = tmp_path / "edges.tsv"
    tsv_path.write_text("id\tsrc\tdst\tvalid_at\nt1\tx\ty\t1999-12-31T23:00:00+01:00\n")
    ingest(store, ns, tsv_path, tmp_path, progress=False)
    assert store.get_edge(ns, "t1")["valid_at"] == to_ms("1999-12-31T22:00:00Z", "t")


def _run_ingest(kg_env, path, ns, home):
    env = dict(kg_env)
    return subprocess.Popen([sys.executable, "-m", "service.cli", "ingest", str(path), "-n", ns, "--batch-size", "200", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_ingest_resumes_without_duplicates(kg_env, session, ns, tmp_path, sig):
    path = write_jsonl(tmp_path / "big.jsonl", 4000)
    home = Path(kg_env["KG_HOME"])
    checkpoint = Checkpoint(home, path, ns)
    proc = _run_ingest(kg_env, path, ns, home)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and checkpoint.load().get("items_done", 0) < 600:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "resume" in err, (proc.returncode, err[-3000:])
    done = checkpoint.load()["items_done"]
    assert 600 <= done < 4000
    rerun = _run_ingest(kg_env, path, ns, home)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"resumed after {done:,}" in err

    clean = ns + "-clean"
    clean_run = _run_ingest(kg_env, path, clean, home)
    clean_run.communicate(timeout=300)
    assert counts(session, ns) == counts(session, clean)
    assert counts(session, ns)[1] == 4000


def test_real_yago11k(store, session, ns, tmp_path):
    report = ingest(store, ns, DATA / "yago11k", tmp_path, batch_size=2000, progress=False)
    assert report.result.inserted == 20_437
    assert report.skipped == {"inverted interval": 70,
                              "malformed start date '307-13047-09'": 1,
                              "malformed start date '1963-64-65'": 1}
    summary = report.summary()
    assert "malformed start date '307-13047-09' (at train.txt:7436)" in summary
    assert "skipped 70: inverted interval (at " in summary and ", and 67 more)" in summary
    married = store.query_at(ns, "Frances_Howard_(actress)", to_ms("1950-01-01", "t"))
    assert [e["dst"] for e in married] == ["Samuel_Goldwyn"]


def test_prefetched_keeps_order_hands_over_errors_and_stops_its_thread():
    import threading

    from kg.ingest import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad row")

    got = []
    with pytest.raises(ValueError, match="bad row"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]

    before = threading.active_count()
    stream = prefetched(iter(range(2)), depth=1)
    assert next(stream) == 0
    time.sleep(0.3)  # the producer has queued 1 and now waits to queue its end marker
    stream.close()  # the consumer leaves early: the producer must not stay blocked on a full queue
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


@pytest.mark.parametrize("name", ["missing.jsonl", "missing-folder"])
def test_a_missing_file_or_folder_is_named(store, ns, tmp_path, name):
    from kg.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        ingest(store, ns, tmp_path / name, tmp_path, progress=False)
    assert str(info.value) == f"file: no such file: {tmp_path / name}"


@pytest.mark.parametrize("argv", [["ingest", "{missing}", "-n", "x"], ["demo", "--data", "{missing}"]])
def test_kg_ingest_and_demo_name_a_missing_path(tmp_path, argv):
    """Checked before anything starts: no stack is needed (KG_HOME is an empty folder)."""
    missing = tmp_path / "no-such-dataset"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("KG_")}
    env["KG_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "service.cli", *[a.format(missing=missing) for a in argv]],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"no such file: {missing}" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "home" / "stack.json").exists()


def test_jsonl_records_can_contradict_and_invalidate_stored_edges(store, ns, tmp_path):
    def ms(text):
        return to_ms(text, "t")

    path = tmp_path / "changes.jsonl"
    lines = [
        {"id": "job1", "src": "alice", "dst": "acme", "relation": "knows", "valid_at": "2015-01-01",
         "created_at": "2024-01-01"},
        {"id": "pal1", "src": "alice", "dst": "bob", "relation": "knows", "valid_at": "2016-01-01",
         "created_at": "2024-01-01"},
        # a later line contradicts an earlier one, and an invalidation ends another
        {"id": "job2", "src": "alice", "dst": "initech", "relation": "knows", "valid_at": "2019-06-01",
         "contradicts": ["job1"], "created_at": "2024-01-02"},
        {"invalidate": {"edge_id": "pal1", "invalid_at": "2020-01-01", "expired_at": "2024-01-03"}},
        {"invalidate": {"edge_id": "nobody", "invalid_at": "2020-01-01"}},
        {"invalidate": {"edge_id": "pal1"}},
        {"invalidate": {"edge_id": "pal1", "invalid_at": "2020-01-01"}, "id": "x"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first = ingest(store, ns, path, tmp_path, batch_size=2, progress=False)
    r = first.result
    assert (r.inserted, r.invalidated) == (3, 2) and [i for i, _ in r.rejected] == ["nobody"]
    assert first.skipped == {"invalid invalidate.invalid_at": 1, "invalid id": 1}
    assert store.get_edge(ns, "job1")["invalid_at"] == ms("2019-06-01")
    assert store.history(ns, "job1")[-1]["invalidated_by"] == "job2"
    assert store.get_edge(ns, "pal1")["invalid_at"] == ms("2020-01-01")
    assert store.history(ns, "pal1")[-1]["sys_from"] == ms("2024-01-03")
    # a known_at before the changes still sees both facts open
    before = {v["id"] for v in store.query_at(ns, "alice", ms("2021-01-01"), known_at=ms("2024-01-01"))}
    assert before == {"job1", "pal1"}
    again = ingest(store, ns, path, tmp_path, batch_size=2, progress=False)
    assert (again.result.inserted, again.result.invalidated, again.result.unchanged) == (0, 0, 4)
