"""No password of a URL in what health, ``kg status`` or the worker logs show (issue 12 item 9).

The Redis here really requires the password, so a health report that still says ``reachable``
proves the URL was used as given while it is shown redacted.
"""

from __future__ import annotations

import json

from bench._procs import wait_for
from kg.config import Settings
from service.root import Session
from service.stack import Stack

SECRET = "s3cret-Pw_42"


def test_health_status_and_logs_redact_the_redis_password(redis_server, env, workers, monkeypatch) -> None:
    redis_server.client().config_set("requirepass", SECRET)
    url = f"redis://:{SECRET}@127.0.0.1:{redis_server.port}/0"
    shown = f"redis://:***@127.0.0.1:{redis_server.port}/0"
    penv = dict(env, KG_REDIS_URL=url)
    worker = workers("w1", KG_REDIS_URL=url)
    settings = Settings.from_env(penv)
    with Session(settings) as session:
        assert session.dispatch({"verb": "init_router", "body": {"targets": ["a"], "in_dim": 2}})["ok"]
        out = session.dispatch({"verb": "health", "body": {}})
    assert out["ok"], out
    assert out["data"]["redis"] == {"reachable": True, "url": shown}
    assert out["data"]["cores"]["router"]["ready"], "the worker reached Redis with the password"
    assert SECRET not in json.dumps(out)

    monkeypatch.setenv("KG_REDIS_URL", url)  # an external Redis, as `kg status` sees it
    status = Stack(settings).status(settings)
    redis_part = next(p for p in status if p.name == "redis")
    assert redis_part.healthy and redis_part.detail.startswith("appendonly")
    assert SECRET not in repr(status) and shown in repr(status)

    worker.stop()
    wait_for(lambda: worker.log.exists() and worker.log.stat().st_size > 0, 10, "the worker log")
    assert SECRET not in worker.log.read_text(errors="replace")
