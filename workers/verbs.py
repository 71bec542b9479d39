"""The learning verbs: one table, ``LEARNING_VERBS``, one entry per verb.

An entry names the verb, the core it belongs to and its request body (:mod:`workers.requests`),
and says what it does:

- an **update** has ``apply(core, event_body) -> (core, data)``, run by a worker on the state's
  queue in arrival order (``init`` when it replaces the core); ``check(core, body)`` runs in the
  caller against the current core before anything is queued, and ``epoch_bound`` makes the queue
  refuse the event if the core was re-initialised after the check;
- a **read** has ``read(current, body) -> data``, answered in the caller from the current core
  (:mod:`workers.reads`), changing nothing;
- anything else has its own ``handler`` (:mod:`workers.handlers`).

The workers' routing (``UPDATES``, ``CORE_OF_VERB``), the dispatch handlers (``DISPATCH_VERBS``),
the OpenAPI document and the docs' verb table are all derived from this table, so a new verb is a
core method and an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np
from pydantic import BaseModel

from kg.dispatch import Verb
from learn import EWC, FastGRNNRouter, GraphAttention, LearnInputError, MicroLoRA, PatternBank
from workers import checks, handlers, reads
from workers import requests as rq


@dataclass(frozen=True)
class LearningVerb:
    name: str
    core: str
    body: type[BaseModel] | None  # None: queued by the service itself (the beat's anchor), not a request
    apply: Callable[[Any, dict], tuple[Any, dict]] | None = None
    check: Callable[[Any, Any], None] | None = None
    read: Callable[[Any, Any], dict] | None = None
    handler: Callable[..., Any] | None = None
    init: bool = False
    epoch_bound: bool = False
    async_ok: bool = False
    summary: str = ""
    field_names: Mapping[str, str] = field(default_factory=dict)
    """learn's names of arguments that the request names otherwise (for error messages)"""
    keeps_outcome: bool = False
    """an applied event with an embedding is kept as a training sample (``train_router``)"""
    from_settings: Mapping[str, str] = field(default_factory=dict)
    """project settings the queued body takes where the request gives none: body key to the
    attribute of :class:`kg.config.WorkerSettings` (e.g. what an init saves in the state)"""
    stamped: bool = False
    """the service stamps the queued body with the time it queues it (``at_ms``): a core reads no clock"""


# -- what the updates do to their core (run by the workers) -----------------------------------


_INSTANT_SETTINGS = {"lr_min": "learn_lr_min", "base_rank": "base_rank", "base_micro_scale": "base_micro_scale",
                     "base_lambda": "base_lambda", "base_min_inputs": "base_min_inputs"}


def _init_instant(core: Any, b: dict) -> tuple[Any, dict]:
    c = MicroLoRA(targets=b["targets"], in_dim=b["in_dim"], seed=b.get("seed", 0),
                  **{k: b[k] for k in _INSTANT_SETTINGS if k in b})
    return c, {"targets": c.targets, "in_dim": c.in_dim, "lr": c.lr}


def _feedback(core: MicroLoRA, b: dict) -> tuple[Any, dict]:
    core.learn(b["embedding"], b["model"], b["payload"]["quality"])
    return core, {"updates": core.updates, "lr": core.lr}


def _consolidate_adapter(core: MicroLoRA, b: dict) -> tuple[Any, dict]:
    before = core.consolidations
    core.consolidate(b.get("min_new_updates", 0))
    return core, {"consolidated": core.consolidations > before, "consolidations": core.consolidations,
                  "inputs": core.replay_len, "pending_updates": core.pending_updates}


def _reset(core: MicroLoRA, b: dict) -> tuple[Any, dict]:
    core.reset()
    return core, {"lr": core.lr}


def _record_loss(core: EWC, b: dict) -> tuple[Any, dict]:
    fired = core.record_loss(b["loss"])
    return core, {"boundary": fired, "boundaries": core.boundaries, "losses_seen": core.losses_seen}


def _consolidate(core: EWC, b: dict) -> tuple[Any, dict]:
    core.consolidate(b["param_id"], b["params"], b["grads"])
    return core, {"fisher_keys": core.fisher_keys, "param_id": b["param_id"]}


def _init_router(core: Any, b: dict) -> tuple[Any, dict]:
    c = FastGRNNRouter(in_dim=b["in_dim"], targets=b["targets"], trained=b.get("trained", False),
                       epsilon=b.get("epsilon", 0.1), costs=b.get("costs"),
                       cost_weight=b.get("cost_weight", 0.0), seed=b.get("seed", 0),
                       policy=b.get("policy", "epsilon"), epsilon_fade=b.get("epsilon_fade"),
                       ucb_alpha=b.get("ucb_alpha"))
    return c, {"targets": c.targets, "in_dim": c.in_dim, "algo": c.mode, "policy": c.policy,
               "epsilon_fade": c.epsilon_fade, "ucb_alpha": c.ucb_alpha}


def _record_outcome(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    shift = core.record_outcome(b["target"], b["quality"], embedding=b.get("embedding"),
                                estimated_tokens=b.get("estimated_tokens"),
                                temperature=b.get("temperature"), top_p=b.get("top_p"))
    return core, {"target": b["target"], "ema": core.outcome_ema[b["target"]],
                  "outcomes": core.outcome_counts[b["target"]], "algo": core.mode,
                  "trained": b.get("embedding") is not None,
                  "boundary": shift, "boundaries": core.boundaries}


def _samples(b: dict) -> tuple[list, list, list, list | None]:
    rows = b["samples"]
    if not isinstance(rows, list) or not rows:
        raise LearnInputError("samples", "expected a non-empty list of outcomes")
    tokens = [s.get("estimated_tokens") for s in rows]
    return ([s["embedding"] for s in rows], [s["target"] for s in rows],
            [s["quality"] for s in rows], None if any(t is None for t in tokens) else tokens)


def _train_router(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    xs, ts, qs, tokens = _samples(b)
    loss = core.train_batch(xs, ts, qs, epochs=b.get("epochs", 1), estimated_tokens=tokens)
    return core, {"loss": loss, "samples": len(xs), "algo": core.mode}


def _anchor_router(core: FastGRNNRouter, b: dict) -> tuple[Any, dict]:
    """EWC anchor of the router: Fisher = mean squared gradient over recent outcomes."""
    xs, ts, qs, _ = _samples(b)
    fisher: dict[str, np.ndarray] = {}
    for x, t, q in zip(xs, ts, qs):
        for name, g in core.grads(x, t, q).items():
            acc = fisher.get(name)
            fisher[name] = g * g if acc is None else acc + g * g
    core.anchor({name: f / len(xs) for name, f in fisher.items()})
    return core, {"anchored": sorted(fisher), "samples": len(xs)}


def _init_attention(core: Any, b: dict) -> tuple[Any, dict]:
    c = GraphAttention(dim=b["dim"], heads=b.get("heads", 8), head_dim=b.get("head_dim"),
                       seed=b.get("seed", 0), relations=b.get("relations", []))
    return c, {"dim": c.dim, "heads": c.heads, "head_dim": c.head_dim}


def _init_patterns(core: Any, b: dict) -> tuple[Any, dict]:
    c = PatternBank(**{name: b[name] for name in rq.InitPatterns.model_fields if name in b})  # defaults: the core's
    return c, {"dim": c.dim, "targets": c.targets, "k": c.k, "max_trajectories": c.max_trajectories}


def _patterns_data(core: PatternBank) -> dict:
    return {"buffered": core.buffered, "patterns": core.patterns, "recorded": core.recorded,
            "clusterings": core.clusterings}


def _record_trajectory(core: PatternBank, b: dict) -> tuple[Any, dict]:
    core.record(b, b["at_ms"])  # a full buffer is clustered first: clusterings tells
    return core, _patterns_data(core)


def _cluster_patterns(core: PatternBank, b: dict) -> tuple[Any, dict]:
    core.cluster()
    return core, _patterns_data(core)


# -- the table ---------------------------------------------------------------------------------

_FEEDBACK = LearningVerb("feedback", "instant", rq.Feedback, apply=_feedback, check=checks.feedback,
                         epoch_bound=True, field_names={"target": "model", "quality": "payload.quality"},
                         summary="One quality signal for a target: one adapter step.")

_RECORD_TRAJECTORY = LearningVerb(
    "record_trajectory", "patterns", rq.RecordTrajectory, apply=_record_trajectory, check=checks.trajectory,
    epoch_bound=True, stamped=True, summary="What one request did (embedding, steps, quality), kept for clustering.")

LEARNING_VERBS: tuple[LearningVerb, ...] = (
    # instant: the rank-2 MicroLoRA adapter
    LearningVerb("init_instant", "instant", rq.InitInstant, apply=_init_instant, init=True,
                 from_settings=_INSTANT_SETTINGS,
                 summary="Create (or replace) the namespace's MicroLoRA adapter (and its zero base)."),
    _FEEDBACK,
    LearningVerb("feedback_batch", "instant", rq.FeedbackBatch, handler=partial(handlers.feedback_batch, _FEEDBACK),
                 async_ok=True,
                 summary="Many feedback events in one call, applied in order."),
    LearningVerb("reset_adapter", "instant", rq.ResetAdapter, apply=_reset, check=checks.reset, epoch_bound=True,
                 summary="Zero the adapter's learned delta (micro and base)."),
    LearningVerb("apply_adapter", "instant", rq.ApplyAdapter, read=reads.apply_adapter,
                 summary="Logits adjusted by the adapter (base + micro) for an embedding."),
    LearningVerb("consolidate_adapter", "instant", rq.ConsolidateAdapter, apply=_consolidate_adapter,
                 check=checks.consolidate_adapter, epoch_bound=True,
                 summary="Distil base + micro adapter into the rank-8 base now; shrink the micro."),
    # ewc: EWC++ Fisher information against forgetting
    LearningVerb("record_loss", "ewc", rq.RecordLoss, apply=_record_loss,
                 summary="A training loss; a shift in losses marks a task boundary."),
    LearningVerb("consolidate", "ewc", rq.Consolidate, apply=_consolidate, check=checks.consolidate,
                 summary="Fold gradients into the Fisher estimate of a parameter set."),
    LearningVerb("ewc_penalty", "ewc", rq.EwcPenalty, read=reads.ewc_penalty,
                 summary="The EWC penalty of moving a parameter set away from its anchor."),
    # router: the FastGRNN router
    LearningVerb("init_router", "router", rq.InitRouter, apply=_init_router, init=True,
                 summary="Create (or replace) the namespace's router."),
    LearningVerb("record_outcome", "router", rq.RecordOutcome, apply=_record_outcome, check=checks.outcome,
                 epoch_bound=True, keeps_outcome=True,
                 summary="The quality a target achieved; with an embedding, one training step."),
    LearningVerb("train_router", "router", rq.TrainRouter, apply=_train_router, handler=handlers.train_router,
                 async_ok=True, summary="Batch training on the recorded outcomes."),
    LearningVerb("anchor_router", "router", None, apply=_anchor_router,
                 summary="(beat) EWC anchor of the router on recent outcomes."),
    LearningVerb("route", "router", rq.Route, read=reads.route,
                 summary="The target, model and sampling parameters for an embedding."),
    # attention: 8-head graph attention
    LearningVerb("init_attention", "attention", rq.InitAttention, apply=_init_attention, init=True,
                 summary="Create (or replace) the namespace's graph attention."),
    LearningVerb("attend", "attention", rq.Attend, handler=handlers.attend,
                 summary="Attention over a subgraph given, or read from the graph as of t."),
    LearningVerb("upsert_node", "attention", rq.UpsertNode, handler=handlers.upsert_node,
                 summary="Store a node's embedding in the graph, for attend."),
    # patterns: trajectories clustered into a pattern bank
    LearningVerb("init_patterns", "patterns", rq.InitPatterns, apply=_init_patterns, init=True,
                 summary="Create (or replace) the namespace's pattern bank."),
    _RECORD_TRAJECTORY,
    LearningVerb("record_trajectories", "patterns", rq.RecordTrajectories,
                 handler=partial(handlers.record_trajectories, _RECORD_TRAJECTORY), async_ok=True,
                 summary="Many trajectories in one call, recorded in order."),
    LearningVerb("cluster_patterns", "patterns", rq.ClusterPatterns, apply=_cluster_patterns,
                 check=checks.patterns, epoch_bound=True,
                 summary="Fold the recorded trajectories into the patterns now (beat does it too)."),
    LearningVerb("find_patterns", "patterns", rq.FindPatterns, read=reads.find_patterns,
                 summary="The nearest patterns to an embedding, with their statistics."),
    # any core
    LearningVerb("poll", "", rq.Poll, handler=handlers.poll,
                 summary="The state of an update queued with async."),
)

UPDATES: dict[str, LearningVerb] = {v.name: v for v in LEARNING_VERBS if v.apply is not None}
"""What the workers apply, by verb (:func:`workers.cores.apply_batch`)."""
CORE_OF_VERB: dict[str, str] = {name: v.core for name, v in UPDATES.items()}


def _dispatch_verb(entry: LearningVerb) -> Verb:
    if entry.handler is not None:
        handler, async_ok = entry.handler, entry.async_ok
    elif entry.read is not None:
        handler, async_ok = handlers.read_handler(entry), False
    else:
        handler, async_ok = handlers.update_handler(entry), True
    return Verb(entry.name, entry.body, handler, async_ok, entry.summary)


DISPATCH_VERBS: tuple[Verb, ...] = tuple(_dispatch_verb(v) for v in LEARNING_VERBS if v.body is not None)
HEALTH_SECTIONS = (handlers.redis_health, handlers.learning_health)


def submit_many(session: Any, namespace: str, verb: str, bodies: list[dict]) -> list[dict]:
    """Queue many ``verb`` updates at once (see :func:`workers.handlers.submit_many`)."""
    return handlers.submit_many(session, UPDATES[verb], namespace, bodies)
