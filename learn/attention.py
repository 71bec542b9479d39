"""Multi-head graph attention: a query vector attends over the nodes of a temporal subgraph.

Each usable node (embedding of the right dimension) is one attention item. Its edge features are
the mean, over the edges touching it, of ``[one-hot(relation), exp(-age / 1 week), weight]``, where
``age = now_ms - t_ms`` (clamped at 0; an edge without ``t_ms`` counts as infinitely old). Per head
``h`` the logit of node ``n`` is

    q_h . k_{h,n} / sqrt(head_dim)  +  e_h . features_n

``e_h`` holds a per-relation bias (the relation nudge: some relations draw more attention than
others), a recency coefficient and a weight coefficient; all are seeded, so a given seed always
gives the same attention. Softmax over nodes gives per-head weights that sum to one; the weighted
values are concatenated, projected back to ``dim``, added to the query (residual) and
layer-normalised.

Relations outside the ``relations`` vocabulary share one "other" slot. The key and value
projections are folded into the query / weighted node sums, so the cost is linear in the node count
with small constants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from learn import _check
from learn._base import Core
from learn.errors import LearnInputError
from learn.state import State, expect_array, register

__all__ = ["GraphAttention", "WEEK_MS"]

WEEK_MS = 7 * 24 * 3600 * 1000
_LN_EPS = 1e-5


@register
class GraphAttention(Core):
    """Seeded 8-head attention over a subgraph with relation, recency and weight edge features.

    >>> att = GraphAttention(dim=16, seed=0, relations=["works_at", "knows"])
    >>> q = [1.0] * 16
    >>> nodes = {"acme": [0.5] * 16, "bob": [-0.5] * 16, "bad": [1.0] * 3}   # "bad" is skipped
    >>> edges = [{"src": "alice", "dst": "acme", "relation": "works_at", "weight": 1.0, "t_ms": 0},
    ...          {"src": "alice", "dst": "bob", "relation": "knows", "weight": 0.5, "t_ms": 0}]
    >>> vec, weights = att.attend(q, nodes, edges, now_ms=WEEK_MS)
    >>> vec.shape, sorted(weights), len(weights["acme"])
    ((16,), ['acme', 'bob'], 8)
    >>> [round(weights["acme"][h] + weights["bob"][h], 12) for h in range(8)] == [1.0] * 8
    True
    """

    kind: ClassVar[str] = "attention"

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        head_dim: int | None = None,
        seed: int = 0,
        relations: Sequence[str] = (),
        recency_ms: float = WEEK_MS,
        relation_scale: float = 1.0,
    ) -> None:
        self.dim = _check.integer(dim, "dim", lo=1)
        self.heads = _check.integer(heads, "heads", lo=1)
        if head_dim is None:
            if self.dim % self.heads:
                raise LearnInputError("dim", "must be divisible by heads")
            head_dim = self.dim // self.heads
        self.head_dim = _check.integer(head_dim, "head_dim", lo=1)
        self.seed = _check.integer(seed, "seed", lo=0)
        if not isinstance(relations, (list, tuple)) or not all(
            isinstance(r, str) and r for r in relations
        ):
            raise LearnInputError("relations", "expected a list of non-empty names")
        if len(set(relations)) != len(relations):
            raise LearnInputError("relations", "must be unique")
        self.relations = list(relations)
        self.recency_ms = _check.number(recency_ms, "recency_ms", lo=1.0)
        self.relation_scale = _check.number(relation_scale, "relation_scale", lo=0.0)
        self._rel_index = {r: i for i, r in enumerate(self.relations)}
        self._init_params()

    @property
    def n_features(self) -> int:
        return len(self.relations) + 3  # relations, "other", recency, weight

    def _init_params(self) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0]))
        d, hd, H = self.dim, self.head_dim, self.heads
        self._Wq = rng.standard_normal((H, hd, d)) / math.sqrt(d)
        self._Wk = rng.standard_normal((H, hd, d)) / math.sqrt(d)
        self._Wv = rng.standard_normal((H, hd, d)) / math.sqrt(d)
        self._Wo = rng.standard_normal((d, H * hd)) / math.sqrt(H * hd)
        nrel = len(self.relations) + 1
        edge = np.empty((H, self.n_features))
        edge[:, :nrel] = rng.standard_normal((H, nrel)) * self.relation_scale
        edge[:, nrel] = 1.0  # recent edges draw attention
        edge[:, nrel + 1] = 1.0  # heavy edges draw attention
        self._E = edge

    def relation_bias(self, relation: str) -> np.ndarray:
        """The per-head logit nudge an edge of ``relation`` gives its nodes."""
        return self._E[:, self._rel_index.get(relation, len(self.relations))].copy()

    def set_relation_bias(self, relation: str, bias: Any) -> None:
        """Set the per-head nudge of a relation (or of "other" for an unknown one)."""
        b = _check.vector(bias, "bias", self.heads)
        self._E[:, self._rel_index.get(relation, len(self.relations))] = b

    # --- verb --------------------------------------------------------------------------------

    def attend(
        self,
        query: Any,
        nodes: Mapping[str, Any],
        edges: Sequence[Mapping[str, Any]],
        now_ms: Any,
    ) -> tuple[np.ndarray, dict[str, list[float]]]:
        """Attended context vector (``dim``,) and per-node per-head weights ``{id: [w_h]}``."""
        q = _check.vector(query, "query", self.dim)
        now = _check.integer(now_ms, "now_ms")
        if not isinstance(nodes, Mapping):
            raise LearnInputError("subgraph.nodes", "expected a map from node id to vector")
        if not isinstance(edges, (list, tuple)):
            raise LearnInputError("subgraph.edges", "expected a list of edges")
        ids, X = self._usable_nodes(nodes)
        feats = self._edge_features(ids, edges, now)  # validates the edges even with no nodes
        if not ids:
            return _layer_norm(q), {}
        H, hd = self.heads, self.head_dim
        qh = self._Wq.reshape(H * hd, self.dim) @ q  # (H*hd,)
        qk = np.matmul(qh.reshape(H, 1, hd), self._Wk)[:, 0, :]  # query folded through keys
        logits = (qk @ X.T) * (1.0 / math.sqrt(hd)) + self._E @ feats.T  # (H, N)
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        pooled = w @ X  # (H, dim): weighted node sums, then the value map
        values = np.matmul(self._Wv, pooled[:, :, None]).reshape(H * hd)
        out = _layer_norm(self._Wo @ values + q)
        weights = dict(zip(ids, w.T.tolist()))
        return out, weights

    def _usable_nodes(self, nodes: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
        ids: list[str] = []
        rows: list[np.ndarray] = []
        for nid, vec in nodes.items():
            if not isinstance(nid, str):
                raise LearnInputError("subgraph.nodes", "node ids must be strings")
            v = vec if isinstance(vec, np.ndarray) else _as_array(vec)
            if v.dtype.kind not in "fiu":
                raise LearnInputError("subgraph.nodes", "node vectors must hold numbers only")
            if v.ndim == 1 and v.shape[0] == self.dim:
                ids.append(nid)
                rows.append(v)
        if not rows:
            return ids, np.zeros((0, self.dim))
        X = np.array(rows, dtype=np.float64)
        if not np.isfinite(X).all():
            raise LearnInputError("subgraph.nodes", "must be finite (no NaN or infinity)")
        return ids, X

    def _edge_features(
        self, ids: list[str], edges: Sequence[Mapping[str, Any]], now: int
    ) -> np.ndarray:
        pos = {nid: j for j, nid in enumerate(ids)}
        rel_index, other = self._rel_index, len(self.relations)
        rows: list[int] = []
        rels: list[int] = []
        weights: list[float] = []
        ages: list[float] = []
        for e in edges:
            if not isinstance(e, Mapping):
                raise LearnInputError("subgraph.edges", "every edge must be an object")
            src, dst = e.get("src"), e.get("dst")
            rel = e.get("relation", "")
            weight = e.get("weight", 1.0)
            t = e.get("t_ms")
            if not (isinstance(src, str) and isinstance(dst, str) and isinstance(rel, str)):
                raise LearnInputError("subgraph.edges", "src, dst and relation must be strings")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise LearnInputError("subgraph.edges", "weight must be a number")
            if not math.isfinite(weight):
                raise LearnInputError("subgraph.edges", "weight must be finite (no NaN or inf)")
            if t is not None and (isinstance(t, bool) or not isinstance(t, int)):
                raise LearnInputError("subgraph.edges", "t_ms must be an integer")
            age = math.inf if t is None else float(max(now - t, 0))
            for node in (src, dst) if src != dst else (src,):
                j = pos.get(node)
                if j is not None:
                    rows.append(j)
                    rels.append(rel_index.get(rel, other))
                    weights.append(float(weight))
                    ages.append(age)
        w = np.array(weights, dtype=np.float64)
        nrel = len(self.relations) + 1
        acc = np.zeros((len(ids), self.n_features))
        if rows:
            r = np.array(rows)
            np.add.at(acc, (r, np.array(rels)), 1.0)
            np.add.at(acc[:, nrel], r, np.exp(-np.array(ages) / self.recency_ms))
            np.add.at(acc[:, nrel + 1], r, w)
        count = acc[:, :nrel].sum(axis=1)
        return acc / np.maximum(count, 1.0)[:, None]

    # --- persistence -------------------------------------------------------------------------

    def to_state(self) -> State:
        return State(
            settings=self.settings(),
            scalars={},
            arrays={"Wq": self._Wq, "Wk": self._Wk, "Wv": self._Wv, "Wo": self._Wo, "E": self._E},
        )

    @classmethod
    def from_state(cls, state: State) -> GraphAttention:
        core = cls._from_settings(state)
        H, hd, d, a = core.heads, core.head_dim, core.dim, state.arrays
        core._Wq = expect_array(a, "Wq", (H, hd, d))
        core._Wk = expect_array(a, "Wk", (H, hd, d))
        core._Wv = expect_array(a, "Wv", (H, hd, d))
        core._Wo = expect_array(a, "Wo", (d, H * hd))
        core._E = expect_array(a, "E", (H, core.n_features))
        return core


def _as_array(value: Any) -> np.ndarray:
    if not isinstance(value, (list, tuple)):
        raise LearnInputError("subgraph.nodes", "node vectors must be lists of numbers")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise LearnInputError("subgraph.nodes", "node vectors must be lists of numbers") from exc


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mu = x.mean()
    var = x.var()
    return (x - mu) / np.sqrt(var + _LN_EPS)
