"""Request bodies of the learning verbs of the dispatch surface, as strict pydantic models.

They live here, at the service boundary, so that :mod:`learn` stays numpy and the standard
library (the cores check their own arguments again, cheaply, in ``learn._check``).

Strict means: no string-to-number coercion, no booleans for numbers, finite floats only, unknown
fields refused, bounded sizes (every bound is in :mod:`learn.limits`, with what it costs).
:func:`validate` turns any failure into a :class:`~learn.errors.LearnInputError` whose ``field``
is the dotted location (``payload.quality``, ``embedding.3``); its message is pydantic's, which
names the rule broken and never the value. Checks that need a live core (the embedding dimension of an initialised adapter,
an unknown target) are done by the core's methods and name the field the same way.

>>> validate("feedback", {"embedding": [0.1, 0.2], "model": "gpt", "payload": {"quality": 0.9},
...                       "now_ms": 0}).payload.quality
0.9
>>> try:
...     validate("feedback", {"embedding": [0.1], "model": "gpt", "payload": {"quality": "high"},
...                           "now_ms": 0})
... except LearnInputError as err:
...     print(err.field)
payload.quality
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from learn.errors import LearnInputError
from learn.limits import (
    ATTEND_MAX_VALUES,
    ATTENTION_MAX_WEIGHTS,
    MAX_DIM,
    MAX_EDGES,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_NAME,
    MAX_NODES,
    MAX_PARAMS,
    MAX_RELATIONS,
    MAX_TARGETS,
    PATTERNS_FIND_MAX,
    PATTERNS_MAX_ITER,
    PATTERNS_MAX_K,
    PATTERNS_MAX_STEPS,
    PATTERNS_MAX_TRAJECTORIES,
    PATTERNS_MAX_VALUES,
    PATTERNS_MAX_WORK,
    attention_weights,
)
from learn.router_bayes import MAX_EPSILON_FADE, MAX_UCB_ALPHA, default_policy

__all__ = [
    "MAX_DIM",
    "MAX_EDGES",
    "MAX_NODES",
    "MAX_PARAMS",
    "MAX_TARGETS",
    "VERBS",
    "field_error",
    "validate",
]


def field_error(model: str, field: str, message: str, value: Any) -> ValidationError:
    """A validation error located at ``field``, for a model validator to raise (its own errors
    have no field; pydantic keeps the location of a ValidationError raised inside)."""
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=PydanticCustomError("too_large", message), loc=(field,), input=value)]
    )


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Vector = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
ParamVector = Annotated[list[float], Field(min_length=1, max_length=MAX_PARAMS)]
Quality = Annotated[float, Field(ge=0.0, le=1.0)]
TargetList = Annotated[list[Name], Field(min_length=1, max_length=MAX_TARGETS)]
Logits = Annotated[list[float], Field(min_length=1, max_length=MAX_TARGETS)]
Cost = Annotated[float, Field(ge=0.0)]
Ms = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # a time; beyond 64 bits it overflows float
Tokens = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


def _unique(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("names must be unique")
    return value


class InitInstant(_Body):
    targets: TargetList
    in_dim: Annotated[int, Field(ge=1, le=MAX_DIM)] = 384

    _targets = field_validator("targets")(_unique)


class FeedbackPayload(_Body):
    quality: Quality
    signal: Annotated[str, Field(max_length=MAX_NAME)] | None = None


class Feedback(_Body):
    embedding: Vector
    model: Name
    payload: FeedbackPayload
    now_ms: Ms


class ApplyAdapter(_Body):
    embedding: Vector
    logits: Logits | None = None
    parts: bool = False
    """also answer the base's and the micro adapter's offsets (``logits`` is their sum, plus the
    logits given)"""


class ConsolidateAdapter(_Body):
    min_new_updates: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    """do nothing unless this many feedback updates came since the last consolidation (the beat
    sets ``KG_BASE_MIN_UPDATES``, so a consolidation it queued twice runs once)"""


class Empty(_Body):
    pass


class RecordLoss(_Body):
    loss: float


class Consolidate(_Body):
    param_id: Name
    params: ParamVector
    grads: ParamVector

    @field_validator("grads")
    @classmethod
    def _same_length(cls, value: list[float], info: ValidationInfo) -> list[float]:
        params = info.data.get("params")
        if params is not None and len(params) != len(value):
            raise ValueError("must have as many entries as params")
        return value


class EwcPenalty(_Body):
    param_id: Name
    params: ParamVector


class InitRouter(_Body):
    in_dim: Annotated[int, Field(ge=1, le=MAX_DIM)]
    targets: TargetList
    trained: bool = False
    epsilon: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    costs: Annotated[dict[Name, Cost], Field(max_length=MAX_TARGETS)] | None = None
    cost_weight: Annotated[float, Field(ge=0.0)] = 0.0
    policy: Literal["thompson", "ucb", "epsilon"] = Field(
        default_factory=lambda data: default_policy(data["epsilon"]))  # not called if epsilon failed
    """how the model is chosen (``learn.router.POLICIES``). Unset: with an ``epsilon`` above 0 (the
    default 0.1) the upper confidence bound of the router's Bayesian head (``ucb``), without one
    Thompson sampling on the whole posterior (``thompson``), so that a target tried rarely is never
    written off (``learn.router_bayes``). ``thompson`` samples at half the posterior's spread when
    there is an epsilon floor; ``epsilon`` is the greedy network of earlier releases. ``epsilon``
    exploration applies under every policy."""
    epsilon_fade: Annotated[float, Field(ge=0.0, le=MAX_EPSILON_FADE)] | None = None
    """the epsilon floor fades once every target has this many outcomes (``epsilon * epsilon_fade /
    fewest outcomes``; ``learn.router_bayes.exploration_rate``); 0 keeps it constant. Unset: 50 under
    ``ucb`` and ``thompson`` with an epsilon above 0, else 0"""
    ucb_alpha: Annotated[float, Field(ge=0.0, le=MAX_UCB_ALPHA)] | None = None
    """how wide ``ucb``'s bound is (``mean + ucb_alpha * sd``). Unset: 2, which measured best from a
    cold start over 1,000-1,300 requests; over about 10,000 the bound of 1 regretted 1-6% less
    (``bench/README-learn.md``)"""

    _targets = field_validator("targets")(_unique)

    @field_validator("costs")
    @classmethod
    def _known(cls, value: dict[str, float] | None, info: ValidationInfo) -> Any:
        targets = info.data.get("targets")
        if value is not None and targets is not None and not set(value) <= set(targets):
            raise ValueError("names a target that is not in targets")
        return value


class Route(_Body):
    embedding: Vector
    estimated_tokens: Tokens | None = None
    adapter_logits: Logits | None = None
    explore: bool = True
    """false: the router's choice on what it has learnt, without exploring (no epsilon-random
    target, no Thompson noise, no UCB bonus: the posterior mean); for evaluation, or traffic that
    should not pay for the router's learning"""


class RecordOutcome(_Body):
    target: Name
    quality: Quality
    embedding: Vector | None = None
    estimated_tokens: Tokens | None = None
    temperature: Annotated[float, Field(ge=0.1, le=1.5)] | None = None
    top_p: Annotated[float, Field(ge=0.5, le=1.0)] | None = None


class InitAttention(_Body):
    dim: Annotated[int, Field(ge=1, le=MAX_DIM)]
    heads: Annotated[int, Field(ge=1, le=MAX_HEADS)] = 8
    head_dim: Annotated[int, Field(ge=1, le=MAX_HEAD_DIM)] | None = Field(
        default=None, validate_default=True
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    relations: Annotated[list[Name], Field(max_length=MAX_RELATIONS)] = []

    _relations = field_validator("relations")(_unique)

    @field_validator("head_dim")
    @classmethod
    def _divisible(cls, value: int | None, info: ValidationInfo) -> int | None:
        dim, heads = info.data.get("dim"), info.data.get("heads")
        if value is None and dim is not None and heads is not None and dim % heads:
            raise ValueError("dim must be divisible by heads when head_dim is not given")
        return value

    @model_validator(mode="after")
    def _within_budget(self) -> InitAttention:
        """Each of the four projections holds dim x heads x head_dim floats: bounded before any
        is allocated (the field named is the one the caller chose, or dim)."""
        head_dim = self.head_dim if self.head_dim is not None else self.dim // self.heads
        if attention_weights(self.dim, self.heads, head_dim) > ATTENTION_MAX_WEIGHTS:
            field = "head_dim" if self.head_dim is not None else "dim"
            raise field_error(
                type(self).__name__, field,
                f"dim x heads x head_dim (head_dim defaults to dim / heads) must be at most "
                f"{ATTENTION_MAX_WEIGHTS:,}: lower dim, heads or head_dim",
                getattr(self, field),
            )
        return self


class Edge(_Body):
    src: Name
    dst: Name
    relation: Annotated[str, Field(max_length=MAX_NAME)] = ""
    weight: float = 1.0
    t_ms: Ms | None = None


class Subgraph(_Body):
    nodes: Annotated[dict[Name, Vector], Field(max_length=MAX_NODES)]
    edges: Annotated[list[Edge], Field(max_length=MAX_EDGES)] = []

    @model_validator(mode="after")
    def _values_within_budget(self) -> Subgraph:
        if sum(map(len, self.nodes.values())) > ATTEND_MAX_VALUES:
            raise field_error(type(self).__name__, "nodes",
                             f"must hold at most {ATTEND_MAX_VALUES:,} values in all", len(self.nodes))
        return self


class Attend(_Body):
    query: Vector
    subgraph: Subgraph
    now_ms: Ms


class InitPatterns(_Body):
    """A pattern bank (``learn.PatternBank``); its two size products are bounded before anything
    is allocated: the vectors it holds, and the work of one clustering."""

    dim: Annotated[int, Field(ge=1, le=MAX_DIM)]
    targets: TargetList
    max_trajectories: Annotated[int, Field(ge=1, le=PATTERNS_MAX_TRAJECTORIES)] = 1024
    k: Annotated[int, Field(ge=1, le=PATTERNS_MAX_K)] = 16
    max_steps: Annotated[int, Field(ge=0, le=PATTERNS_MAX_STEPS)] = 16
    step_weight: Annotated[float, Field(ge=0.0, le=100.0)] = 0.25
    quality_floor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    max_iter: Annotated[int, Field(ge=1, le=PATTERNS_MAX_ITER)] = 20

    _targets = field_validator("targets")(_unique)

    @model_validator(mode="after")
    def _within_budget(self) -> InitPatterns:
        values = (self.max_trajectories + self.k) * self.dim
        if values > PATTERNS_MAX_VALUES:
            raise field_error(type(self).__name__, "max_trajectories",
                              f"(max_trajectories + k) x dim must be at most {PATTERNS_MAX_VALUES:,}",
                              self.max_trajectories)
        if values * self.k * self.max_iter > PATTERNS_MAX_WORK:
            raise field_error(type(self).__name__, "max_iter",
                              f"(max_trajectories + k) x dim x k x max_iter must be at most {PATTERNS_MAX_WORK:,}: "
                              "lower max_iter, k, max_trajectories or dim", self.max_iter)
        return self


class Step(_Body):
    embedding: Vector
    target: Name | None = None


class Trajectory(_Body):
    """What one request did: its query embedding, its steps and its final quality."""

    embedding: Vector
    steps: Annotated[list[Step], Field(max_length=PATTERNS_MAX_STEPS)] = []
    quality: Quality


class FindPatterns(_Body):
    embedding: Vector
    k: Annotated[int, Field(ge=1, le=PATTERNS_FIND_MAX)] = 5


VERBS: dict[str, type[_Body]] = {
    "init_instant": InitInstant,
    "feedback": Feedback,
    "apply_adapter": ApplyAdapter,
    "consolidate_adapter": ConsolidateAdapter,
    "reset_adapter": Empty,
    "record_loss": RecordLoss,
    "consolidate": Consolidate,
    "ewc_penalty": EwcPenalty,
    "init_router": InitRouter,
    "route": Route,
    "record_outcome": RecordOutcome,
    "init_attention": InitAttention,
    "attend": Attend,
    "init_patterns": InitPatterns,
    "record_trajectory": Trajectory,
    "cluster_patterns": Empty,
    "find_patterns": FindPatterns,
}
"""The learning verbs and their body models."""


def validate(verb: str, body: Any) -> _Body:
    """Validate ``body`` for ``verb``; failures raise LearnInputError naming the dotted field."""
    model = VERBS.get(verb) if isinstance(verb, str) else None
    if model is None:
        raise LearnInputError("verb", "unknown learning verb")
    if not isinstance(body, dict):
        raise LearnInputError("body", "expected a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise LearnInputError(field, err["msg"]) from None
