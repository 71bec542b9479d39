"""Errors of the worker layer, as subclasses of the service's tree in ``kg.errors``.

KgError
├── InvalidInput
│   └── NotInitialised   a learning verb on a core that was never initialised (names the field)
├── Unavailable
│   └── WorkerTimeout    no worker applied an update within the wait; it stays queued (ticket)
├── UpdateFailed         the worker applied the event and it failed (names the field); nothing changed
├── StateCorrupt         a stored blob failed its checksum, schema or shape check; never re-initialised
└── StateFileError       a state file (``kg state import``) failed a check; nothing was written

Redis errors are converted at the boundary (``RedisUnavailable`` from ``kg.errors``); learning
errors (``learn.LearnInputError``) become ``InvalidInput`` naming the same field.
"""

from __future__ import annotations

from kg.errors import InvalidInput, KgError, Unavailable


class NotInitialised(InvalidInput):
    """The namespace has no state of this core yet (call the matching ``init_*`` verb first)."""


class WorkerTimeout(Unavailable):
    """An update was queued but no worker applied it within the wait; poll its ticket."""

    def __init__(self, ticket: str, waited_s: float) -> None:
        self.ticket = ticket
        super().__init__(
            f"workers: the update was not applied within {waited_s:g} s; it stays queued "
            f"as ticket {ticket} (poll it, or start a worker with `kg worker`)"
        )


class UpdateFailed(KgError):
    """The worker applied the event and it failed (the message names the field); nothing changed."""


class StateCorrupt(KgError):
    """A stored state blob failed a check: a loud error, never a silent re-initialisation."""

    def __init__(self, namespace: str, core: str, reason: str) -> None:
        self.namespace = namespace
        self.core = core
        self.reason = reason
        super().__init__(
            f"state: the {core} state of namespace {namespace!r} failed its check ({reason}); "
            f"inspect it with `kg state show -n {namespace}` and restore an earlier version with "
            f"`kg state rollback -n {namespace} --core {core}`"
        )


class StateFileError(KgError):
    """A state file failed a check (names the file and what is wrong); nothing was written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"state file {path}: {reason}")
