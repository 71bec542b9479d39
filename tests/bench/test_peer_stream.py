"""The peer benchmark's stream handling: it never holds the stream, and long streams stay inside
MariaDB's system time (pure: no servers)."""

from __future__ import annotations

from bench.graph_stream import LEARNED_FROM, TIMESTAMP_END_MS, learned_step, stream
from bench.peer_mariadb import batches, invalidations


def test_a_ten_million_edge_stream_and_its_later_invalidations_end_before_2038():
    for n in (100_000, 1_000_000, 10_000_000, 30_000_000):
        step = learned_step(n)
        assert step > 0 and step % 1000 == 0
        assert LEARNED_FROM + 2 * n * step < TIMESTAMP_END_MS
    assert learned_step(1_000_000) == 60_000  # the streams measured before keep their times


def test_invalidations_pick_distinct_ordinary_edges_of_the_stream_with_their_own_valid_time():
    n = 20_000
    records = {r["id"]: r for r in stream(n)}
    items = invalidations(n, 300)
    assert len(items) == len({edge_id for edge_id, _, _ in items}) == 300
    last_learned = max(r["created_at"] for r in records.values())
    for edge_id, invalid_at, expired_at in items:
        assert edge_id.startswith("e")
        assert invalid_at > records[edge_id]["valid_at"]
        assert expired_at > last_learned
    assert [e for _, _, e in items] == sorted(e for _, _, e in items)
    assert invalidations(n, 300) == items  # the same picks every run


def test_batches_yield_every_record_once_in_order():
    records = list(stream(5_001))
    loaded = list(batches(iter(records), 2_000))
    assert [len(b) for b in loaded] == [2_000, 2_000, 1_001]
    assert [e.id for b in loaded for e in b] == [r["id"] for r in records]
