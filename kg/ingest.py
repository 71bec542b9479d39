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
import queue
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from kg import sources
from kg.errors import InvalidInput
from kg.models import change_from_record
from kg.store import BatchResult, EdgeStore
from kg.temporal import Change, edge_of


T = TypeVar("T")
SKIP_EXAMPLES = 3  # places named per skip reason in the summary


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def changes_from_records(records: Iterable[dict], created_at: int | None) -> tuple[list[Change], list[tuple[int, str]]]:
    """Validate raw records (edges, and invalidations: ``change_from_record``); returns the
    changes and (index, error) for the rejected."""
    changes, rejected = [], []
    default = created_at if created_at is not None else now_ms()
    for index, record in enumerate(records):
        try:
            changes.append(change_from_record(record, default))
        except InvalidInput as exc:
            rejected.append((index, str(exc)))
    return changes, rejected


def require_path(path: Path, field: str = "file") -> None:
    """Refuse a path that does not exist, naming it (the caller's own argument, not data),
    before anything else is said about it ("unknown format", a traceback)."""
    if not path.exists():
        raise InvalidInput(field, f"no such file: {path}")


def open_source(path: Path) -> Iterator[sources.Row | sources.Skip]:
    """Pick the reader by what ``path`` is: a HyTE dataset folder, JSON Lines, CSV or TSV."""
    require_path(path)
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
    skip_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first few places
    seconds: float = 0.0
    interrupted: bool = False

    def skip(self, reason: str, source: str, line: int, edge_id: Any = None) -> None:
        """Count a skipped line and keep where the first few of each reason are, so a user
        can find them in the file (``train.txt:7436``, with the id when the line had one)."""
        self.skipped[reason] += 1
        examples = self.skip_examples.setdefault(reason, [])
        if len(examples) < SKIP_EXAMPLES:
            where = f"{Path(source).name}:{line}"
            if isinstance(edge_id, str) and edge_id:
                where += f" (id {edge_id[:60]!r})"
            examples.append(where)

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
            examples = self.skip_examples.get(reason, [])
            more = f", and {count - len(examples):,} more" if count > len(examples) else ""
            where = f" (at {', '.join(examples)}{more})" if examples else ""
            lines.append(f"  skipped {count:,}: {reason}{where}")
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


def validated_batches(items: Iterable[sources.Row | sources.Skip], report: IngestReport, batch_size: int,
                      created_at: int, skip: int = 0) -> Iterator[tuple[list[Change], int]]:
    """Batches of validated changes (edges, invalidations), each with the number of source items
    consumed after it.

    Skips the first ``skip`` items (already loaded) and counts unreadable or
    invalid ones in ``report.skipped``.
    """
    batch: list[Change] = []
    index = 0
    for index, item in enumerate(items, start=1):
        report.items = index
        if index <= skip:
            continue
        if isinstance(item, sources.Skip):
            report.skip(item.reason, item.source, item.line)
            continue
        try:
            change = change_from_record(item.record, created_at)
        except InvalidInput as exc:
            report.skip(f"invalid {exc.field}", item.source, item.line, item.record.get("id"))
            continue
        edge = edge_of(change)
        if edge is not None:
            edge.first_version.row  # noqa: B018 - built (and cached) here, off the transaction's path
        batch.append(change)
        if len(batch) >= batch_size:
            yield batch, index
            batch = []
    yield batch, index


def load_batches(store: EdgeStore, namespace: str, batches: Iterable[tuple[list[Change], int]],
                 report: IngestReport, on_commit: Callable[[int], None] = lambda done: None,
                 bar: Any = None, stop: threading.Event | None = None) -> None:
    """Insert each batch in its own transaction while the next one is being validated.

    After a batch whose every edge was new, the next one skips reading its ids
    (``expect_new``): in a fresh load that read finds nothing, and a batch that
    does meet stored ids is run again with it.
    """
    expect_new = False
    for changes, done in prefetched(batches):
        if changes:
            result = store.insert_many(namespace, changes, expect_new=expect_new)
            expect_new = result.inserted == len(changes)
            report.result.add(result)
            if bar is not None:
                bar.update(len(changes))
        on_commit(done)
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt


def prefetched(iterable: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    Validation is Python work and a transaction mostly waits on the server, so
    the two overlap.  Errors are raised in the consumer; a consumer that stops
    early (Ctrl-C, an error) stops the producer.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        """Queue ``entry`` unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterable:
                if not offer((None, item)):
                    return
            offer((None, done))
        except BaseException as exc:  # handed to the consumer
            offer((exc, None))

    thread = threading.Thread(target=produce, name="kg-ingest-validate", daemon=True)
    thread.start()
    try:
        while True:
            error, item = items.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()


@contextmanager
def interrupt_after_batch() -> Iterator[threading.Event]:
    """First Ctrl-C: finish the batch in flight, then stop; a second one aborts at once.

    A KeyboardInterrupt raised inside the driver mid-transaction leaves the
    connection in a state the driver then reports as an unrelated error.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def ingest(store: EdgeStore, namespace: str, path: Path, home: Path, batch_size: int = 2000,
           progress: bool = True, resume: bool = True) -> IngestReport:
    """Load ``path`` into ``namespace``; resumable after a crash or Ctrl-C."""
    from tqdm import tqdm

    require_path(path)
    checkpoint = Checkpoint(home, path, namespace)
    state = checkpoint.load() if resume else {}
    created_at = state.get("created_at") or now_ms()
    skip = state.get("items_done", 0) if not state.get("finished") else 0
    report = IngestReport(str(path), namespace, resumed_from=skip)
    bar = tqdm(desc="ingest", unit=" edges", disable=not progress, smoothing=0.1,
               dynamic_ncols=True, mininterval=0.5)
    started = time.perf_counter()

    def committed(done: int) -> None:
        checkpoint.save({"created_at": created_at, "items_done": done, "finished": False})

    try:
        with interrupt_after_batch() as stop:
            batches = validated_batches(open_source(path), report, batch_size, created_at, skip)
            load_batches(store, namespace, batches, report, committed, bar, stop)
        checkpoint.save({"created_at": created_at, "items_done": report.items, "finished": True})
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report
