"""Where a learned state lives in Redis: keys sharing one hash tag, ``kg:w:{<namespace>/<core>}:…``.

- ``blob``: a :class:`workers.store_record.Record`: header (schema, version, update count, SHA-256
  of the state) and the core's state as ``learn.to_bytes`` produced it (safetensors: no code runs
  on load).
- ``ver``: the version, a counter that only grows; a read revalidates its cache with one GET of it.
- ``hist`` / ``snaps``: earlier records, newest first, for ``kg state rollback`` (a version goes
  to ``hist`` when it is replaced, at most once per ``KG_STATE_HISTORY_EVERY_MS``).
- ``pending``: events waiting for a worker, in arrival order: ``"<seq> <payload>"``
  (:mod:`workers.events`), or ``"<seq> @<field>"`` with the payload in the ``payloads`` hash (bulk
  enqueues); ``seq`` counts accepted events and ``done`` consumed ones.
- ``log``: the order the store applied events in, ``"<seq> <event id> <version> <ok>"``.
- ``ev:<id>`` / ``wake:<id>``: an event's result (its ticket) and the list a waiting caller blocks on.
- ``epoch``: the version of the last ``init_*``; callers check events against the core of that epoch.
- ``flag`` / ``lock`` / ``crash`` / ``careful``: at most one drain task queued / running, what it
  was doing, and up to which event a crashed batch is being retried one event at a time.
- ``outcomes`` / ``error``: a router's recorded outcomes; why the last drain could not apply.

Outside the hash tags: ``kg:w:states`` lists every state, ``kg:w:dead`` the dead letters.

>>> StateKeys.of("team a/b", "router").blob
'kg:w:{team%20a%2Fb/router}:blob'
>>> StateKeys.from_member(StateKeys.of("team a/b", "router").member).namespace
'team a/b'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

KINDS = ("instant", "ewc", "router", "attention", "patterns")
STATES_KEY = "kg:w:states"
DEAD_KEY = "kg:w:dead"


@dataclass(frozen=True)
class StateKeys:
    namespace: str
    core: str
    prefix: str

    @classmethod
    @lru_cache(maxsize=4096)
    def of(cls, namespace: str, core: str) -> "StateKeys":
        if core not in KINDS:
            raise ValueError(f"unknown core {core!r}")
        return cls(namespace, core, f"kg:w:{{{quote(namespace, safe='')}/{core}}}")

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    blob = property(lambda self: self._key("blob"))
    ver = property(lambda self: self._key("ver"))
    hist = property(lambda self: self._key("hist"))
    snaps = property(lambda self: self._key("snaps"))
    pending = property(lambda self: self._key("pending"))
    seq = property(lambda self: self._key("seq"))
    done = property(lambda self: self._key("done"))
    log = property(lambda self: self._key("log"))
    epoch = property(lambda self: self._key("epoch"))
    flag = property(lambda self: self._key("flag"))
    lock = property(lambda self: self._key("lock"))
    crash = property(lambda self: self._key("crash"))
    careful = property(lambda self: self._key("careful"))
    outcomes = property(lambda self: self._key("outcomes"))
    payloads = property(lambda self: self._key("payloads"))
    error = property(lambda self: self._key("error"))

    def event(self, event_id: str) -> str:
        return f"{self.prefix}:ev:{event_id}"

    def wake(self, event_id: str) -> str:
        return f"{self.prefix}:wake:{event_id}"

    @property
    def member(self) -> str:
        """How the state is listed in ``kg:w:states``."""
        return f"{quote(self.namespace, safe='')}/{self.core}"

    @classmethod
    def from_member(cls, member: str | bytes) -> "StateKeys":
        text = member.decode() if isinstance(member, bytes) else member
        ns, _, core = text.rpartition("/")
        return cls.of(unquote(ns), core)
