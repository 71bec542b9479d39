"""Saving the learned state of a namespace to a file and loading it into a namespace, here or on
another machine (``kg state export`` / ``kg state import``, and the same in Python).

:func:`save_state` reads the current record of every core of the namespace in one Redis
transaction (one moment of all of them), checks each, and writes the file in the format of
:mod:`workers.state_format` (to a temporary file beside it, renamed into place).

:func:`load_state` checks the whole file first (:func:`workers.state_format.decode`: size, format
version, manifest, each part's SHA-256, schema and shapes), then writes every core of the file in
one Redis transaction, through the compare-and-set every update goes through
(:meth:`workers.weight_store.WeightStore.commit_states`): each state gets a new version (the
version only grows, the epoch moves to it as after ``init_*``), the replaced version is kept as a
snapshot for ``kg state rollback``, and either every core of the file is written or none is. A core
the namespace already holds is only replaced with ``replace=True``; cores the namespace holds and
the file does not are left as they are. Events queued for a core before the import are applied on
top of the imported state (a drain is triggered), as after a rollback.

Why no verb: one core's state may take 40 MiB (``learn.limits``) and a file four of them, while a
request body is at most 1 MB (README, "Request limits"); and a state file is a file an operator
moves, not an answer. The Python functions here are the API for embedders.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kg.config import Settings
from kg.errors import Conflict, InvalidInput
from kg.limits import MAX_NAMESPACE_CHARS, name_problem
from workers.connect import redis_client, redis_errors
from workers.errors import StateFileError
from workers.state_format import MAX_FILE_BYTES, StateFile, decode, encode
from workers.store_keys import KINDS
from workers.store_record import now_ms
from workers.weight_store import WeightStore

__all__ = ["Loaded", "load_state", "read_state_file", "save_state"]


def _service_version() -> str:
    try:
        return metadata.version("kg-temporal")
    except metadata.PackageNotFoundError:
        return "unknown"


def _store(settings: Settings | None) -> WeightStore:
    settings = settings or Settings.from_env()
    return WeightStore(redis_client(settings), settings.workers)


def _namespace(ns: str) -> str:
    problem = name_problem(ns) or (f"at most {MAX_NAMESPACE_CHARS} characters" if len(ns) > MAX_NAMESPACE_CHARS
                                   else None)
    if problem:
        raise InvalidInput("namespace", problem)
    return ns


def save_state(namespace: str, path: str | os.PathLike[str], *, cores: list[str] | None = None,
               settings: Settings | None = None) -> StateFile:
    """Write every core of ``namespace`` that holds state (or only ``cores``) to ``path``; returns
    what was written. A namespace without state, or a listed core without one, is refused."""
    wanted = list(dict.fromkeys(cores)) if cores else list(KINDS)
    unknown = [c for c in wanted if c not in KINDS]
    if unknown:
        raise InvalidInput("cores", f"unknown cores {unknown} (known: {list(KINDS)})")
    with redis_errors():
        records = _store(settings).load_many(_namespace(namespace), wanted)
    for record in records.values():
        if record is not None:
            record.core()  # learn's checks too: a file never carries a state that cannot load
    missing = [c for c, r in records.items() if r is None]
    if cores and missing:
        raise InvalidInput("cores", f"namespace {namespace!r} has no state of {missing}")
    present = [r for r in records.values() if r is not None]
    if not present:
        raise InvalidInput("namespace", f"{namespace!r} has no learned state to export")
    raw = encode(namespace, present, written_ms=now_ms(), service_version=_service_version())
    try:
        _write_atomically(Path(path), raw)
    except OSError as exc:
        raise StateFileError(str(path), f"cannot be written ({exc.strerror or type(exc).__name__})") from None
    return decode(raw, str(path))


def _write_atomically(path: Path, raw: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state_file(path: str | os.PathLike[str]) -> StateFile:
    """Read and check a state file completely (nothing is written anywhere)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StateFileError(str(p), f"{size} bytes, more than the {MAX_FILE_BYTES} a state file can hold")
        raw = p.read_bytes()
    except OSError as exc:
        raise StateFileError(str(p), f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return decode(raw, str(p))


@dataclass(frozen=True)
class Loaded:
    """What ``load_state`` wrote: per core, the version it replaced (0: none) and its new version."""

    namespace: str
    file: StateFile
    replaced: dict[str, int]
    untouched: list[str]

    def lines(self) -> list[str]:
        out = []
        for kind, part in sorted(self.file.parts.items()):
            before = self.replaced[kind]
            out.append(f"{kind:<10} version {before} -> {before + 1}: version {part.version} of namespace "
                       f"{self.file.namespace!r}, {part.updates} updates, sha256 {part.sha256[:16]}"
                       + (f" (version {before} kept: kg state rollback -n {self.namespace} --core {kind})"
                          if before else ""))
        if self.untouched:
            out.append(f"left as they were (not in the file): {', '.join(self.untouched)}")
        return out


def load_state(path: str | os.PathLike[str], namespace: str | None = None, *, replace: bool = False,
               settings: Settings | None = None) -> Loaded:
    """Load a state file into ``namespace`` (default: the one it was exported from), all cores or
    none; a core that already holds state is replaced only with ``replace``."""
    state_file = read_state_file(path)
    ns = _namespace(namespace if namespace is not None else state_file.namespace)
    records = {kind: part.record(ns) for kind, part in state_file.parts.items()}

    def check(versions: dict[str, int]) -> None:
        held = {kind: v for kind, v in versions.items() if v}
        if held and not replace:
            listed = ", ".join(f"{kind} (version {v})" for kind, v in sorted(held.items()))
            raise Conflict("namespace", f"{ns!r} already holds {listed}; nothing was written (replace "
                                        f"them with --replace: the replaced versions stay for kg state rollback)")

    with redis_errors():
        store = _store(settings)
        replaced = store.commit_states(ns, records, check)
        untouched = [k for k in KINDS if k not in records and store.version(ns, k)]
        queued = [k for k in records if store.depth(ns, k) and store.raise_flag(ns, k)]
        if queued:
            from workers.app import publisher

            app = publisher(settings or Settings.from_env())
            for kind in queued:
                app.send_task("kg.drain", args=[ns, kind])
    return Loaded(ns, state_file, replaced, untouched)
