"""Upper bounds of every size a learning request can set, from one memory budget per state.

Why: a request chooses the size of the state a worker allocates, holds, serialises and writes to
Redis on every update; ``init_attention`` with ``dim: 8192`` once held the only worker for two
minutes and grew it to 15 GB. So every such size has a bound here, the request models
(``workers.bodies``, ``workers.verbs``) check it before anything is allocated and name the
field, and the README's "Limits" table is :func:`markdown_table` (a test keeps them equal).

The budget: a state of the largest allowed size serialises to at most :data:`STATE_BUDGET_BYTES`
(40 MiB; :func:`state_bytes` gives the size of any state from its dimensions, to within the
safetensors header), and one update of it takes well under a second on one core
(``bench/limits_cost.py`` measures both; the README states the numbers). A batch or read that
scales with its input (``feedback_batch``, ``attend``, ``train_router``) is bounded in values,
not only in items, so its work is bounded too.

>>> attention_weights(1024, 8, 128) <= ATTENTION_MAX_WEIGHTS < attention_weights(8192, 8, 1024)
True
>>> state_bytes("attention", dim=1024, heads=8, head_dim=128) <= STATE_BUDGET_BYTES
True
"""

from __future__ import annotations

__all__ = [
    "ANCHOR_MAX",
    "ATTEND_MAX_VALUES",
    "ATTENTION_MAX_WEIGHTS",
    "BATCH_MAX_VALUES",
    "EWC_MAX_KEYS",
    "EWC_MAX_VALUES",
    "MAX_BATCH",
    "MAX_DIM",
    "MAX_EDGES",
    "MAX_EPOCHS",
    "MAX_HEAD_DIM",
    "MAX_HEADS",
    "MAX_HOPS",
    "MAX_NAME",
    "MAX_NODES",
    "MAX_PARAMS",
    "MAX_RELATIONS",
    "MAX_TARGETS",
    "PATTERNS_FIND_MAX",
    "PATTERNS_MAX_ITER",
    "PATTERNS_MAX_K",
    "PATTERNS_MAX_STEPS",
    "PATTERNS_MAX_TRAJECTORIES",
    "PATTERNS_MAX_VALUES",
    "PATTERNS_MAX_WORK",
    "REPLAY_MAX",
    "STATE_BUDGET_BYTES",
    "TABLE",
    "TRAIN_MAX",
    "TRAIN_MAX_WORK",
    "attention_weights",
    "markdown_table",
    "state_bytes",
]

MiB = 1 << 20
STATE_BUDGET_BYTES = 40 * MiB
"""The most one core's serialised state may take (Redis keeps up to 1 + history + snapshots)."""

MAX_DIM = 8192  # embedding / in_dim / query / node vector length
MAX_TARGETS = 64  # targets of init_instant / init_router (and logits, costs)
MAX_NAME = 256  # a target, param id, relation or node name (characters)
MAX_PARAMS = 1 << 16  # values of one consolidate param_id
EWC_MAX_VALUES = 1 << 21  # values over all param ids (Fisher + snapshot: 16 bytes each)
EWC_MAX_KEYS = 1024  # param ids
MAX_HEADS = 64
MAX_HEAD_DIM = 1024
ATTENTION_MAX_WEIGHTS = 1 << 20  # dim * heads * head_dim: each of Wq, Wk, Wv, Wo holds this many
MAX_RELATIONS = 1024  # the attention relation vocabulary
MAX_NODES = 4096  # nodes of an inline attend subgraph
MAX_EDGES = 16384  # edges of an inline subgraph, or max_edges of a graph read
ATTEND_MAX_VALUES = 1 << 20  # node vector values one attend reads (nodes * dim)
MAX_HOPS = 3
MAX_BATCH = 10_000  # events of one feedback_batch
BATCH_MAX_VALUES = 1 << 22  # embedding values of one feedback_batch (32 MiB as float64)
TRAIN_MAX = 256  # outcomes per router training event (train_router max_samples, beat)
REPLAY_MAX = 128  # outcomes per replay event (beat)
ANCHOR_MAX = 128  # outcomes behind one Fisher anchor (beat)
MAX_EPOCHS = 10
TRAIN_MAX_WORK = 1 << 21  # epochs * samples * in_dim of one train_router (256 samples at 8192)
PATTERNS_MAX_TRAJECTORIES = 4096  # trajectories a pattern bank buffers between clusterings
PATTERNS_MAX_K = 256  # patterns of a bank
PATTERNS_MAX_STEPS = 64  # steps of one trajectory
PATTERNS_MAX_ITER = 100  # Lloyd iterations of one clustering
PATTERNS_MAX_VALUES = 1 << 22  # (max_trajectories + k) * dim: the buffered and pattern vectors (32 MiB)
PATTERNS_MAX_WORK = 1 << 28  # (max_trajectories + k) * dim * k * max_iter of one clustering
PATTERNS_FIND_MAX = 64  # patterns one find_patterns answers

# fixed sizes of the cores (not request-settable), needed for the costs
ROUTER_HIDDEN, ROUTER_RANK, ROUTER_SHIFT_RING = 128, 8, 10
INSTANT_RANK, INSTANT_REPLAY, INSTANT_BASE_RANK = 2, 64, 8  # base rank: KG_BASE_RANK's default
EWC_RING = 10
_F64 = 8


def attention_weights(dim: int, heads: int, head_dim: int) -> int:
    """Entries of one attention projection (each of the four holds ``dim * heads * head_dim``)."""
    return dim * heads * head_dim


def state_bytes(kind: str, **size: int) -> int:
    """Array bytes of a core's state (the serialised blob adds a small JSON header).

    ``instant``: ``in_dim``, ``targets`` (``base_rank``: 8). ``router``: ``in_dim``, ``targets`` (anchored: every
    learned array has a Fisher and a snapshot). ``attention``: ``dim``, ``heads``, ``head_dim``,
    ``relations``. ``ewc``: ``values`` (over all param ids). ``patterns``: ``dim``,
    ``max_trajectories``, ``targets``, ``k``.
    """
    if kind == "instant":
        d, n, r, rb = size["in_dim"], size["targets"], INSTANT_RANK, size.get("base_rank", INSTANT_BASE_RANK)
        return _F64 * (3 * r * (d + n) + INSTANT_REPLAY * (d + 2) + rb * (d + n) + d)
    if kind == "router":
        d, n, h, r = size["in_dim"], size["targets"], ROUTER_HIDDEN, ROUTER_RANK
        params = h * r + r * d + 2 * h + (n + 8) * (h + 1) + n * d
        anchored = h * r + r * d + 2 * h + n * (h + 1) + n * d
        return _F64 * (2 * params + 2 * anchored + 4 * d + 2 * n + ROUTER_SHIFT_RING) + h * d
    if kind == "attention":
        d, h, hd = size["dim"], size.get("heads", 8), size["head_dim"]
        return _F64 * (4 * attention_weights(d, h, hd) + h * (size.get("relations", 0) + 3))
    if kind == "ewc":
        return _F64 * (2 * size["values"] + EWC_RING)
    if kind == "patterns":  # a full buffer and k patterns
        d, n, t, k = size["dim"], size["max_trajectories"], size["targets"], size["k"]
        return _F64 * (n * (d + 2) + k * (d + 4 + 2 * t)) + n * t
    raise ValueError(f"unknown kind {kind!r}")


TABLE: list[tuple[str, str, str]] = [
    ("embedding / `in_dim` / `query` / node vector length", f"{MAX_DIM:,}", "`MAX_DIM`"),
    ("`targets` (init_instant, init_router); `logits`, `costs` entries", f"{MAX_TARGETS}", "`MAX_TARGETS`"),
    ("a target, model, param id, relation or node name", f"{MAX_NAME} characters", "`MAX_NAME`"),
    ("`params` / `grads` of one `consolidate`", f"{MAX_PARAMS:,} values", "`MAX_PARAMS`"),
    ("EWC state over all param ids", f"{EWC_MAX_VALUES:,} values, {EWC_MAX_KEYS:,} param ids",
     "`EWC_MAX_VALUES`, `EWC_MAX_KEYS`"),
    ("attention `heads`; `head_dim`", f"{MAX_HEADS}; {MAX_HEAD_DIM:,}", "`MAX_HEADS`, `MAX_HEAD_DIM`"),
    ("attention `dim × heads × head_dim` (`head_dim` defaults to `dim / heads`)",
     f"{ATTENTION_MAX_WEIGHTS:,}", "`ATTENTION_MAX_WEIGHTS`"),
    ("attention `relations`", f"{MAX_RELATIONS:,}", "`MAX_RELATIONS`"),
    ("`attend`: inline `subgraph.nodes`; `subgraph.edges` / `max_edges`", f"{MAX_NODES:,}; {MAX_EDGES:,}",
     "`MAX_NODES`, `MAX_EDGES`"),
    ("`attend`: node values read (`nodes × dim`, or `(max_edges + 1) × dim` from the graph; "
     "`max_edges` defaults to the most that fits, at most 1,024)", f"{ATTEND_MAX_VALUES:,}", "`ATTEND_MAX_VALUES`"),
    ("`attend` `hops`", f"{MAX_HOPS}", "`MAX_HOPS`"),
    ("`feedback_batch` `events`, `record_trajectories` `trajectories`; their embedding values", f"{MAX_BATCH:,}; {BATCH_MAX_VALUES:,}",
     "`MAX_BATCH`, `BATCH_MAX_VALUES`"),
    ("`train_router` `max_samples`; `epochs`", f"{TRAIN_MAX}; {MAX_EPOCHS}", "`TRAIN_MAX`, `MAX_EPOCHS`"),
    ("`train_router` `epochs × max_samples × in_dim`", f"{TRAIN_MAX_WORK:,}", "`TRAIN_MAX_WORK`"),
    ("beat: outcomes per training / replay / anchor event", f"{TRAIN_MAX} / {REPLAY_MAX} / {ANCHOR_MAX}",
     "`TRAIN_MAX`, `REPLAY_MAX`, `ANCHOR_MAX`"),
    ("patterns: `max_trajectories`; `k`; trajectory `steps`; `max_iter`; `find_patterns` `k`",
     f"{PATTERNS_MAX_TRAJECTORIES:,}; {PATTERNS_MAX_K}; {PATTERNS_MAX_STEPS}; {PATTERNS_MAX_ITER}; "
     f"{PATTERNS_FIND_MAX}", "`PATTERNS_MAX_TRAJECTORIES`, `PATTERNS_MAX_K`, `PATTERNS_MAX_STEPS`, "
     "`PATTERNS_MAX_ITER`, `PATTERNS_FIND_MAX`"),
    ("patterns: `(max_trajectories + k) × dim`; `(max_trajectories + k) × dim × k × max_iter`",
     f"{PATTERNS_MAX_VALUES:,}; {PATTERNS_MAX_WORK:,}", "`PATTERNS_MAX_VALUES`, `PATTERNS_MAX_WORK`"),
    ("`now_ms`, `t_ms`, `estimated_tokens`", "64-bit integers", "(`workers/bodies.py`)"),
]
"""The bounds as the README shows them: (what, bound, name in this module)."""


def markdown_table() -> str:
    """The README's bounds table (kept equal to it by a test)."""
    lines = ["| what a request sets | at most | `learn/limits.py` |", "|---|---|---|"]
    lines += [f"| {what} | {bound} | {name} |" for what, bound, name in TABLE]
    return "\n".join(lines)
