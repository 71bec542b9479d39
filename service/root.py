"""The composition root: the one place the service is put together.

The graph verbs (:mod:`kg.verbs`) and the learning verbs (:mod:`workers.verbs`) are tables; this
module joins them into the dispatch surface, gives it its health sections and the learning
client, and is what the ``kg`` command, ``kg serve`` and the demo build their sessions from.
Nothing registers itself by being imported.
"""

from __future__ import annotations

import threading

from kg import dispatch
from kg.config import Settings
from kg.verbs import GRAPH_VERBS, graph_health
from workers.service import Learning
from workers.verbs import DISPATCH_VERBS, HEALTH_SECTIONS

VERBS: dict[str, dispatch.Verb] = dispatch.verb_table(GRAPH_VERBS, DISPATCH_VERBS)
"""Every verb of the service, by name."""
HEALTH = (graph_health, *HEALTH_SECTIONS)


class Session(dispatch.Session):
    """One process's entry point to the whole service (graph and learning); thread-safe, reuse it."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings or Settings.from_env(), VERBS, HEALTH)
        self._learning: Learning | None = None
        self._learning_lock = threading.Lock()

    @property
    def learning(self) -> Learning:
        """The learning client (Redis), created on first use."""
        if self._learning is None:
            with self._learning_lock:
                if self._learning is None:
                    self._learning = Learning(self.settings)
        return self._learning

    def close(self) -> None:
        if self._learning is not None:
            self._learning.close()
        super().close()
