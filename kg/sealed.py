"""Answers that can never change, kept in process: the sealed history of small subjects.

With ``KG_SEALED_THROUGH = S`` the store refuses every change stamped at or before ``S``
(``kg.temporal.Plan``), so a version that starts after ``S`` can never be seen at a
``known_at <= S``, and a version closed from then on ends after ``S``, which keeps it seen
at any such ``known_at``.  The versions of a subject with ``sys_from <= S`` therefore answer
every question ``(src, t, known_at <= S)`` for good, whatever is written later: their
``sys_to`` may still move from open to a time after ``S``, which changes no such answer.
This holds across processes only if every process writing the graph runs with the same
``S`` (or a later one): one that writes without it can write beneath the seal.

``SealedHistory`` keeps those versions for up to ``max_subjects`` subjects, least recently
used out first (thread-safe: a serving process answers from many threads).  Large subjects
(``scan_limit`` versions or more) are not kept: the store asks the server by time keys as
before.  The store reads a subject's sealed history through its Entity node's relationships
(``cypher/edges/scan_subject_sealed``), not through the time-key index, where a version that
a concurrent write closes changes its key and an index walk may miss it for that instant.

>>> cache = SealedHistory(through=100, max_subjects=1)
>>> cache.put(("ns", "a"), []); cache.put(("ns", "b"), [])
>>> cache.get(("ns", "a")) is None, cache.get(("ns", "b"))
(True, [])
>>> cache.answers(50), cache.answers(100), cache.answers(101), cache.answers(None)
(True, True, False, False)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from kg.temporal import Version

MAX_SUBJECTS = 20_000


class SealedHistory:
    """Per (namespace, subject): its versions with ``sys_from <= through``; bounded, LRU."""

    def __init__(self, through: int, max_subjects: int = MAX_SUBJECTS) -> None:
        self.through = through
        self.max_subjects = max_subjects
        self._kept: OrderedDict[tuple[str, str], list[Version]] = OrderedDict()
        self._lock = threading.Lock()

    def answers(self, known_at: int | None) -> bool:
        """Whether a question at ``known_at`` is answered from sealed history (current belief never is)."""
        return known_at is not None and known_at <= self.through

    def get(self, subject: tuple[str, str]) -> list[Version] | None:
        with self._lock:
            versions = self._kept.get(subject)
            if versions is not None:
                self._kept.move_to_end(subject)
            return versions

    def put(self, subject: tuple[str, str], versions: list[Version]) -> None:
        with self._lock:
            self._kept[subject] = versions
            self._kept.move_to_end(subject)
            while len(self._kept) > self.max_subjects:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)
