"""The per-process runtime answers for the settings it is asked with."""

from __future__ import annotations

from dataclasses import replace

from kg.config import Settings
from workers import runtime as rt


def test_other_settings_get_a_runtime_of_their_own() -> None:
    first = Settings.from_env({"KG_REDIS_URL": "redis://127.0.0.1:1/0"})
    second = replace(first, redis_url="redis://127.0.0.1:2/0")
    try:
        a = rt.runtime(first)
        assert rt.runtime(first) is a and rt.runtime() is a  # the same settings, or none: the same one
        b = rt.runtime(second)
        assert b is not a and b.settings == second
        assert b.redis.connection_pool.connection_kwargs["port"] == 2
    finally:
        rt.shutdown()
