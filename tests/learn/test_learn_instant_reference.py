"""MicroLoRA's update is bit-identical to its first, plainest implementation.

``learn``/``_step`` were tuned for speed (they run once per feedback event in the workers), and
stored adapters, replays and restarts depend on every bit. The reference below is the original
code, kept verbatim as the specification; a long stream (replay, decay to the floor, the norm
clamp, neutral feedback, an EWC anchor, a reset, a save and restore, replay weights that repeat,
inputs as lists, float32, strided and reversed views) must leave both in the same bytes.
"""

from __future__ import annotations

import math

import numpy as np

from learn import MicroLoRA, from_bytes, to_bytes
from learn import _check
from learn.instant import NEUTRAL_BAND


def reference_learn(self: MicroLoRA, embedding, target, quality) -> None:
    x = _check.vector(embedding, "embedding", self.in_dim)
    t = self.target_index(target)
    q = _check.number(quality, "quality", lo=0.0, hi=1.0)
    if abs(q - 0.5) < NEUTRAL_BAND:
        return
    s = (q - 0.5) * 2.0
    reference_step(self, x, t, s)
    pos = self._replay_pos
    self._replay_x[pos] = x
    self._replay_t[pos] = t
    self._replay_s[pos] = s
    self._replay_w[pos] = abs(s)
    self._replay_pos = (pos + 1) % self.replay_size
    self._replay_n = min(self._replay_n + 1, self.replay_size)
    if self._replay_n >= self.replay_min:
        cum = np.cumsum(self._replay_w[: self._replay_n])
        i = int(np.searchsorted(cum, self._rng.random() * cum[-1], side="right"))
        i = min(i, self._replay_n - 1)
        reference_step(self, self._replay_x[i], int(self._replay_t[i]), 0.5 * self._replay_s[i])
    self._lr = max(self._lr * self.lr_decay, self.lr_min)
    self.updates += 1


def reference_step(self: MicroLoRA, x: np.ndarray, t: int, s: float) -> None:
    lr = self._lr
    A, B = self._A, self._B
    h = A @ x
    a_step = (lr * s) * B[:, t]
    if self._anchored and self.ewc_lambda > 0.0:
        A -= np.minimum(lr * self.ewc_lambda * self._fisher_A, 1.0) * (A - self._snap_A)
        B -= np.minimum(lr * self.ewc_lambda * self._fisher_B, 1.0) * (B - self._snap_B)
    B[:, t] += (lr * s) * h
    A += np.multiply.outer(a_step, x)
    P = self._P
    sq = float(P @ P)
    if sq > self.max_norm * self.max_norm:
        P *= self.max_norm / math.sqrt(sq)


def run(core: MicroLoRA, learn, stream) -> list[bytes]:
    marks = []
    for i, (x, target, q) in enumerate(stream):
        if x is None:
            core.reset()
        elif isinstance(x, str):
            core = from_bytes(to_bytes(core), "instant")  # restore mid-stream
        elif isinstance(x, dict):
            core.anchor(x)
        else:
            learn(core, x, target, q)
        if i % 97 == 0:
            marks.append(to_bytes(core))
    return marks + [to_bytes(core)]


def stream(
    dim: int, n: int, seed: int, targets: list[str], rank: int, coarse: bool = False
) -> list:
    """Feedback events; ``coarse`` draws quality from a few values, so replay weights repeat."""
    rng = np.random.default_rng(seed)
    out: list = []
    for i in range(n):
        scale = 30.0 if i % 50 < 5 else 1.0  # bursts of large inputs: the norm clamp fires
        x = rng.standard_normal(dim) * scale
        x = [x.tolist(), x, x[::-1], x.astype(np.float32), np.repeat(x, 2)[::2]][i % 5]
        if coarse:
            q = [0.0, 1.0, 0.9, 0.1, 0.75][int(rng.integers(5))] if i % 7 else 0.5
        else:
            q = [0.5, 0.5 + 5e-5, 0.0, 1.0][i % 4] if i % 11 == 0 else float(rng.random())
        out.append((x, targets[int(rng.integers(len(targets)))], q))
        if i == n // 3:
            out.append(({"A": rng.random((rank, dim)), "B": rng.random((rank, len(targets)))}, None, None))
        if i == (2 * n) // 3:
            out.append((None, None, None))  # reset
        if i % 400 == 123:
            out.append(("restore", None, None))
    return out


def test_learn_is_bit_identical_to_the_reference() -> None:
    for dim, targets, kwargs, seed, coarse in [
        (384, ["a", "b", "c"], {}, 1, False),
        (384, ["a", "b", "c", "d"], {}, 4, True),
        (16, ["a", "b", "c", "d", "e"], {"ewc_lambda": 50.0, "lr0": 0.5, "replay_size": 8}, 2, False),
        (16, ["a", "b"], {"ewc_lambda": 5.0, "replay_size": 8, "replay_min": 3}, 5, True),
        (7, ["x"], {"rank": 3, "lr_min": 0.02, "replay_min": 1}, 3, False),
        (1, ["x", "y"], {"replay_size": 1, "replay_min": 1}, 6, True),
    ]:
        events = stream(dim, 1500, seed, targets, kwargs.get("rank", 2), coarse)
        core = MicroLoRA(targets=targets, in_dim=dim, seed=seed, **kwargs)
        expected = run(from_bytes(to_bytes(core), "instant"), reference_learn, events)  # (deepcopy
        # would unlink A and B from the flat buffer they view)
        got = run(core, MicroLoRA.learn, events)
        assert got == expected, (dim, kwargs, coarse)


def test_learn_is_bit_identical_after_restoring_any_valid_replay_counters() -> None:
    # from_state accepts any replay_n and replay_pos in range, not only those learning can reach
    events = stream(5, 40, 7, ["a", "b"], 2, coarse=True)
    for n, pos in [(2, 5), (0, 3), (5, 0), (8, 7), (3, 3)]:
        core = MicroLoRA(targets=["a", "b"], in_dim=5, replay_size=8, replay_min=1, seed=7)
        run(core, MicroLoRA.learn, events[:20])
        core._replay_n, core._replay_pos = n, pos
        saved = to_bytes(core)
        expected = run(from_bytes(saved, "instant"), reference_learn, events[20:])
        got = run(from_bytes(saved, "instant"), MicroLoRA.learn, events[20:])
        assert got == expected, (n, pos)
