"""Settings, read once from the environment and converted to types.

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
from dataclasses import dataclass, field
from pathlib import Path

from kg.errors import ConfigError

GRAPH_SERVERS = ("neo4j", "arcadedb")
# (user, database) of each server when the environment names none: Neo4j Community has one
# standard database, `neo4j`; ArcadeDB creates the database it is told to (`kg`) for user root.
SERVER_DEFAULTS = {"neo4j": ("neo4j", "neo4j"), "arcadedb": ("root", "kg")}
_MEMORY = re.compile(r"^[1-9][0-9]*[kmgKMG]?$")


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}: expected a finite number")
    return value


def _memory(env: dict[str, str], name: str, default: str) -> str:
    """A JVM-style size (``512m``, ``2g``): checked here, not by a server that fails to start."""
    raw = (env.get(name) or default).strip()
    if not _MEMORY.match(raw):
        raise ConfigError(f"{name}: expected a size such as 512m or 2g")
    return raw.lower()


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false")


@dataclass(frozen=True)
class WorkerSettings:
    """Celery workers, the weight store and the HTTP front (``KG_*`` variables, see docs/workers.md)."""

    visibility_timeout_s: float = 600.0      # KG_VISIBILITY_TIMEOUT_S: > the longest task
    task_time_limit_s: float = 120.0          # KG_TASK_TIME_LIMIT_S: hard limit, kills the task
    task_soft_time_limit_s: float = 100.0     # KG_TASK_SOFT_TIME_LIMIT_S
    max_attempts: int = 3                     # KG_TASK_MAX_ATTEMPTS: crashes before an event/task is dropped
    drain_batch: int = 2048                   # KG_DRAIN_BATCH: events applied per compare-and-set
    drain_budget_s: float = 5.0               # KG_DRAIN_BUDGET_S: a drain task hands over after this
    wait_timeout_s: float = 30.0              # KG_WAIT_TIMEOUT_S: how long a call waits for its update
    history_keep: int = 8                     # KG_STATE_HISTORY: earlier versions kept for rollback
    history_every_ms: int = 1000              # KG_STATE_HISTORY_EVERY_MS: at most one per this
    drain_linger_ms: float = 2.0              # KG_DRAIN_LINGER_MS: wait for a fuller batch
    snapshots_keep: int = 3                   # KG_STATE_SNAPSHOTS: periodic snapshots kept
    event_ttl_s: int = 3600                   # KG_EVENT_TTL_S: results/tickets and duplicate-id window
    applied_log_max: int = 100_000            # KG_APPLIED_LOG_MAX: applied-order log entries per state
    outcome_log_max: int = 10_000             # KG_OUTCOME_LOG_MAX: outcomes kept for router training
    concurrency: int = 1                      # KG_WORKER_CONCURRENCY: pool processes per worker
    max_memory_per_child_mb: int = 1024       # KG_WORKER_MAX_MEMORY_MB: a pool process above this is replaced after its task
    up_workers: int = 1                       # KG_UP_WORKERS: workers `kg up` starts (0: none)
    up_beat: bool = True                      # KG_UP_BEAT: `kg up` starts beat
    beat_sweep_s: float = 15.0                # KG_BEAT_SWEEP_S: re-trigger stalled queues
    beat_train_s: float = 60.0                # KG_BEAT_TRAIN_S: router batch training from outcomes
    beat_replay_s: float = 300.0              # KG_BEAT_REPLAY_S: router replay of older outcomes
    beat_consolidate_s: float = 600.0         # KG_BEAT_CONSOLIDATE_S: Fisher anchor + snapshots
    learn_lr_min: float = 1e-3                # KG_LEARN_LR_MIN: MicroLoRA learning-rate floor
    http_host: str = "127.0.0.1"              # KG_HTTP_HOST
    http_port: int = 8765                     # KG_HTTP_PORT
    http_timeout_s: float = 10.0              # KG_HTTP_TIMEOUT_S: for a request's head (or an idle connection) and its body
    api_key: str | None = field(default=None, repr=False)  # KG_API_KEY: required on HTTP when set

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "WorkerSettings":
        d = cls()
        hard = _float(env, "KG_TASK_TIME_LIMIT_S", d.task_time_limit_s)
        ws = cls(
            visibility_timeout_s=_float(env, "KG_VISIBILITY_TIMEOUT_S", d.visibility_timeout_s),
            task_time_limit_s=hard,
            task_soft_time_limit_s=_float(env, "KG_TASK_SOFT_TIME_LIMIT_S", min(d.task_soft_time_limit_s, hard * 0.8)),
            max_attempts=_int(env, "KG_TASK_MAX_ATTEMPTS", d.max_attempts),
            drain_batch=_int(env, "KG_DRAIN_BATCH", d.drain_batch),
            drain_budget_s=_float(env, "KG_DRAIN_BUDGET_S", d.drain_budget_s),
            wait_timeout_s=_float(env, "KG_WAIT_TIMEOUT_S", d.wait_timeout_s),
            history_keep=_int(env, "KG_STATE_HISTORY", d.history_keep),
            history_every_ms=_int(env, "KG_STATE_HISTORY_EVERY_MS", d.history_every_ms),
            drain_linger_ms=_float(env, "KG_DRAIN_LINGER_MS", d.drain_linger_ms),
            snapshots_keep=_int(env, "KG_STATE_SNAPSHOTS", d.snapshots_keep),
            event_ttl_s=_int(env, "KG_EVENT_TTL_S", d.event_ttl_s),
            applied_log_max=_int(env, "KG_APPLIED_LOG_MAX", d.applied_log_max),
            outcome_log_max=_int(env, "KG_OUTCOME_LOG_MAX", d.outcome_log_max),
            concurrency=_int(env, "KG_WORKER_CONCURRENCY", d.concurrency),
            max_memory_per_child_mb=_int(env, "KG_WORKER_MAX_MEMORY_MB", d.max_memory_per_child_mb),
            up_workers=_int(env, "KG_UP_WORKERS", d.up_workers),
            up_beat=_bool(env, "KG_UP_BEAT", d.up_beat),
            beat_sweep_s=_float(env, "KG_BEAT_SWEEP_S", d.beat_sweep_s),
            beat_train_s=_float(env, "KG_BEAT_TRAIN_S", d.beat_train_s),
            beat_replay_s=_float(env, "KG_BEAT_REPLAY_S", d.beat_replay_s),
            beat_consolidate_s=_float(env, "KG_BEAT_CONSOLIDATE_S", d.beat_consolidate_s),
            learn_lr_min=_float(env, "KG_LEARN_LR_MIN", d.learn_lr_min),
            http_host=env.get("KG_HTTP_HOST") or d.http_host,
            http_port=_int(env, "KG_HTTP_PORT", d.http_port),
            http_timeout_s=_float(env, "KG_HTTP_TIMEOUT_S", d.http_timeout_s),
            api_key=env.get("KG_API_KEY") or None,
        )
        ws.check()
        return ws

    def check(self) -> None:
        """Fail fast on values that would make the workers misbehave (names the variable)."""
        if self.task_time_limit_s <= 0 or self.task_soft_time_limit_s <= 0:
            raise ConfigError("KG_TASK_TIME_LIMIT_S: must be positive")
        if self.task_soft_time_limit_s > self.task_time_limit_s:
            raise ConfigError("KG_TASK_SOFT_TIME_LIMIT_S: must not exceed KG_TASK_TIME_LIMIT_S")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            # a task still running when its message becomes visible again runs twice
            raise ConfigError("KG_VISIBILITY_TIMEOUT_S: must exceed KG_TASK_TIME_LIMIT_S")
        if not 1 <= self.max_attempts <= 100:
            raise ConfigError("KG_TASK_MAX_ATTEMPTS: must be between 1 and 100")
        if not 1 <= self.drain_batch <= 10_000:
            raise ConfigError("KG_DRAIN_BATCH: must be between 1 and 10000")
        if self.drain_budget_s <= 0 or self.drain_budget_s >= self.task_soft_time_limit_s:
            raise ConfigError("KG_DRAIN_BUDGET_S: must be positive and below the soft time limit")
        if self.history_every_ms < 0:
            raise ConfigError("KG_STATE_HISTORY_EVERY_MS: must not be negative")
        if not 0 <= self.drain_linger_ms <= 1000:
            raise ConfigError("KG_DRAIN_LINGER_MS: must be between 0 and 1000")
        if self.wait_timeout_s <= 0:
            raise ConfigError("KG_WAIT_TIMEOUT_S: must be positive")
        for name, value in (("KG_STATE_HISTORY", self.history_keep), ("KG_STATE_SNAPSHOTS", self.snapshots_keep),
                            ("KG_EVENT_TTL_S", self.event_ttl_s), ("KG_APPLIED_LOG_MAX", self.applied_log_max),
                            ("KG_OUTCOME_LOG_MAX", self.outcome_log_max), ("KG_WORKER_CONCURRENCY", self.concurrency),
                            ("KG_WORKER_MAX_MEMORY_MB", self.max_memory_per_child_mb)):
            if value < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if self.up_workers < 0:
            raise ConfigError("KG_UP_WORKERS: must not be negative")
        for name, value in (("KG_BEAT_SWEEP_S", self.beat_sweep_s), ("KG_BEAT_TRAIN_S", self.beat_train_s),
                            ("KG_BEAT_REPLAY_S", self.beat_replay_s), ("KG_BEAT_CONSOLIDATE_S", self.beat_consolidate_s)):
            if value <= 0:
                raise ConfigError(f"{name}: must be positive")
        if not 0 < self.learn_lr_min <= 1:
            raise ConfigError("KG_LEARN_LR_MIN: must be in (0, 1]")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError("KG_HTTP_PORT: must be a port number")
        if self.http_timeout_s <= 0:
            raise ConfigError("KG_HTTP_TIMEOUT_S: must be positive")


@dataclass(frozen=True)
class Settings:
    """Where the graph and Redis are, and where local state lives."""

    home: Path
    graph_uri: str | None = None
    graph_user: str = "neo4j"
    graph_password: str | None = field(default=None, repr=False)
    graph_database: str = "neo4j"
    graph_external: bool = False                # KG_GRAPH_URI given: `kg up` starts no graph server
    redis_external: bool = False                # KG_REDIS_URL given: `kg up` starts no redis-server
    graph_server: str = "neo4j"                 # KG_GRAPH_SERVER: neo4j (default) or arcadedb
    graph_heap: str = "2g"                      # KG_GRAPH_HEAP: JVM heap of the server `kg up` starts
    graph_pagecache: str = "2g"                 # KG_GRAPH_PAGECACHE: Neo4j's page cache
    redis_url: str | None = None
    batch_size: int = 2000
    functional_relations: tuple[str, ...] = ()
    max_request_bytes: int = 1_000_000
    cypher_timeout_s: float = 5.0               # KG_CYPHER_TIMEOUT_S: `kg cypher` transaction timeout
    cypher_max_rows: int = 10_000               # KG_CYPHER_MAX_ROWS: rows `kg cypher` reads at most
    workers: WorkerSettings = field(default_factory=WorkerSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("KG_HOME") or Path.cwd() / ".kg").resolve()
        stack = _read_stack_file(home)
        graph_uri = env.get("KG_GRAPH_URI") or stack.get("graph_uri")
        redis_url = env.get("KG_REDIS_URL") or stack.get("redis_url")
        password = env.get("KG_GRAPH_PASSWORD") or (
            stack.get("graph_password") if not env.get("KG_GRAPH_URI") else None
        )
        functional = env.get("KG_FUNCTIONAL_RELATIONS")
        server = (env.get("KG_GRAPH_SERVER") or stack.get("graph_server") or "neo4j").strip().lower()
        if server not in GRAPH_SERVERS:
            raise ConfigError(f"KG_GRAPH_SERVER: expected one of {', '.join(GRAPH_SERVERS)}")
        default_user, default_database = SERVER_DEFAULTS[server]
        heap = _memory(env, "KG_GRAPH_HEAP", "2g")
        pagecache = _memory(env, "KG_GRAPH_PAGECACHE", "2g")
        batch = _int(env, "KG_BATCH_SIZE", 2000)
        if not 1 <= batch <= 50_000:
            raise ConfigError("KG_BATCH_SIZE: must be between 1 and 50000")
        cypher_timeout = _float(env, "KG_CYPHER_TIMEOUT_S", 5.0)
        if not 0 < cypher_timeout <= 3600:
            raise ConfigError("KG_CYPHER_TIMEOUT_S: must be in (0, 3600]")
        cypher_rows = _int(env, "KG_CYPHER_MAX_ROWS", 10_000)
        if not 1 <= cypher_rows <= 1_000_000:
            raise ConfigError("KG_CYPHER_MAX_ROWS: must be between 1 and 1000000")
        return cls(
            home=home,
            graph_uri=graph_uri,
            graph_user=env.get("KG_GRAPH_USER") or default_user,
            graph_password=password,
            graph_database=env.get("KG_GRAPH_DATABASE") or default_database,
            graph_server=server,
            graph_external=bool(env.get("KG_GRAPH_URI")),
            redis_external=bool(env.get("KG_REDIS_URL")),
            graph_heap=heap,
            graph_pagecache=pagecache,
            redis_url=redis_url,
            batch_size=batch,
            cypher_timeout_s=cypher_timeout,
            cypher_max_rows=cypher_rows,
            functional_relations=tuple(
                r.strip() for r in functional.split(",") if r.strip()
            )
            if functional
            else DEFAULT_FUNCTIONAL,
            workers=WorkerSettings.from_env(env),
        )


# One object per subject at a time; an insert contradicts the overlapping ones.
DEFAULT_FUNCTIONAL = ("works_at", "spouse", "head_of_government")


def _read_stack_file(home: Path) -> dict:
    path = home / "stack.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable stack file") from exc
