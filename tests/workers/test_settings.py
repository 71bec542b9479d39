"""Worker settings are read once from the environment and fail fast, naming the variable."""

import pytest

from kg.config import Settings
from kg.errors import ConfigError


def test_defaults_and_overrides() -> None:
    ws = Settings.from_env({}).workers
    assert (ws.visibility_timeout_s, ws.task_time_limit_s, ws.max_attempts, ws.http_host, ws.api_key) == (
        600.0, 120.0, 3, "127.0.0.1", None)
    ws = Settings.from_env({"KG_API_KEY": "s3cr3t-value", "KG_UP_WORKERS": "2", "KG_UP_BEAT": "off"}).workers
    assert (ws.api_key, ws.up_workers, ws.up_beat) == ("s3cr3t-value", 2, False)
    assert "s3cr3t-value" not in repr(ws) and "s3cr3t-value" not in repr(Settings.from_env({"KG_API_KEY": "s3cr3t-value"})), "the API key is never printed"


@pytest.mark.parametrize("env, name", [
    ({"KG_VISIBILITY_TIMEOUT_S": "60"}, "KG_VISIBILITY_TIMEOUT_S"),  # below the 120 s time limit
    ({"KG_TASK_MAX_ATTEMPTS": "x"}, "KG_TASK_MAX_ATTEMPTS"),
    ({"KG_UP_BEAT": "maybe"}, "KG_UP_BEAT"),
    ({"KG_DRAIN_LINGER_MS": "-1"}, "KG_DRAIN_LINGER_MS"),
    ({"KG_TASK_SOFT_TIME_LIMIT_S": "500"}, "KG_TASK_SOFT_TIME_LIMIT_S"),
    ({"KG_HTTP_PORT": "70000"}, "KG_HTTP_PORT"),
])
def test_bad_values_name_the_variable(env: dict, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(name)
