"""Checks of a learning request against the current core, run by the caller before anything is
queued, so that a bad update is refused with the field it names and never reaches a worker."""

from __future__ import annotations

from typing import Any, Callable

from kg.errors import InvalidInput
from learn import LearnInputError
from workers.errors import NotInitialised


class _LearnErrors:
    """``with learn_errors():`` turns a core's LearnInputError into InvalidInput naming the same
    field. A plain class, not ``contextlib.contextmanager``: every read enters it, and the
    generator-based form costs ~1.6 µs a time against ~0.2 µs (it holds no state, so one
    instance serves every thread)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if kind is not None and issubclass(kind, LearnInputError):
            raise InvalidInput(exc.field, exc.reason) from None
        return False


_LEARN_ERRORS = _LearnErrors()


def learn_errors() -> _LearnErrors:
    """A core's LearnInputError as InvalidInput naming the same field (a context manager)."""
    return _LEARN_ERRORS


def dim(values: Any, field: str, expected: int, size_of: str = "") -> None:
    """Refuse a vector of the wrong length; ``size_of`` says where the expected length comes from
    (a client that initialised with a default size learns what to change)."""
    if values is not None and len(values) != expected:
        where = f" ({size_of})" if size_of else ""
        raise InvalidInput(field, f"expected {expected} values, got {len(values)}{where}")


ADAPTER_DIM = "the adapter's in_dim: init_instant sets it, 384 unless given"
ROUTER_DIM = "the router's in_dim, set by init_router"
PATTERNS_DIM = "the pattern bank's dim, set by init_patterns"


def target(core: Any, name: str, field: str) -> None:
    if name not in core.targets:
        raise InvalidInput(field, "unknown target")


def needs(core: Any, kind: str, init: str) -> Any:
    if core is None:
        raise NotInitialised("namespace", f"has no {kind} state; call {init} first")
    return core


def feedback(core: Any, body: Any) -> None:
    needs(core, "instant", "init_instant")
    dim(body.embedding, "embedding", core.in_dim, ADAPTER_DIM)
    target(core, body.model, "model")


def reset(core: Any, body: Any) -> None:
    needs(core, "instant", "init_instant")


consolidate_adapter = reset  # the same check: the namespace holds an adapter


def consolidate(core: Any, body: Any) -> None:
    held = None if core is None else core.fisher(body.param_id)
    if held is not None and held.shape != (len(body.params),):
        raise InvalidInput("params", f"param_id holds {held.size} values, got {len(body.params)}")
    if core is not None:
        with learn_errors():
            core.check_room(body.param_id, len(body.params))


def outcome(core: Any, body: Any) -> None:
    needs(core, "router", "init_router")
    target(core, body.target, "target")
    dim(body.embedding, "embedding", core.in_dim, ROUTER_DIM)
    if body.embedding is None and (body.estimated_tokens is not None or body.temperature is not None
                                   or body.top_p is not None):
        raise InvalidInput("embedding", "is required with estimated_tokens, temperature or top_p")


def trajectory(core: Any, body: Any) -> None:
    """A trajectory against the bank: what ``PatternBank.record`` would refuse, refused here."""
    needs(core, "patterns", "init_patterns")
    dim(body.embedding, "embedding", core.dim, PATTERNS_DIM)
    if len(body.steps) > core.max_steps:
        raise InvalidInput("steps", f"at most {core.max_steps} per trajectory")
    for i, step in enumerate(body.steps):
        dim(step.embedding, f"steps.{i}.embedding", core.dim, PATTERNS_DIM)
    steps = [{"embedding": s.embedding, "target": s.target} for s in body.steps]
    with learn_errors():
        core.check({"embedding": body.embedding, "steps": steps, "quality": body.quality})


def patterns(core: Any, body: Any) -> None:
    needs(core, "patterns", "init_patterns")


def each(check: Callable[[Any, Any], None] | None, models: list, prefix: str) -> Callable[[Any], None]:
    """One check of every model against the core; an error names ``<prefix><index>.<field>``."""

    def run(core: Any) -> None:
        if check is not None:
            for i, model in enumerate(models):
                try:
                    check(core, model)
                except NotInitialised:
                    raise  # about the namespace, not the event
                except InvalidInput as exc:
                    raise InvalidInput(f"{prefix}{i}.{exc.field}", exc.message) from None

    return run
