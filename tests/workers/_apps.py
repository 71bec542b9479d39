"""The Celery app modules the worker tests start (``workers(name, app=...)``)."""

FAULT_APP = "tests.workers.fault_worker"  # the product's worker plus fault injection (crash tests)
