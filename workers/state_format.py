"""The state-file format: every learned state of a namespace in one safetensors file (pure: bytes in,
bytes out, no IO; :mod:`workers.state_file` reads and writes the files and Redis).

A state file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file, so no code runs on
load (no pickle) and any safetensors reader opens it:

- one tensor per core it holds, named by its kind (``instant``, ``ewc``, ``router``, ``attention``
  or ``patterns``; a file need not hold every core, so files from before ``patterns`` load): a 1-D
  ``U8`` tensor whose bytes are the core's state exactly as Redis stores it (``learn.to_bytes``:
  itself a safetensors blob with its schema, kind, shapes and SHA-256 checksum);
- the header's ``__metadata__``: ``format`` (``"kg-temporal.state-file"``), ``format_version``
  (``"1"``) and ``manifest``, a JSON object: ``namespace`` (where it was exported from),
  ``written_ms``, ``service_version``, and per core ``version`` (its learned-state version there),
  ``updates``, ``sha256`` (of the part's bytes), ``bytes``, ``state_schema_version`` and
  ``written_ms`` (when that version was written).

:func:`decode` checks all of it before anything is used: size, header, format and version,
manifest, that the tensors are exactly the cores listed, each part's length and SHA-256, and that
``learn.from_bytes`` loads it (schema, kind, shapes, its own checksum). Any failure is a
:class:`workers.errors.StateFileError` naming the part and the check.

>>> from learn import EWC
>>> record = Record.of(EWC(), "team", 3, 0)
>>> raw = encode("team", [record], written_ms=0, service_version="0.1.0")
>>> back = decode(raw)
>>> back.namespace, sorted(back.parts), back.parts["ewc"].state == record.state
('team', ['ewc'], True)
>>> try:
...     decode(raw[:-1])
... except StateFileError as exc:
...     exc.reason.split(" of ")[0]
'truncated: 1 byte(s) missing'
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import safetensors.numpy as st_numpy
from safetensors import SafetensorError

import learn
from learn import StateError
from learn.limits import STATE_BUDGET_BYTES
from workers.errors import StateFileError
from workers.store_keys import KINDS
from workers.store_record import Record

FORMAT = "kg-temporal.state-file"
FORMAT_VERSION = 1
"""Layout history: 1 = first release. A later release reads every version up to its own; a file
of a newer version than the reader's is refused, never guessed at."""
MAX_PART_BYTES = STATE_BUDGET_BYTES + (1 << 20)
"""One core's state: the state budget of ``learn.limits`` plus room for its safetensors header."""
MAX_HEADER_BYTES = 1 << 20
MAX_FILE_BYTES = len(KINDS) * MAX_PART_BYTES + MAX_HEADER_BYTES + 8
"""The largest file: every core at its largest (about 206 MiB); a larger file is refused unread."""


@dataclass(frozen=True)
class Part:
    """One core's state in a file, with what the manifest says about it."""

    kind: str
    version: int
    updates: int
    sha256: str
    state_schema_version: int
    written_ms: int
    state: bytes

    def record(self, namespace: str) -> Record:
        """As a record of ``namespace`` (its version is set when it is written)."""
        return Record(self.kind, namespace, self.version, self.updates, self.state, self.written_ms)


@dataclass(frozen=True)
class StateFile:
    namespace: str
    written_ms: int
    service_version: str
    format_version: int
    parts: dict[str, Part]

    def manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": self.format_version, "namespace": self.namespace,
                "written_ms": self.written_ms, "service_version": self.service_version,
                "cores": {k: {"version": p.version, "updates": p.updates, "sha256": p.sha256,
                              "bytes": len(p.state), "state_schema_version": p.state_schema_version,
                              "written_ms": p.written_ms} for k, p in sorted(self.parts.items())}}


def schema_version_of(state: bytes) -> int:
    """The ``schema_version`` a core's state blob carries (0 when it carries none readable)."""
    try:
        meta = _header(state, len(state))[0].get("__metadata__") or {}
        return int(meta.get("schema_version", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def encode(namespace: str, records: list[Record], *, written_ms: int, service_version: str) -> bytes:
    """A state file holding ``records`` (current records of ``namespace``, one per core)."""
    manifest = {"namespace": namespace, "written_ms": written_ms, "service_version": service_version,
                "cores": {r.kind: {"version": r.version, "updates": r.updates, "sha256": r.sha256,
                                   "bytes": len(r.state), "state_schema_version": schema_version_of(r.state),
                                   "written_ms": r.written_ms} for r in records}}
    tensors = {r.kind: np.frombuffer(r.state, dtype=np.uint8) for r in records}
    return st_numpy.save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                            "manifest": json.dumps(manifest, sort_keys=True)})


def _header(raw: bytes, limit: int) -> tuple[dict[str, Any], int]:
    """The safetensors header of ``raw`` and where its data starts; ValueError names the problem."""
    if len(raw) < 8:
        raise ValueError("too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > limit:
        raise ValueError(f"header of {n} bytes is larger than {limit}")
    if n > len(raw) - 8:
        raise ValueError(f"truncated: the header needs {n} bytes, the file has {len(raw) - 8} after its length")
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, ValueError):
        raise ValueError("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, 8 + n


def decode(raw: bytes, name: str = "<bytes>") -> StateFile:
    """Parse and check a state file completely; StateFileError names what is wrong."""

    def bad(reason: str) -> StateFileError:
        return StateFileError(name, reason)

    if len(raw) > MAX_FILE_BYTES:
        raise bad(f"{len(raw)} bytes, more than the {MAX_FILE_BYTES} a state file can hold")
    try:
        header, start = _header(raw, MAX_HEADER_BYTES)
    except ValueError as exc:
        raise bad(f"not a state file: {exc}") from None
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad(f"not a state file (its header names no format {FORMAT!r})")
    version = meta.get("format_version")
    if not (isinstance(version, str) and version.isdigit() and 1 <= int(version) <= FORMAT_VERSION):
        raise bad(f"format version {version!r}: this release reads versions 1 to {FORMAT_VERSION}"
                  + (" (the file was written by a later release; upgrade this one)"
                     if isinstance(version, str) and version.isdigit() and int(version) > FORMAT_VERSION else ""))
    manifest = _manifest(meta.get("manifest"), bad)
    end = max((int(t["data_offsets"][1]) for t in header.values()
               if isinstance(t, dict) and isinstance(t.get("data_offsets"), list) and t["data_offsets"]),
              default=0)
    if start + end > len(raw):
        raise bad(f"truncated: {start + end - len(raw)} byte(s) missing of {start + end}")
    if set(header) != set(manifest["cores"]):
        raise bad(f"its tensors {sorted(header)} are not the cores its manifest lists "
                  f"{sorted(manifest['cores'])}")
    try:
        tensors = st_numpy.load(bytes(raw))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise bad(f"tensors unreadable ({type(exc).__name__})") from None
    parts = {kind: _part(kind, entry, tensors[kind], bad) for kind, entry in sorted(manifest["cores"].items())}
    return StateFile(manifest["namespace"], manifest["written_ms"], manifest["service_version"],
                     int(version), parts)


def _manifest(text: Any, bad: Any) -> dict[str, Any]:
    try:
        manifest = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise bad("manifest is missing or not a JSON object")
    for field, kind in (("namespace", str), ("written_ms", int), ("service_version", str), ("cores", dict)):
        if not isinstance(manifest.get(field), kind):
            raise bad(f"manifest.{field} is missing or not a {kind.__name__}")
    if not manifest["cores"]:
        raise bad("manifest lists no cores")
    unknown = sorted(set(manifest["cores"]) - set(KINDS))
    if unknown:
        raise bad(f"manifest.cores names unknown cores {unknown} (this release knows {list(KINDS)})")
    return manifest


def _part(kind: str, entry: Any, tensor: np.ndarray, bad: Any) -> Part:
    fields = ("version", "updates", "bytes", "state_schema_version", "written_ms")
    if not isinstance(entry, dict) or not all(type(entry.get(f)) is int for f in fields) \
            or not isinstance(entry.get("sha256"), str):
        raise bad(f"manifest.cores.{kind} lacks {', '.join(fields)} (integers) or sha256")
    if tensor.dtype != np.uint8 or tensor.ndim != 1:
        raise bad(f"{kind}: tensor is {tensor.dtype} of shape {tensor.shape}, expected 1-D uint8")
    state = tensor.tobytes()
    if len(state) != entry["bytes"] or len(state) > MAX_PART_BYTES:
        raise bad(f"{kind}: {len(state)} bytes, the manifest says {entry['bytes']} (at most {MAX_PART_BYTES})")
    if hashlib.sha256(state).hexdigest() != entry["sha256"]:
        raise bad(f"{kind}: SHA-256 mismatch: the part was altered or damaged")
    if schema_version_of(state) != entry["state_schema_version"]:
        raise bad(f"{kind}: the part holds state schema {schema_version_of(state)}, the manifest says "
                  f"{entry['state_schema_version']}")
    try:
        learn.from_bytes(state, kind)
    except StateError as exc:
        raise bad(f"{kind}: {exc}") from None
    return Part(kind, entry["version"], entry["updates"], entry["sha256"], entry["state_schema_version"],
                entry["written_ms"], state)
