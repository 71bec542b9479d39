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
from dataclasses import dataclass, field
from pathlib import Path

from kg.errors import ConfigError

DEFAULT_DATABASE = "kg"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer") from None


@dataclass(frozen=True)
class Settings:
    """Where the graph and Redis are, and where local state lives."""

    home: Path
    graph_uri: str | None = None
    graph_user: str = "root"
    graph_password: str | None = field(default=None, repr=False)
    graph_database: str = DEFAULT_DATABASE
    redis_url: str | None = None
    batch_size: int = 2000
    functional_relations: tuple[str, ...] = ()
    max_request_bytes: int = 1_000_000

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
        batch = _int(env, "KG_BATCH_SIZE", 2000)
        if not 1 <= batch <= 50_000:
            raise ConfigError("KG_BATCH_SIZE: must be between 1 and 50000")
        return cls(
            home=home,
            graph_uri=graph_uri,
            graph_user=env.get("KG_GRAPH_USER") or "root",
            graph_password=password,
            graph_database=env.get("KG_GRAPH_DATABASE") or DEFAULT_DATABASE,
            redis_url=redis_url,
            batch_size=batch,
            functional_relations=tuple(
                r.strip() for r in functional.split(",") if r.strip()
            )
            if functional
            else DEFAULT_FUNCTIONAL,
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
