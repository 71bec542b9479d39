"""The README's "Limits" table is the one learn.limits renders, and what it says of the workers
matches the settings (one place for the bounds, used by validation and by the docs)."""

from __future__ import annotations

from pathlib import Path

from kg.config import Settings
from learn.limits import STATE_BUDGET_BYTES, markdown_table
from workers.drain import CACHE_MAX_BYTES
from workers.service import READ_CACHE_MAX_BYTES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_shows_the_bounds_of_learn_limits() -> None:
    section = README.split("## Limits\n", 1)[1].split("\n## ", 1)[0]
    assert markdown_table() in section
    assert f"**{STATE_BUDGET_BYTES >> 20} MiB**" in section


def test_readme_states_the_worker_limits_in_force() -> None:
    ws = Settings.from_env({}).workers
    section = README.split("## Limits\n", 1)[1].split("\n## ", 1)[0]
    assert f"`KG_TASK_TIME_LIMIT_S` ({ws.task_time_limit_s:.0f} s" in section
    assert f"`KG_TASK_SOFT_TIME_LIMIT_S` {ws.task_soft_time_limit_s:.0f} s" in section
    assert f"`KG_WORKER_MAX_MEMORY_MB` (default {ws.max_memory_per_child_mb}" in section
    assert f"{CACHE_MAX_BYTES >> 20} MiB of decoded states" in section
    assert f"at most {READ_CACHE_MAX_BYTES >> 20} MiB of decoded states\nfor reads" in section
    assert f"`KG_DRAIN_BUDGET_S` ({ws.drain_budget_s:.0f} s)" in section
