"""The Celery app: Redis as broker and result backend, JSON only, late acks, a beat schedule.

:func:`make_app` builds the app of a :class:`kg.config.Settings` (see docs/workers.md) and
registers the tasks of :mod:`workers.tasks` on it; nothing is configured at import.
``celery -A workers.app worker`` (or ``kg worker``) runs the tasks and ``celery -A workers.app
beat`` (or ``kg up``) the schedule: ``workers.app.app``, which the ``celery`` command line looks
up, is built on first access from the environment's settings.

- no pickle anywhere: ``accept_content`` and every serializer are JSON, and beat keeps its schedule
  in memory (``celery.beat:Scheduler``) instead of a shelve file;
- ``acks_late`` + ``task_reject_on_worker_lost``: a task whose process dies is redelivered, and an
  attempt counter (:class:`workers.tasks.KgTask`, and per event in :mod:`workers.drain`) stops one
  that always kills its process;
- prefetch 1, so a worker reserves only what it runs;
- the visibility timeout (broker and result backend alike) exceeds the hard time limit, so a slow
  task is never handed to a second worker while it still runs;
- no single task can starve the others: a task is stopped at the hard time limit
  (``KG_TASK_TIME_LIMIT_S``, soft limit first), and a pool process whose memory grew past
  ``KG_WORKER_MAX_MEMORY_MB`` is replaced after its task (``worker_max_memory_per_child``), so
  memory a large task left behind is given back. What one task may allocate in the first place is
  bounded by the request limits of :mod:`learn.limits`.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from kg.config import Settings

QUEUE = "kg"


def configure(app: Celery, settings: Settings) -> Celery:
    ws = settings.workers
    url = settings.redis_url
    transport = {"visibility_timeout": int(ws.visibility_timeout_s)}
    app.conf.update(
        broker_url=url,
        result_backend=url,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        visibility_timeout=int(ws.visibility_timeout_s),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_time_limit=ws.task_time_limit_s,
        task_soft_time_limit=ws.task_soft_time_limit_s,
        worker_max_memory_per_child=ws.max_memory_per_child_mb * 1024,  # KiB
        task_default_queue=QUEUE,
        task_ignore_result=False,
        result_expires=ws.event_ttl_s,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
    )
    return app


def beat_schedule(settings: Settings) -> dict:
    """Background jobs; each expires after one period so a stopped worker finds no pile-up."""
    ws = settings.workers

    def job(task: str, every: float) -> dict:
        return {"task": task, "schedule": every, "options": {"expires": every}}

    return {
        "sweep-stalled-queues": job("kg.sweep", ws.beat_sweep_s),
        "router-batch-training": job("kg.train_routers", ws.beat_train_s),
        "router-replay": job("kg.replay_routers", ws.beat_replay_s),
        "consolidate-and-snapshot": job("kg.consolidate", ws.beat_consolidate_s),
        "adapter-consolidation": job("kg.consolidate_adapters", ws.beat_base_s),
        "cluster-patterns": job("kg.cluster_patterns", ws.beat_cluster_s),
    }


class KgApp(Celery):
    """A Celery app that keeps the settings it was built from (its tasks and signal handlers
    read them as ``app.kg_settings``)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("kg", set_as_current=False)
        self.kg_settings = settings


def make_app(settings: Settings, tasks: bool = True) -> KgApp:
    """The app of ``settings``, with the tasks of :mod:`workers.tasks` registered (a worker or
    beat), or without them (``tasks=False``: an app that only publishes)."""
    app = configure(KgApp(settings), settings)
    if tasks:
        from workers.tasks import register

        register(app)
    return app


@lru_cache(maxsize=8)
def publisher(settings: Settings) -> Celery:
    """An app for sending tasks to the broker of ``settings`` (callers in any process)."""
    return make_app(settings, tasks=False)


@lru_cache(maxsize=1)
def command_line_app() -> KgApp:
    """The app of the environment's settings, built on first use."""
    return make_app(Settings.from_env())


def __getattr__(name: str) -> KgApp:
    """``workers.app.app``: the module attribute that ``celery -A workers.app`` looks up (Celery
    finds an app by attribute and calls no factory) and ``kg worker`` runs. It is built when
    asked for, so importing this module reads no environment and configures nothing."""
    if name == "app":
        return command_line_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
