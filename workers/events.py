"""Queued events as they sit in a state's ``pending`` list: a small JSON head plus raw vectors.

Why not JSON all the way: a 384-float embedding as base64 inside JSON cost the caller ~40 µs to
encode and the worker ~70 µs to decode (the JSON scanner and base64 walk every character), more
than applying the event. So an entry is ``"<seq> " + <JSON head>`` and, when the body has float
vectors, ``"\\n"`` + their little-endian float64 bytes back to back; the head names them and their
lengths (``"vec": [["embedding", 384]]``). Compact JSON never holds a raw newline, so the first
newline ends the head. Nothing in an entry can run code (no pickle): a head is JSON, a vector is a
plain float64 buffer, like the tensors of a weight blob.

Entries in the older all-JSON form (``{"f64": "<base64>"}`` per vector, as :func:`pack_vectors`
packs them) are no longer written but still read: a queue persisted by an earlier version (the
AOF keeps it across restarts) may hold them. A router's recorded outcomes are kept in that form.

>>> raw = b"7 " + event_bytes("e1", "record_loss", {"loss": 0.5, "embedding": [1.0, 2.5]}, True)
>>> ev = Event.parse(raw)
>>> ev.seq, ev.id, ev.verb, ev.wait, ev.body["loss"], ev.body["embedding"].tolist()
(7, 'e1', 'record_loss', True, 0.5, [1.0, 2.5])
>>> old = {"id": "e2", "verb": "record_loss", "body": pack_vectors({"embedding": [1.0, 2.5]})}
>>> Event.parse(b"8 " + json.dumps(old).encode()).body["embedding"].tolist()
[1.0, 2.5]
"""

from __future__ import annotations

import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# Float vectors of a body that travel as raw float64 (the rest of the body is JSON).
VECTOR_KEYS = ("embedding", "params", "grads")
# one encoder and decoder: json.dumps with options builds a new encoder per call
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_DECODE = json.JSONDecoder().raw_decode  # a head has no surrounding whitespace to skip


@dataclass(frozen=True)
class Event:
    """A queued update: its arrival number, id, verb, body, whether a caller waits on it, and
    where its payload is kept when not inline (a field of the state's ``payloads`` hash)."""

    seq: int
    id: str
    verb: str
    body: dict[str, Any]
    wait: bool = False
    ref: str = ""

    @classmethod
    def parse(cls, raw: bytes) -> "Event":
        """An inline entry, ``"<seq> <payload>"``."""
        seq, _, payload = raw.partition(b" ")
        return cls.decode(int(seq), payload)

    @classmethod
    def decode(cls, seq: int, payload: bytes, ref: str = "") -> "Event":
        head, newline, tail = payload.partition(b"\n")
        data = _DECODE(head.decode())[0]
        body = data["body"]
        if newline:
            offset = 0
            for key, n in data["vec"]:
                body[key] = np.frombuffer(tail, dtype="<f8", count=n, offset=offset).copy()
                offset += 8 * n
            if offset != len(tail):
                raise ValueError("event: vector bytes do not match the head")
        else:
            unpack_vectors(body)
        return cls(seq, data["id"], data["verb"], body, bool(data.get("wait")), ref)


def _f64_bytes(v: list | np.ndarray) -> bytes:
    if isinstance(v, list):
        return struct.pack(f"<{len(v)}d", *v)  # faster than numpy for a list of floats
    return np.asarray(v, dtype="<f8").tobytes()


def event_bytes(event_id: str, verb: str, body: dict[str, Any], wait: bool) -> bytes:
    """An event as queued (without its ``"<seq> "``, which ``enqueue`` adds): JSON head, then the
    body's top-level vectors as raw float64."""
    rest = dict(body)
    vecs, parts = [], []
    for key in VECTOR_KEYS:
        v = rest.get(key)
        if isinstance(v, (list, np.ndarray)):
            del rest[key]
            raw = _f64_bytes(v)
            vecs.append([key, len(raw) // 8])
            parts.append(raw)
    if isinstance(rest.get("samples"), list):
        rest["samples"] = [pack_vectors(s) if isinstance(s, dict) else s for s in rest["samples"]]
    head = {"id": event_id, "verb": verb, "body": rest, "wait": wait}
    if vecs:
        head["vec"] = vecs
    text = _ENCODE(head).encode()
    return text + b"\n" + b"".join(parts) if vecs else text


# The all-JSON form: vectors as base64 of little-endian float64 ({"f64": "..."}), exact.
def pack_vectors(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    for key in VECTOR_KEYS:
        v = out.get(key)
        if isinstance(v, (list, np.ndarray)):
            out[key] = {"f64": binascii.b2a_base64(_f64_bytes(v), newline=False).decode()}
    if isinstance(out.get("samples"), list):
        out["samples"] = [pack_vectors(s) if isinstance(s, dict) else s for s in out["samples"]]
    return out


def unpack_vectors(body: dict[str, Any]) -> dict[str, Any]:
    for key in VECTOR_KEYS:
        v = body.get(key)
        if isinstance(v, dict) and "f64" in v:
            body[key] = np.frombuffer(binascii.a2b_base64(v["f64"]), dtype="<f8").copy()
    for s in body.get("samples") or ():
        if isinstance(s, dict):
            unpack_vectors(s)
    return body

