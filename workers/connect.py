"""The Redis client of one process, on its own so that a read of learned state does not import
the drain, the stack helpers or anything else a worker needs (see docs/workers.md, "Restore")."""

from __future__ import annotations

import contextlib
import encodings.idna  # noqa: F401  (the socket module imports it on the first connect to a host name)
from typing import Iterator

import redis

from kg.config import Settings
from kg.errors import RedisUnavailable

# Told once: otherwise redis-py looks its own version up in the package metadata for every new
# connection (for CLIENT SETINFO), ~3 ms each, and the first lookup imports email.parser.
DRIVER_INFO = redis.DriverInfo(lib_version=redis.__version__)


def redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url``; ``RedisUnavailable`` when none is configured."""
    if not settings.redis_url:
        raise RedisUnavailable("no Redis configured: run `kg up` or set KG_REDIS_URL")
    return redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30, driver_info=DRIVER_INFO)


def ping_redis(url: str, timeout_s: float = 2.0, appendonly: bool = False) -> tuple[bool, str]:
    """Whether the Redis at ``url`` answers a PING, and a detail: the name of the error when it
    does not, else with ``appendonly`` its AOF setting (``"appendonly yes"``; a server that
    refuses CONFIG GET still counts as answering, the detail then names the refusal)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, driver_info=DRIVER_INFO)
    try:
        try:
            client.ping()
        except redis.RedisError as exc:
            return False, type(exc).__name__
        if not appendonly:
            return True, ""
        try:
            return True, f"appendonly {client.config_get('appendonly').get('appendonly')}"
        except redis.RedisError as exc:
            return True, type(exc).__name__
    finally:
        client.close()


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Convert redis-py's errors at the boundary."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(f"redis: unreachable ({type(exc).__name__})") from exc
    except redis.ResponseError as exc:
        raise RedisUnavailable(f"redis: refused a command ({str(exc).split(' ')[0]})") from exc
