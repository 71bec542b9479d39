"""The Celery app is built by a function from settings; importing its module configures nothing,
and ``celery -A workers.app`` still finds an app (built then, from the environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kg.config import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
TASKS = {"kg.drain", "kg.sweep", "kg.train_routers", "kg.replay_routers", "kg.consolidate"}


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    return subprocess.run([sys.executable, "-c", code], env=dict(base, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_importing_the_app_module_reads_no_environment(tmp_path) -> None:
    out = _python("import workers.app, workers.tasks; print('imported')",
                  KG_HOME=str(tmp_path), KG_TASK_MAX_ATTEMPTS="x")
    assert out.returncode == 0 and out.stdout.strip() == "imported", out.stderr


def test_the_celery_command_line_finds_the_app_of_the_environment(tmp_path) -> None:
    code = ("from celery.app.utils import find_app\n"
            "app = find_app('workers.app')\n"
            "print(type(app).__name__, app.conf.task_time_limit, app.tasks['kg.drain'].attempt_limit)")
    out = _python(code, KG_HOME=str(tmp_path), KG_TASK_TIME_LIMIT_S="200", KG_TASK_MAX_ATTEMPTS="2")
    assert out.returncode == 0 and out.stdout.split() == ["KgApp", "200.0", "12"], out.stderr
    bad = _python(code, KG_HOME=str(tmp_path), KG_REDIS_APPENDFSYNC="sometimes")
    assert bad.returncode != 0 and "ConfigError: KG_REDIS_APPENDFSYNC:" in bad.stderr


def test_make_app_registers_the_tasks_with_limits_from_its_settings(tmp_path) -> None:
    from workers.app import make_app, publisher

    one = Settings.from_env({"KG_HOME": str(tmp_path), "KG_VISIBILITY_TIMEOUT_S": "900", "KG_TASK_MAX_ATTEMPTS": "5"})
    two = Settings.from_env({"KG_HOME": str(tmp_path)})
    a, b = make_app(one), make_app(two)
    assert a is not b and TASKS <= set(a.tasks) and TASKS <= set(b.tasks)
    assert (a.conf.broker_transport_options, b.conf.broker_transport_options) == (
        {"visibility_timeout": 900}, {"visibility_timeout": 600})
    assert (a.tasks["kg.sweep"].attempt_limit, a.tasks["kg.drain"].attempt_limit) == (5, 24)
    assert (b.tasks["kg.sweep"].attempt_limit, b.tasks["kg.drain"].attempt_limit) == (3, 16)
    assert (a.tasks["kg.sweep"].retry_backoff_max, b.tasks["kg.drain"].retry_backoff_max) == (225, 150)
    assert not TASKS & set(publisher(two).tasks), "a publishing app registers no tasks"
