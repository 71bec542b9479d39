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
    ({"KG_GRAPH_SERVER": "mysql"}, "KG_GRAPH_SERVER"),
    ({"KG_GRAPH_HEAP": "2 gigs"}, "KG_GRAPH_HEAP"),
    ({"KG_GRAPH_PAGECACHE": "-1g"}, "KG_GRAPH_PAGECACHE"),
    ({"KG_CYPHER_TIMEOUT_S": "0"}, "KG_CYPHER_TIMEOUT_S"),
    ({"KG_CYPHER_MAX_ROWS": "0"}, "KG_CYPHER_MAX_ROWS"),
])
def test_bad_values_name_the_variable(env: dict, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(name)


def test_each_graph_server_has_its_own_user_and_database(tmp_path) -> None:
    neo4j = Settings.from_env({"KG_HOME": str(tmp_path)})
    assert (neo4j.graph_server, neo4j.graph_user, neo4j.graph_database) == ("neo4j", "neo4j", "neo4j")
    arcade = Settings.from_env({"KG_HOME": str(tmp_path), "KG_GRAPH_SERVER": "ArcadeDB ", "KG_GRAPH_HEAP": "512M"})
    assert (arcade.graph_server, arcade.graph_user, arcade.graph_database, arcade.graph_heap) == (
        "arcadedb", "root", "kg", "512m")
