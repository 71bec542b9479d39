"""Request bodies of the learning verbs of the dispatch surface, as strict pydantic models.

Strict means: no string-to-number coercion, no booleans for numbers, finite floats only, unknown
fields refused, bounded sizes. :func:`validate` turns any failure into a
:class:`~learn.errors.LearnInputError` whose ``field`` is the dotted location
(``payload.quality``, ``embedding.3``); its message is pydantic's, which names the rule broken and
never the value. Checks that need a live core (the embedding dimension of an initialised adapter,
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

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from learn.errors import LearnInputError

__all__ = [
    "MAX_DIM",
    "MAX_EDGES",
    "MAX_NODES",
    "MAX_PARAMS",
    "MAX_TARGETS",
    "VERBS",
    "validate",
]

MAX_DIM = 8192
MAX_TARGETS = 64
MAX_PARAMS = 1 << 16
MAX_NODES = 4096
MAX_EDGES = 16384
MAX_NAME = 256

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Vector = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
ParamVector = Annotated[list[float], Field(min_length=1, max_length=MAX_PARAMS)]
Quality = Annotated[float, Field(ge=0.0, le=1.0)]
TargetList = Annotated[list[Name], Field(min_length=1, max_length=MAX_TARGETS)]
Logits = Annotated[list[float], Field(min_length=1, max_length=MAX_TARGETS)]
Cost = Annotated[float, Field(ge=0.0)]


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
    now_ms: int


class ApplyAdapter(_Body):
    embedding: Vector
    logits: Logits | None = None


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
    estimated_tokens: Annotated[int, Field(ge=0)] | None = None
    adapter_logits: Logits | None = None


class RecordOutcome(_Body):
    target: Name
    quality: Quality
    embedding: Vector | None = None
    estimated_tokens: Annotated[int, Field(ge=0)] | None = None
    temperature: Annotated[float, Field(ge=0.1, le=1.5)] | None = None
    top_p: Annotated[float, Field(ge=0.5, le=1.0)] | None = None


class InitAttention(_Body):
    dim: Annotated[int, Field(ge=1, le=MAX_DIM)]
    heads: Annotated[int, Field(ge=1, le=64)] = 8
    head_dim: Annotated[int, Field(ge=1, le=MAX_DIM)] | None = Field(
        default=None, validate_default=True
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    relations: Annotated[list[Name], Field(max_length=1024)] = []

    _relations = field_validator("relations")(_unique)

    @field_validator("head_dim")
    @classmethod
    def _divisible(cls, value: int | None, info: ValidationInfo) -> int | None:
        dim, heads = info.data.get("dim"), info.data.get("heads")
        if value is None and dim is not None and heads is not None and dim % heads:
            raise ValueError("dim must be divisible by heads when head_dim is not given")
        return value


class Edge(_Body):
    src: Name
    dst: Name
    relation: Annotated[str, Field(max_length=MAX_NAME)] = ""
    weight: float = 1.0
    t_ms: int | None = None


class Subgraph(_Body):
    nodes: Annotated[dict[Name, Vector], Field(max_length=MAX_NODES)]
    edges: Annotated[list[Edge], Field(max_length=MAX_EDGES)] = []


class Attend(_Body):
    query: Vector
    subgraph: Subgraph
    now_ms: int


VERBS: dict[str, type[_Body]] = {
    "init_instant": InitInstant,
    "feedback": Feedback,
    "apply_adapter": ApplyAdapter,
    "reset_adapter": Empty,
    "record_loss": RecordLoss,
    "consolidate": Consolidate,
    "ewc_penalty": EwcPenalty,
    "init_router": InitRouter,
    "route": Route,
    "record_outcome": RecordOutcome,
    "init_attention": InitAttention,
    "attend": Attend,
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
