"""Each setting is declared once (kg.config): every value is parsed and checked from that
declaration, a bad value names its variable, and the docs list every declared variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kg.config import Settings, Var, WorkerSettings, declared, read_setting, settings_table
from kg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env, name", [
    ({"KG_REDIS_APPENDFSYNC": "sometimes"}, "KG_REDIS_APPENDFSYNC"),  # was passed to redis-server unchecked
    ({"KG_UP_BEAT": "maybe"}, "KG_UP_BEAT"),
    ({"KG_TASK_SOFT_TIME_LIMIT_S": "-5"}, "KG_TASK_SOFT_TIME_LIMIT_S"),  # was reported as KG_TASK_TIME_LIMIT_S
])
def test_formerly_unchecked_values_name_their_variable(env: dict, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(name + ":")


def test_formerly_unchecked_values_are_typed_settings(tmp_path) -> None:
    s = Settings.from_env({"KG_HOME": str(tmp_path)})
    assert (s.redis_appendfsync, s.workers.up_beat) == ("everysec", True)
    s = Settings.from_env({"KG_HOME": str(tmp_path), "KG_REDIS_APPENDFSYNC": "Always ", "KG_UP_BEAT": "0"})
    assert (s.redis_appendfsync, s.workers.up_beat) == ("always", False)


def test_product_code_reads_kg_variables_only_through_the_declarations() -> None:
    read = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*["']KG_""")
    offenders = [f"{path.relative_to(ROOT)}:{n}"
                 for pkg in ("kg", "workers", "learn") for path in sorted((ROOT / pkg).rglob("*.py"))
                 if path.name != "config.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if read.search(line)]
    assert offenders == []


DECLARED = [var for cls in (Settings, WorkerSettings) for _, var in declared(cls)]


def test_each_variable_is_declared_once() -> None:
    names = [var.env for var in DECLARED]
    assert len(names) == len(set(names)) and all(n.startswith("KG_") for n in names)


@pytest.mark.parametrize("var", [v for v in DECLARED if v.low is not None or v.high is not None or v.choices],
                         ids=lambda v: v.env)
def test_every_declared_bound_is_enforced_and_named(var: Var) -> None:
    """Outside its range, or not one of its choices, each variable fails naming itself; its
    default lies inside."""
    bad = ["no-such-choice"] if var.choices else \
        ([] if var.low is None else [str(var.low if var.low_open else var.low - 1)]) + \
        ([] if var.high is None else [str(var.high + 1)])
    for raw in bad:
        with pytest.raises(ConfigError) as info:
            var.parse(raw)
        assert str(info.value).startswith(var.env + ":"), raw
    assert var.parse(str(var.default)) == var.default


def test_the_docs_list_every_declared_setting() -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "workers.md").read_text()
    assert [v.env for v in DECLARED if not re.search(rf"\b{v.env}\b", docs)] == []
    table = settings_table()
    assert all(f"| `{v.env}` |" in table for v in DECLARED)
    assert "`KG_REDIS_APPENDFSYNC` | everysec | one of always, everysec, no |" in table


def test_read_setting_parses_one_variable_from_its_declaration() -> None:
    assert read_setting("KG_UP_BEAT", {}) is True
    assert read_setting("KG_UP_BEAT", {"KG_UP_BEAT": "false"}) is False
    with pytest.raises(ConfigError, match="^KG_DRAIN_BATCH:"):
        read_setting("KG_DRAIN_BATCH", {"KG_DRAIN_BATCH": "many"})
    with pytest.raises(KeyError):
        read_setting("KG_NOT_A_SETTING", {})


def test_secrets_are_declared_secret_and_never_printed(tmp_path) -> None:
    s = Settings.from_env({"KG_HOME": str(tmp_path), "KG_GRAPH_PASSWORD": "pw-123456",
                           "KG_REDIS_URL": "redis://:pw-654321@127.0.0.1:1/0", "KG_API_KEY": "key-abcdef"})
    assert {v.env for v in DECLARED if v.secret} == {"KG_GRAPH_PASSWORD", "KG_REDIS_URL", "KG_API_KEY"}
    assert not any(secret in repr(s) for secret in ("pw-123456", "pw-654321", "key-abcdef"))
