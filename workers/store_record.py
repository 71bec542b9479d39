"""A stored version of a learned state: header plus the core's serialised state, checked on read.

``MAGIC`` (4 bytes), the header length (uint32 little-endian), the header (compact JSON: schema,
version, update count, SHA-256 of the state, written time), then the state bytes. :meth:`Record.decode`
checks every part and raises :class:`workers.errors.StateCorrupt` naming the check that failed.

>>> r = Record("ewc", "ns", 3, 7, b"state", 0)
>>> back = Record.decode(r.encode(), "ns", "ewc")
>>> back.version, back.updates, back.state
(3, 7, b'state')
>>> try:
...     Record.decode(r.encode(), "other", "ewc")
... except StateCorrupt as exc:
...     exc.reason
'record belongs to another state'
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import learn
from learn import StateError
from workers.errors import StateCorrupt

SCHEMA = "kg-temporal.weights"
SCHEMA_VERSION = 1
MAGIC = b"KGW1"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Record:
    """One stored version of a state: header fields plus the core's serialised state."""

    kind: str
    namespace: str
    version: int
    updates: int
    state: bytes
    written_ms: int

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.state).hexdigest()

    def header(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "namespace": self.namespace,
            "version": self.version,
            "updates": self.updates,
            "sha256": self.sha256,
            "written_ms": self.written_ms,
            "state_schema_version": learn.SCHEMA_VERSION,
        }

    def encode(self) -> bytes:
        head = json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + struct.pack("<I", len(head)) + head + self.state

    @classmethod
    def decode(cls, raw: bytes, namespace: str, kind: str) -> "Record":
        """Parse and check a stored record; any failure is StateCorrupt naming the check."""
        def bad(reason: str) -> StateCorrupt:
            return StateCorrupt(namespace, kind, reason)

        if not isinstance(raw, (bytes, bytearray)) or len(raw) < 8 or raw[:4] != MAGIC:
            raise bad("not a weight record (bad magic)")
        (n,) = struct.unpack("<I", raw[4:8])
        if n > len(raw) - 8:
            raise bad("header length out of range")
        try:
            head = json.loads(raw[8 : 8 + n])
        except (UnicodeDecodeError, ValueError):
            raise bad("header is not valid JSON") from None
        if not isinstance(head, dict) or head.get("schema") != SCHEMA:
            raise bad("unknown record schema")
        if head.get("schema_version") != SCHEMA_VERSION:
            raise bad(f"record schema version {head.get('schema_version')!r} is not {SCHEMA_VERSION}")
        if head.get("kind") != kind or head.get("namespace") != namespace:
            raise bad("record belongs to another state")
        state = bytes(raw[8 + n :])
        if hashlib.sha256(state).hexdigest() != head.get("sha256"):
            raise bad("checksum mismatch")
        try:
            version, updates, written = int(head["version"]), int(head["updates"]), int(head["written_ms"])
        except (KeyError, TypeError, ValueError):
            raise bad("header fields missing") from None
        return cls(kind, namespace, version, updates, state, written)

    def core(self) -> Any:
        """The learning core, checked by ``learn.from_bytes`` (schema, kind, shapes, checksum)."""
        try:
            return learn.from_bytes(self.state, self.kind)
        except StateError as exc:
            raise StateCorrupt(self.namespace, self.kind, str(exc)) from exc

    @classmethod
    def of(cls, core: Any, namespace: str, version: int, updates: int) -> "Record":
        return cls(core.kind, namespace, version, updates, learn.to_bytes(core), now_ms())
