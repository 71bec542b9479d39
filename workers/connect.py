"""The Redis client of one process, on its own so that a read of learned state does not import
the drain, the stack helpers or anything else a worker needs (see docs/workers.md, "Restore")."""

from __future__ import annotations

import redis

from kg.config import Settings
from kg.errors import RedisUnavailable


def redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url``; ``RedisUnavailable`` when none is configured."""
    if not settings.redis_url:
        raise RedisUnavailable("no Redis configured: run `kg up` or set KG_REDIS_URL")
    return redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30)
