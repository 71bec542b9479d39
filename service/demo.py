"""The main job on the embedded default: start the stack, load real facts, ask as of when.

Loads YAGO11k (real facts with validity intervals) into namespace ``yago11k``,
then answers point-in-time questions on both time axes, including the
contradiction scenario (Alice moves from Acme to Globex).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kg.config import Settings
from service.root import Session
from kg.ingest import ingest, now_ms, require_path
from service.stack import Stack
from kg.timeparse import from_ms, to_ms

QUESTIONS = [
    ("Marc_Richards", "2006-06-01", "Who did Marc Richards play for in mid-2006?"),
    ("Marc_Richards", "2010-06-01", "... and in mid-2010?"),
    ("Stuart_Taylor_(footballer,_born_1980)", "2004-06-01", "Who did Stuart Taylor play for in mid-2004?"),
    ("Frances_Howard_(actress)", "1950-01-01", "Who was Frances Howard married to in 1950?"),
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(data: Path) -> int:
    require_path(data, "--data")  # before starting anything
    require_path(data / "yago11k", "--data")
    settings = Settings.from_env()
    Stack(settings).up(progress=lambda m: print(m, file=sys.stderr))
    settings = Settings.from_env()
    with Session(settings) as session:
        _say(f"== ingest {data / 'yago11k'} (re-running skips nothing and changes nothing)")
        report = ingest(session.store, "yago11k", data / "yago11k", settings.home, settings.batch_size)
        _say(report.summary())
        _say("\n== point-in-time questions (valid time)")
        for src, when, question in QUESTIONS:
            answer = session.dispatch({"verb": "query_at", "body": {
                "namespace": "yago11k", "src": src, "t": when}})
            objects = sorted({f"{e['dst']} ({e['relation']})" for e in answer["data"]}) if answer["ok"] else [answer["error"]]
            _say(f"{question}\n   -> {', '.join(objects) or 'nothing recorded'}")
        _say("\n== both axes: Alice moves from Acme to Globex")
        _alice(session)
    _say("\nThe stack keeps running; `kg status` reports it, `kg down` stops it.")
    return 0


def _alice(session: Session) -> None:
    ns = f"demo-{now_ms()}"
    t1, t2 = to_ms("2019-01-01", "t1"), to_ms("2021-06-01", "t2")
    learned_acme, learned_globex = to_ms("2019-01-05", "c1"), to_ms("2021-06-10", "c2")
    calls = [
        {"verb": "insert_edge", "body": {"namespace": ns, "id": "alice-acme", "src": "alice", "dst": "acme",
                                         "relation": "works_at", "valid_at": t1, "created_at": learned_acme}},
        {"verb": "contradict", "body": {"namespace": ns, "now_ms": learned_globex, "contradicts": ["alice-acme"],
                                        "new_edge": {"id": "alice-globex", "src": "alice", "dst": "globex",
                                                     "relation": "works_at", "valid_at": t2}}},
    ]
    for call in calls:
        assert session.dispatch(call)["ok"], call
    for label, t, known in [
        ("in 2019, as we know it now", "2019-07-01", None),
        ("in mid-2021, as we know it now", "2021-07-01", None),
        ("in mid-2021, as we knew it on 2021-06-05", "2021-07-01", "2021-06-05"),
    ]:
        body = {"namespace": ns, "src": "alice", "t": t}
        if known:
            body["known_at"] = known
        answer = session.dispatch({"verb": "query_at", "body": body})
        _say(f"Where did Alice work {label}? -> {', '.join(e['dst'] for e in answer['data'])}")
    history = session.dispatch({"verb": "history", "body": {"namespace": ns, "edge_id": "alice-acme"}})
    for v in history["data"]:
        valid_to = from_ms(v["valid_to"]) if v["valid_to"] is not None else "open"
        sys_to = from_ms(v["sys_to"]) if v["sys_to"] is not None else "open"
        _say(f"   alice-acme v{v['version']}: valid [{from_ms(v['valid_from'])}, {valid_to}) "
             f"believed [{from_ms(v['sys_from'])}, {sys_to})")
