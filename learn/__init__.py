"""Learning cores: pure numpy state objects, no IO, no clock (time comes in as an argument).

- :class:`MicroLoRA` (``kind="instant"``): rank-2 Hebbian adapter over per-target logits, beside a
  rank-8 base adapter that ``consolidate`` distils it into (:mod:`learn.base_lora`).
- :class:`EWC` (``kind="ewc"``): EWC++ Fisher/snapshot store and loss-shift boundary detector.
- :class:`FastGRNNRouter` (``kind="router"``): sparse low-rank router that learns from outcomes.
- :class:`GraphAttention` (``kind="attention"``): seeded multi-head attention over a subgraph.
- :class:`PatternBank` (``kind="patterns"``): trajectories clustered into patterns with statistics.

Every core's whole state goes through :func:`to_bytes` / :func:`from_bytes` (safetensors).
Errors are :class:`LearnInputError` (bad input, ``.field`` names it) and :class:`StateError` (a
blob that fails a check). The package imports numpy, safetensors (the byte format) and the standard
library only; the JSON request models of the learning verbs live with the service
(``workers.bodies``).
"""

from learn.errors import LearnInputError, StateError
from learn.state import SCHEMA, SCHEMA_VERSION, from_bytes, peek_kind, to_bytes
from learn.instant import MicroLoRA
from learn.ewc import EWC
from learn.router import CONTEXT_BUCKETS, CONTEXT_WINDOWS, Draw, FastGRNNRouter, context_bucket
from learn.attention import WEEK_MS, GraphAttention
from learn.patterns import PatternBank

__all__ = [
    "CONTEXT_BUCKETS",
    "CONTEXT_WINDOWS",
    "Draw",
    "EWC",
    "FastGRNNRouter",
    "GraphAttention",
    "LearnInputError",
    "MicroLoRA",
    "PatternBank",
    "SCHEMA",
    "SCHEMA_VERSION",
    "StateError",
    "WEEK_MS",
    "context_bucket",
    "from_bytes",
    "peek_kind",
    "to_bytes",
]
