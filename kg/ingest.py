"""Bulk ingest for pipelines: files in, bounded batches of edges out, resumable.

Each batch is one transaction (``EdgeStore.insert_many``), so a crash loses at
most the batch in flight.  After every committed batch a checkpoint under
``$KG_HOME/ingest/`` records how many source items are done; running the same
command again skips them and re-sends at most one batch, which is harmless
because an identical insert is a no-op.  Running a finished ingest again
re-checks every edge and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from kg import sources
from kg.errors import InvalidInput
from kg.models import StatedEdge, parse
from kg.store import BatchResult, EdgeStore
from kg.temporal import NewEdge


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def edges_from_records(records: Iterable[dict], created_at: int | None) -> tuple[list[NewEdge], list[tuple[int, str]]]:
    """Validate raw records; returns the edges and (index, error) for the rejected."""
    edges, rejected = [], []
    default = created_at if created_at is not None else now_ms()
    for index, record in enumerate(records):
        try:
            edges.append(parse(StatedEdge, record).to_new_edge(default_created_at=default))
        except InvalidInput as exc:
            rejected.append((index, str(exc)))
    return edges, rejected


def open_source(path: Path) -> Iterator[sources.Row | sources.Skip]:
    """Pick the reader by what ``path`` is: a HyTE dataset folder, JSON Lines, CSV or TSV."""
    if path.is_dir():
        return sources.read_temporal_kg(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return sources.read_jsonl(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return sources.read_delimited(path)
    raise InvalidInput("file", "unknown format: use .jsonl, .csv, .tsv or a temporal-kg dataset folder")


@dataclass
class IngestReport:
    source: str
    namespace: str
    items: int = 0
    resumed_from: int = 0
    result: BatchResult = field(default_factory=BatchResult)
    skipped: Counter = field(default_factory=Counter)
    skip_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        done = self.result.inserted + self.result.unchanged
        return done / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        r = self.result
        lines = [
            f"{'interrupted' if self.interrupted else 'done'}: {self.source} -> namespace {self.namespace!r}",
            f"  items read {self.items:,} (resumed after {self.resumed_from:,})",
            f"  inserted {r.inserted:,}  unchanged {r.unchanged:,}  invalidated {r.invalidated:,}"
            f"  rejected {len(r.rejected):,}  skipped {sum(self.skipped.values()):,}",
            f"  {self.seconds:.1f} s, {self.rate:,.0f} edges/s",
        ]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count:,}: {reason}")
        for edge_id, reason in r.rejected[:10]:
            lines.append(f"  rejected {edge_id}: {reason}")
        if self.interrupted:
            lines.append("  run the same command again to resume")
        return "\n".join(lines)


class Checkpoint:
    """How far an ingest of one source into one namespace got."""

    def __init__(self, home: Path, path: Path, namespace: str) -> None:
        stat = path.stat() if path.is_file() else None
        identity = json.dumps([str(path.resolve()), namespace,
                               stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
        key = hashlib.sha256(identity.encode()).hexdigest()[:20]
        self.file = home / "ingest" / f"{key}.json"

    def load(self) -> dict:
        try:
            return json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, state: dict) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.file)


def ingest(store: EdgeStore, namespace: str, path: Path, home: Path, batch_size: int = 2000,
           progress: bool = True, resume: bool = True) -> IngestReport:
    """Load ``path`` into ``namespace``; resumable after a crash or Ctrl-C."""
    from tqdm import tqdm

    checkpoint = Checkpoint(home, path, namespace)
    state = checkpoint.load() if resume else {}
    created_at = state.get("created_at") or now_ms()
    done = state.get("items_done", 0) if not state.get("finished") else 0
    report = IngestReport(str(path), namespace, resumed_from=done)
    bar = tqdm(desc="ingest", unit=" edges", disable=not progress, smoothing=0.1,
               dynamic_ncols=True, mininterval=0.5)
    started = time.perf_counter()
    batch: list[NewEdge] = []
    index = 0

    def flush() -> None:
        if batch:
            report.result.add(store.insert_many(namespace, batch))
            bar.update(len(batch))
            batch.clear()
        checkpoint.save({"created_at": created_at, "items_done": index, "finished": False})

    try:
        for index, item in enumerate(open_source(path), start=1):
            report.items = index
            if index <= done:
                continue
            if isinstance(item, sources.Skip):
                report.skipped[item.reason] += 1
                continue
            try:
                batch.append(parse(StatedEdge, item.record).to_new_edge(default_created_at=created_at))
            except InvalidInput as exc:
                report.skipped[f"invalid {exc.field}"] += 1
                continue
            if len(batch) >= batch_size:
                flush()
        flush()
        checkpoint.save({"created_at": created_at, "items_done": index, "finished": True})
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report
