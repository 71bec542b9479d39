"""The queue's event encoding: raw float64 vectors and JSON heads read back exactly."""

from __future__ import annotations

import json
import struct

import numpy as np

from kg.models import parse
from workers.events import Event, event_bytes, pack_vectors
from workers.handlers import event_body, feedback_event
from workers.requests import Feedback, FeedbackItem

# values whose decimal or float32 forms would not survive: -0.0, subnormal, huge, 1/3
EDGE = [-0.0, 5e-324, 1.7976931348623157e308, 1 / 3, -2.5, 0.1]


def bits(values) -> bytes:
    return struct.pack(f"<{len(values)}d", *list(values))


def old_json_event(event_id: str, verb: str, body: dict, wait: bool) -> bytes:
    """An event in the all-JSON form earlier versions queued (still read: a persisted queue may
    hold it), vectors as base64 float64."""
    return json.dumps({"id": event_id, "verb": verb, "body": pack_vectors(body), "wait": wait},
                      separators=(",", ":"), allow_nan=False).encode()


def test_binary_and_json_events_read_back_bit_for_bit() -> None:
    bodies = [
        ("feedback", {"embedding": EDGE, "model": "a", "payload": {"quality": 0.9, "signal": "x\ny"},
                      "now_ms": -5}),
        ("consolidate", {"param_id": "p", "params": EDGE, "grads": np.asarray(EDGE[::-1])}),
        ("record_loss", {"loss": 0.25}),
        ("train_router", {"samples": [{"embedding": EDGE, "target": "a", "quality": 0.5}], "epochs": 2}),
    ]
    for verb, body in bodies:
        for raw in (event_bytes("id.1", verb, body, True), old_json_event("id.1", verb, body, True)):
            ev = Event.parse(b"42 " + raw)
            assert (ev.seq, ev.id, ev.verb, ev.wait) == (42, "id.1", verb, True)
            for key, value in body.items():
                got = ev.body[key]
                if key in ("embedding", "params", "grads"):
                    assert got.dtype == np.float64 and bits(got) == bits(value)
                elif key == "samples":
                    assert bits(got[0]["embedding"]) == bits(value[0]["embedding"])
                else:
                    assert got == value
    assert b"\n" not in event_bytes("i", "record_loss", {"loss": 1.0}, False)  # no vectors: JSON only


def test_a_truncated_binary_event_is_refused() -> None:
    raw = b"1 " + event_bytes("i", "feedback", {"embedding": EDGE, "model": "a"}, False)
    try:
        Event.parse(raw[:-8])
    except ValueError:
        return
    raise AssertionError("a short vector was accepted")


def test_batch_events_queue_exactly_what_single_feedback_queues() -> None:
    for payload in ({"quality": 0.7}, {"quality": 0.0, "signal": "thumbs"}):
        body = {"embedding": EDGE, "model": "m", "payload": payload, "now_ms": 12}
        assert feedback_event(parse(FeedbackItem, body)) == event_body(parse(Feedback, body))
