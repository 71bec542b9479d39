"""Settings, read once from the environment and converted to types.

Each setting is declared once, as a field of :class:`Settings` or :class:`WorkerSettings`
made by :func:`setting`: its variable, type, bounds or choices, default and a one-line doc.
Parsing, the range checks (a bad value raises :class:`~kg.errors.ConfigError` naming the
variable) and the docs table (``python -m kg.config``) all come from those declarations;
:meth:`WorkerSettings.check` adds the rules that relate two settings.

>>> Settings.from_env({"KG_DRAIN_BATCH": "64"}).workers.drain_batch
64
>>> Settings.from_env({"KG_DRAIN_BATCH": "0"})
Traceback (most recent call last):
...
kg.errors.ConfigError: KG_DRAIN_BATCH: must be between 1 and 10000

Every ``kg`` command run with the same ``KG_HOME`` finds the stack that ``kg up``
started there: ``kg up`` writes the ports and the generated password to
``$KG_HOME/stack.json`` and later commands read them back.  Explicit settings
(``KG_GRAPH_URI``, ``KG_REDIS_URL``) point at servers run elsewhere; then
``kg up`` starts nothing of that kind.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from kg.errors import ConfigError

GRAPH_SERVERS = ("neo4j", "arcadedb")
# (user, database) of each server when the environment names none: Neo4j Community has one
# standard database, `neo4j`; ArcadeDB creates the database it is told to (`kg`) for user root.
SERVER_DEFAULTS = {"neo4j": ("neo4j", "neo4j"), "arcadedb": ("root", "kg")}
# One object per subject at a time; an insert contradicts the overlapping ones.
DEFAULT_FUNCTIONAL = ("works_at", "spouse", "head_of_government")
_MEMORY = re.compile(r"^[1-9][0-9]*[kmgKMG]?$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "size": "a size such as 512m",
               "names": "comma-separated names", "path": "a directory"}


# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """How one environment variable is read: kind, bounds (inclusive unless ``low_open``),
    choices, and whether its value is secret (never printed)."""

    env: str
    kind: str  # int, float, bool, str, choice, size, names, path
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    secret: bool = False

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``; ConfigError naming the variable when it does not fit."""
        value = _PARSERS[self.kind](self, raw if self.kind == "str" else raw.strip())
        if self.low is not None and (value <= self.low if self.low_open else value < self.low) \
                or self.high is not None and value > self.high:
            raise ConfigError(f"{self.env}: must be {self.bounds()}")
        return value

    def read(self, env: Mapping[str, str]) -> Any:
        """The value ``env`` gives, or the declared default when it is unset or empty."""
        raw = env.get(self.env)
        return self.default if raw is None or raw.strip() == "" else self.parse(raw)

    def allowed(self) -> str:
        """What the docs table says a value may be."""
        return self.bounds() or _KIND_WORDS.get(self.kind, "")

    def bounds(self) -> str:
        lo, hi = _num(self.low), _num(self.high)
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"in ({lo}, {hi}]" if self.low_open else f"between {lo} and {hi}"
        if self.low is not None:
            if self.low == 0:
                return "positive" if self.low_open else "not negative"
            return f"above {lo}" if self.low_open else f"at least {lo}"
        return f"at most {hi}" if self.high is not None else ""


def setting(env: str, default: Any, doc: str, *, kind: str | None = None, low: float | None = None,
            high: float | None = None, low_open: bool = False, choices: tuple[str, ...] = (),
            secret: bool = False) -> Any:
    """A dataclass field read from ``env`` (the kind follows the default's type unless given)."""
    kind = kind or ("choice" if choices else {bool: "bool", int: "int", float: "float"}.get(type(default), "str"))
    var = Var(env, kind, default, doc, low, high, low_open, choices, secret)
    return field(default=default, repr=not secret, metadata={"var": var})


def declared(cls: type) -> list[tuple[str, Var]]:
    """``(attribute, Var)`` of every setting declared on ``cls``, in declaration order."""
    return [(f.name, f.metadata["var"]) for f in fields(cls) if "var" in f.metadata]


def _read_all(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    return {name: var.read(env) for name, var in declared(cls)}


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _int(var: Var, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{var.env}: expected an integer") from None


def _float(var: Var, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{var.env}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{var.env}: expected a finite number")
    return value


def _bool(var: Var, raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{var.env}: expected true or false")


def _choice(var: Var, raw: str) -> str:
    if raw.lower() not in var.choices:
        raise ConfigError(f"{var.env}: expected one of {', '.join(var.choices)}")
    return raw.lower()


def _size(var: Var, raw: str) -> str:
    """A JVM-style size (``512m``, ``2g``): checked here, not by a server that fails to start."""
    if not _MEMORY.match(raw):
        raise ConfigError(f"{var.env}: expected a size such as 512m or 2g")
    return raw.lower()


_PARSERS = {
    "int": _int, "float": _float, "bool": _bool, "choice": _choice, "size": _size,
    "str": lambda var, raw: raw,
    "path": lambda var, raw: Path(raw),
    "names": lambda var, raw: tuple(r.strip() for r in raw.split(",") if r.strip()),
}


# -- the settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSettings:
    """Celery workers, the weight store and the HTTP front (see docs/workers.md)."""

    visibility_timeout_s: float = setting("KG_VISIBILITY_TIMEOUT_S", 600.0,
        "redelivery of an unacknowledged task; must exceed the hard time limit")
    task_time_limit_s: float = setting("KG_TASK_TIME_LIMIT_S", 120.0,
        "hard time limit of a task (kills it)", low=0, low_open=True)
    task_soft_time_limit_s: float = setting("KG_TASK_SOFT_TIME_LIMIT_S", 100.0,
        "soft time limit (unset: 0.8 x the hard limit, at most 100)", low=0, low_open=True)
    max_attempts: int = setting("KG_TASK_MAX_ATTEMPTS", 3,
        "process deaths before an event or task is dropped and recorded", low=1, high=100)
    drain_batch: int = setting("KG_DRAIN_BATCH", 2048, "events applied per compare-and-set", low=1, high=10_000)
    drain_budget_s: float = setting("KG_DRAIN_BUDGET_S", 5.0,
        "a drain task hands over after this; below the soft time limit", low=0, low_open=True)
    wait_timeout_s: float = setting("KG_WAIT_TIMEOUT_S", 30.0,
        "how long a synchronous update waits for its result", low=0, low_open=True)
    history_keep: int = setting("KG_STATE_HISTORY", 8, "earlier versions kept for rollback", low=1)
    history_every_ms: int = setting("KG_STATE_HISTORY_EVERY_MS", 1000,
        "at most one history entry per interval (0: every version)", low=0)
    drain_linger_ms: float = setting("KG_DRAIN_LINGER_MS", 2.0,
        "during a stream of small batches, wait this long for a fuller one", low=0, high=1000)
    snapshots_keep: int = setting("KG_STATE_SNAPSHOTS", 3, "periodic snapshots kept", low=1)
    event_ttl_s: int = setting("KG_EVENT_TTL_S", 3600, "results, tickets and the duplicate-id window", low=1)
    applied_log_max: int = setting("KG_APPLIED_LOG_MAX", 100_000,
        "applied-order log entries kept per state", low=1)
    outcome_log_max: int = setting("KG_OUTCOME_LOG_MAX", 10_000, "router outcomes kept for training", low=1)
    concurrency: int = setting("KG_WORKER_CONCURRENCY", 1, "pool processes per worker", low=1)
    max_memory_per_child_mb: int = setting("KG_WORKER_MAX_MEMORY_MB", 1024,
        "a pool process above this is replaced after its task", low=1)
    up_workers: int = setting("KG_UP_WORKERS", 1, "workers `kg up` starts (0: none)", low=0)
    up_beat: bool = setting("KG_UP_BEAT", True, "`kg up` starts beat")
    beat_sweep_s: float = setting("KG_BEAT_SWEEP_S", 15.0, "beat: re-trigger stalled queues", low=0, low_open=True)
    beat_train_s: float = setting("KG_BEAT_TRAIN_S", 60.0,
        "beat: router batch training from outcomes", low=0, low_open=True)
    beat_replay_s: float = setting("KG_BEAT_REPLAY_S", 300.0,
        "beat: router replay of older outcomes", low=0, low_open=True)
    beat_consolidate_s: float = setting("KG_BEAT_CONSOLIDATE_S", 600.0,
        "beat: Fisher anchor and snapshots", low=0, low_open=True)
    anchor_on_boundary: bool = setting("KG_ANCHOR_ON_BOUNDARY", False,
        "queue the router's EWC anchor when its input-shift monitor fires (off: measured not to help)")
    beat_cluster_s: float = setting("KG_BEAT_CLUSTER_S", 300.0,
        "beat: cluster each pattern bank's new trajectories", low=0, low_open=True)
    learn_lr_min: float = setting("KG_LEARN_LR_MIN", 1e-3,
        "MicroLoRA learning-rate floor", low=0, high=1, low_open=True)
    # BaseLoRA (the instant core's base adapter, learn/base_lora.py); saved in the state at init_instant
    base_rank: int = setting("KG_BASE_RANK", 8, "BaseLoRA: rank of the base adapter", low=1, high=64)
    base_micro_scale: float = setting("KG_BASE_MICRO_SCALE", 0.5,
        "BaseLoRA: a consolidation scales the micro adapter's B by this (0: all of it moves to the base)",
        low=0, high=1)
    base_lambda: float = setting("KG_BASE_EWC_LAMBDA", 1.0,
        "BaseLoRA: EWC pull toward the previous base (1: an earlier input weighs like a buffered one)", low=0)
    base_min_inputs: int = setting("KG_BASE_MIN_INPUTS", 8,
        "BaseLoRA: buffered inputs a consolidation needs (fewer: it does nothing)", low=1, high=64)
    base_min_updates: int = setting("KG_BASE_MIN_UPDATES", 64,
        "beat: feedback updates since the last consolidation before it queues one", low=1)
    beat_base_s: float = setting("KG_BEAT_BASE_S", 300.0,
        "beat: BaseLoRA consolidation of the instant cores", low=0, low_open=True)
    http_host: str = setting("KG_HTTP_HOST", "127.0.0.1", "address `kg serve` binds")
    http_port: int = setting("KG_HTTP_PORT", 8765, "port `kg serve` binds", low=0, high=65535)
    http_timeout_s: float = setting("KG_HTTP_TIMEOUT_S", 10.0,
        "`kg serve`: a request head (or an idle connection) and a body must arrive within this",
        low=0, low_open=True)
    api_key: str | None = setting("KG_API_KEY", None, "required on HTTP when set", secret=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WorkerSettings":
        values = _read_all(cls, env)
        if not (env.get("KG_TASK_SOFT_TIME_LIMIT_S") or "").strip():
            values["task_soft_time_limit_s"] = min(cls.task_soft_time_limit_s, values["task_time_limit_s"] * 0.8)
        ws = cls(**values)
        ws.check()
        return ws

    def check(self) -> None:
        """The rules between two settings (each one's own range is checked as it is read)."""
        if self.task_soft_time_limit_s > self.task_time_limit_s:
            raise ConfigError("KG_TASK_SOFT_TIME_LIMIT_S: must not exceed KG_TASK_TIME_LIMIT_S")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            # a task still running when its message becomes visible again runs twice
            raise ConfigError("KG_VISIBILITY_TIMEOUT_S: must exceed KG_TASK_TIME_LIMIT_S")
        if self.drain_budget_s >= self.task_soft_time_limit_s:
            raise ConfigError("KG_DRAIN_BUDGET_S: must be below the soft time limit")


@dataclass(frozen=True)
class Settings:
    """Where the graph and Redis are, and where local state lives."""

    home: Path = setting("KG_HOME", Path(".kg"), "state directory of the local stack", kind="path")
    graph_uri: str | None = setting("KG_GRAPH_URI", None,
        "Bolt URI of a graph server run elsewhere (then `kg up` starts none)")
    graph_user: str = setting("KG_GRAPH_USER", "neo4j", "graph user (default: neo4j on Neo4j, root on ArcadeDB)")
    graph_password: str | None = setting("KG_GRAPH_PASSWORD", None,
        "graph password (default: the one `kg up` generated)", secret=True)
    graph_database: str = setting("KG_GRAPH_DATABASE", "neo4j",
        "graph database (default: neo4j on Neo4j, kg on ArcadeDB)")
    graph_external: bool = False                # KG_GRAPH_URI given: `kg up` starts no graph server
    redis_external: bool = False                # KG_REDIS_URL given: `kg up` starts no redis-server
    graph_server: str = setting("KG_GRAPH_SERVER", "neo4j",
        "the graph server `kg up` starts", choices=GRAPH_SERVERS)
    graph_heap: str = setting("KG_GRAPH_HEAP", "2g", "JVM heap of the graph server `kg up` starts", kind="size")
    graph_pagecache: str = setting("KG_GRAPH_PAGECACHE", "2g", "Neo4j's page cache", kind="size")
    redis_url: str | None = setting("KG_REDIS_URL", None,
        "a Redis run elsewhere (then `kg up` starts none)", secret=True)
    redis_appendfsync: str = setting("KG_REDIS_APPENDFSYNC", "everysec",
        "AOF fsync of the redis-server `kg up` starts (always: no loss on power failure)",
        choices=("always", "everysec", "no"))
    batch_size: int = setting("KG_BATCH_SIZE", 2000, "ingest batch", low=1, high=50_000)
    functional_relations: tuple[str, ...] = setting("KG_FUNCTIONAL_RELATIONS", DEFAULT_FUNCTIONAL,
        "comma-separated relations with one object per subject at a time", kind="names")
    sealed_through: int | None = setting("KG_SEALED_THROUGH", None,
        "epoch ms: system history up to this time is sealed (earlier stamps refused, answers cached)", kind="int")
    max_request_bytes: int = 1_000_000
    cypher_timeout_s: float = setting("KG_CYPHER_TIMEOUT_S", 5.0,
        "`kg cypher` transaction timeout", low=0, high=3600, low_open=True)
    cypher_max_rows: int = setting("KG_CYPHER_MAX_ROWS", 10_000,
        "rows `kg cypher` reads at most", low=1, high=1_000_000)
    workers: WorkerSettings = field(default_factory=WorkerSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``env`` (default ``os.environ``), completed by ``$KG_HOME/stack.json``."""
        env = dict(os.environ if env is None else env)
        values = _read_all(cls, env)
        home = values["home"] = values["home"].resolve()
        stack = _read_stack_file(home)
        given = {name for name, var in declared(cls) if (env.get(var.env) or "").strip()}
        server_var = dict(declared(cls))["graph_server"]
        if "graph_server" not in given and stack.get("graph_server"):
            values["graph_server"] = server_var.parse(stack["graph_server"])
        user, database = SERVER_DEFAULTS[values["graph_server"]]
        if "graph_user" not in given:
            values["graph_user"] = user
        if "graph_database" not in given:
            values["graph_database"] = database
        external = {"graph_external": "graph_uri" in given, "redis_external": "redis_url" in given}
        for name in ("graph_uri", "redis_url"):
            values[name] = values[name] or stack.get(name)
        if not external["graph_external"]:
            values["graph_password"] = values["graph_password"] or stack.get("graph_password")
        return cls(**values, **external, workers=WorkerSettings.from_env(env))


def read_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One declared variable's value from ``env`` (default ``os.environ``), parsed and checked."""
    for cls in (Settings, WorkerSettings):
        for _, var in declared(cls):
            if var.env == name:
                return var.read(os.environ if env is None else env)
    raise KeyError(f"{name}: not a declared setting")


def settings_table() -> str:
    """The docs table of every declared setting (Markdown), from the declarations."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for cls in (Settings, WorkerSettings):
        for _, var in declared(cls):
            default = var.default
            shown = "unset" if default is None else ",".join(default) if isinstance(default, tuple) \
                else ("on" if default else "off") if isinstance(default, bool) else _num(default)
            rows.append(f"| `{var.env}` | {shown} | {var.allowed()} | {var.doc} |")
    return "\n".join(rows) + "\n"


def _read_stack_file(home: Path) -> dict:
    path = home / "stack.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable stack file") from exc


if __name__ == "__main__":
    print(settings_table(), end="")
