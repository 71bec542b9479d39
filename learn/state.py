"""One byte format for the state of every learning core.

Why safetensors: it is a flat, documented, non-executable format (a JSON header plus raw
little-endian buffers), so a blob from Redis can never run code on load, unlike pickle. Arrays go
in as tensors; settings, scalar counters and the numpy random-generator state go in the header's
string metadata as JSON (Python's ``json`` writes floats with ``repr``, which round-trips every
float64 exactly; big integers of the generator state are written as decimal strings). The header
is rewritten with sorted keys, so equal states give equal bytes in any process.

A blob carries ``schema``, ``schema_version``, ``kind`` and a SHA-256 ``checksum`` over everything
else. ``from_bytes`` checks all of them and the core's ``from_state`` checks every shape; any
failure is a :class:`~learn.errors.StateError`, never a silent re-initialisation.

>>> from learn.instant import MicroLoRA
>>> core = MicroLoRA(targets=["a", "b"], in_dim=4, seed=1)
>>> blob = to_bytes(core)
>>> to_bytes(from_bytes(blob, "instant")) == blob
True
>>> from_bytes(blob, "router")
Traceback (most recent call last):
...
learn.errors.StateError: kind mismatch: expected 'router', blob holds 'instant'
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import numpy.random  # noqa: F401  (numpy 2 loads it on first use; every restore needs it, so with the module)
import safetensors.numpy as st_numpy
from safetensors import SafetensorError

from learn.errors import StateError

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "OLDEST_READABLE",
    "State",
    "from_bytes",
    "peek_kind",
    "register",
    "rng_from_json",
    "rng_to_json",
    "to_bytes",
]

SCHEMA = "kg-temporal.learn"
SCHEMA_VERSION = 7
"""Layout history: 1 = first release; 2 = the router gained its linear skip path (``param.skip.W``)
and AdaGrad accumulators (``adagrad.<param>``); 3 = the router gained its input-shift monitor
(``shift.ref``, ``shift.sum``, ``shift.ring``, the ``shift`` scalars and three settings); 4 = the
router gained its choice policies (four settings; ``bayes.*`` arrays with a Bayesian policy); 5 = the
instant core gained its base adapter (``base_A``, ``base_B``, ``base_fisher``, the scalars
``consolidations`` and ``consolidated_at`` and seven ``base_*`` settings; older blobs read with a
zero base); 6 = the router gained ``thompson_scale`` (older routers read with 1.0, the whole
posterior's spread they sampled from); 7 = the router gained ``epsilon_fade`` (older routers read
with 0, the constant epsilon floor they explored with).

Blobs are written at ``SCHEMA_VERSION`` and read back to ``OLDEST_READABLE``: a kind whose layout
changed since then says how to read the older one (``upgrade(state, version)``; the router's
version-2 blobs get a fresh monitor, which only observes, so learning resumes exactly), the other
kinds' layouts are unchanged (a version-3 router is an epsilon-greedy router and reads as one;
an instant core before version 5 reads with a zero base, which adds nothing). Anything else is refused, never upgraded silently: a version-1 router
would resume without its optimizer state. Router blobs written before routing became a pure read
carry two more scalars, ``routes`` and ``explorations`` (counters the service never advanced); they
are ignored on load."""
OLDEST_READABLE = 2
_ALLOWED_DTYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))


@dataclass
class State:
    """What a core hands to the serialiser: JSON-able settings and scalars, plus named arrays."""

    settings: dict[str, Any]
    scalars: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Core(Protocol):
    kind: ClassVar[str]

    def to_state(self) -> State: ...

    @classmethod
    def from_state(cls, state: State) -> Core: ...


C = TypeVar("C", bound=type)
_KINDS: dict[str, type] = {}


def register(cls: C) -> C:
    """Class decorator: make ``cls.kind`` loadable by :func:`from_bytes`."""
    kind = cls.kind  # type: ignore[attr-defined]
    if kind in _KINDS and _KINDS[kind] is not cls:
        raise RuntimeError(f"state kind {kind!r} registered twice")
    _KINDS[kind] = cls
    return cls


# --- random generator state -------------------------------------------------------------------


def rng_to_json(rng: np.random.Generator) -> dict[str, Any]:
    """The PCG64 state as JSON-safe data (128-bit integers as decimal strings)."""
    s = rng.bit_generator.state
    if s["bit_generator"] != "PCG64":
        raise TypeError("only PCG64 generators are serialisable")
    return {
        "bit_generator": "PCG64",
        "state": str(s["state"]["state"]),
        "inc": str(s["state"]["inc"]),
        "has_uint32": int(s["has_uint32"]),
        "uinteger": int(s["uinteger"]),
    }


def rng_from_json(data: Any) -> np.random.Generator:
    """Rebuild a generator from :func:`rng_to_json` output; bad data is a StateError."""
    try:
        if data["bit_generator"] != "PCG64":
            raise StateError("rng: only PCG64 is supported")
        bg = np.random.PCG64()
        bg.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(data["state"]), "inc": int(data["inc"])},
            "has_uint32": int(data["has_uint32"]),
            "uinteger": int(data["uinteger"]),
        }
    except StateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError("rng: malformed generator state") from exc
    return np.random.Generator(bg)


# --- blobs ------------------------------------------------------------------------------------


def _checksum(kind: str, settings: str, scalars: str, arrays: dict[str, np.ndarray],
              version: int = SCHEMA_VERSION) -> str:
    h = hashlib.sha256()
    for part in (SCHEMA, str(version), kind, settings, scalars):
        h.update(part.encode())
        h.update(b"\x00")
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def to_bytes(core: Core) -> bytes:
    """Serialise a core's complete state; equal states give equal bytes."""
    state = core.to_state()
    arrays: dict[str, np.ndarray] = {}
    for name, arr in state.arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype not in _ALLOWED_DTYPES:
            raise TypeError(f"array {name!r} has unsupported dtype {a.dtype}")
        arrays[name] = a
    settings = json.dumps(state.settings, sort_keys=True, allow_nan=False)
    scalars = json.dumps(state.scalars, sort_keys=True, allow_nan=False)
    metadata = {
        "schema": SCHEMA,
        "schema_version": str(SCHEMA_VERSION),
        "kind": core.kind,
        "settings": settings,
        "scalars": scalars,
        "checksum": _checksum(core.kind, settings, scalars, arrays),
    }
    return _canonical(st_numpy.save(arrays, metadata=metadata))


def _canonical(blob: bytes) -> bytes:
    """Rewrite the header with sorted keys, so that equal states always give equal bytes.

    safetensors writes the metadata map in hash order, which changes from process to process;
    the tensor offsets are relative to the data section, so only the header needs rewriting.
    """
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def _read_metadata(blob: bytes) -> dict[str, str]:
    if len(blob) < 8:
        raise StateError("blob too short to be a state blob")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise StateError("blob header length is out of range")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError("blob header is not valid JSON") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise StateError("blob carries no metadata")
    return meta


def peek_kind(blob: bytes) -> str:
    """The ``kind`` a blob claims, without loading it (for dispatch and error messages)."""
    return str(_read_metadata(blob).get("kind", ""))


def from_bytes(blob: bytes, expected_kind: str) -> Any:
    """Load a core of ``expected_kind`` from ``blob``; any check that fails raises StateError."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise StateError("blob must be bytes")
    blob = bytes(blob)
    meta = _read_metadata(blob)
    if meta.get("schema") != SCHEMA:
        raise StateError(f"schema mismatch: expected {SCHEMA!r}")
    readable = {str(v): v for v in range(OLDEST_READABLE, SCHEMA_VERSION + 1)}
    version = readable.get(meta.get("schema_version"))
    if version is None:
        raise StateError(
            f"schema_version mismatch: expected {OLDEST_READABLE} to {SCHEMA_VERSION}, "
            f"blob holds {meta.get('schema_version')!r}"
        )
    kind = meta.get("kind")
    if kind != expected_kind:
        raise StateError(f"kind mismatch: expected {expected_kind!r}, blob holds {kind!r}")
    cls = _KINDS.get(expected_kind)
    if cls is None:
        raise StateError(f"unknown state kind {expected_kind!r}")
    try:
        arrays = st_numpy.load(blob)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise StateError("blob tensors are unreadable") from exc
    settings_json, scalars_json = meta.get("settings", ""), meta.get("scalars", "")
    if meta.get("checksum") != _checksum(kind, settings_json, scalars_json, arrays, version):
        raise StateError("checksum mismatch: blob is corrupt")
    try:
        settings = json.loads(settings_json)
        scalars = json.loads(scalars_json)
    except json.JSONDecodeError as exc:
        raise StateError("settings or scalars are not valid JSON") from exc
    if not isinstance(settings, dict) or not isinstance(scalars, dict):
        raise StateError("settings and scalars must be JSON objects")
    try:
        state = State(settings, scalars, arrays)
        if version != SCHEMA_VERSION and hasattr(cls, "upgrade"):
            state = cls.upgrade(state, version)
        return cls.from_state(state)
    except StateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{kind} state is inconsistent: {type(exc).__name__}") from exc


def expect_array(
    arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: Any = np.float64
) -> np.ndarray:
    """Fetch ``arrays[name]`` and insist on its shape and dtype (used by ``from_state``)."""
    if name not in arrays:
        raise StateError(f"array {name!r} is missing")
    a = arrays[name]
    if a.shape != tuple(shape):
        raise StateError(f"array {name!r} has shape {a.shape}, expected {tuple(shape)}")
    if a.dtype != np.dtype(dtype):
        raise StateError(f"array {name!r} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    return np.array(a, copy=True)
