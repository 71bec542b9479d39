"""MariaDB as the peer of bench.peer_mariadb: its own server, and the same facts in a bi-temporal table.

``Server`` starts Debian's ``mariadbd`` (10.11) with its own datadir and socket under
``bench/results/peer_mariadb-<edges>/``, listening on a free loopback port, with durable commits
(``innodb_flush_log_at_trx_commit=1``, Debian's default character set utf8mb4, doublewrite on, no binary log: the graph servers keep
none either) and a buffer pool the size of the graph server's memory (heap + page cache).

``Peer`` keeps the edges in one table with an application-time ``PERIOD`` (valid time,
``DATETIME(3)``: MariaDB allows no integer period columns) and ``WITH SYSTEM VERSIONING``
(system time, ``TIMESTAMP(6)``).  System time is aligned with the service's: a new row is
written with ``system_versioning_insert_history`` and an explicit ``row_start`` (its
``created_at``); a change runs after ``SET timestamp`` to its ``expired_at``, so the row it
ends gets that ``row_end`` and the new row that ``row_start``.  ``FOR SYSTEM_TIME AS OF``
answers ``known_at``.  Every statement is a server-side prepared statement (the ``mariadb``
connector's ``cursor(prepared=True)``, binary protocol) and batches of inserts use its bulk
protocol (``executemany``).  A 10.11 ``TIMESTAMP`` ends in 2038: system times later than that
cannot be stored (the 10M stream's would not fit).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from bench._procs import stop_process
from kg.interval_index import OPEN
from kg.temporal import NewEdge

EPOCH = datetime(1970, 1, 1)
OPEN_VALID = datetime(9999, 12, 31, 23, 59, 59, 999_000)  # DATETIME(3)'s last instant: open valid end
OPEN_SYSTEM = datetime(2038, 1, 19, 3, 14, 7, 999_999)  # what 10.11 writes as the row_end of current rows

SCHEMA = """
CREATE TABLE fact (
  edge_id VARCHAR(512) NOT NULL,
  src VARCHAR(512) NOT NULL,
  dst VARCHAR(512) NOT NULL,
  relation VARCHAR(512) NOT NULL,
  weight DOUBLE NOT NULL,
  attributes TEXT NOT NULL,
  valid_from DATETIME(3) NOT NULL,
  valid_to DATETIME(3) NOT NULL,
  created_at BIGINT NOT NULL,
  invalidated_by VARCHAR(512) NULL,
  row_start TIMESTAMP(6) GENERATED ALWAYS AS ROW START,
  row_end TIMESTAMP(6) GENERATED ALWAYS AS ROW END,
  PERIOD FOR valid_time (valid_from, valid_to),
  PERIOD FOR SYSTEM_TIME (row_start, row_end),
  PRIMARY KEY (edge_id, row_end),
  KEY by_src (src, row_end, valid_from)
) ENGINE=InnoDB WITH SYSTEM VERSIONING
"""
COLUMNS = "edge_id, src, dst, relation, weight, valid_from, valid_to, invalidated_by, row_start"
INSERT = ("INSERT INTO fact (edge_id, src, dst, relation, weight, attributes, valid_from, valid_to, created_at,"
          " row_start, row_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
CUT_RIVAL = ("UPDATE fact SET valid_to = ?, invalidated_by = ?"
             " WHERE src = ? AND relation = ? AND valid_from <= ? AND valid_to > ?")
INVALIDATE = "UPDATE fact SET valid_to = ?, invalidated_by = NULL WHERE edge_id = ? AND valid_to > ? AND valid_from <= ?"
LOOKUP = "SELECT src FROM fact WHERE src = ? LIMIT 1"
CURRENT = f"SELECT {COLUMNS} FROM fact WHERE src = ? AND valid_from <= ? AND ? < valid_to"
KNOWN_AT = f"SELECT {COLUMNS} FROM fact FOR SYSTEM_TIME AS OF TIMESTAMP ? WHERE src = ? AND valid_from <= ? AND ? < valid_to"
_HOPS = """
WITH RECURSIVE reach (node, depth) AS (
  SELECT DISTINCT src, 0 FROM fact WHERE src = ?
  UNION
  SELECT f.dst, r.depth + 1 FROM reach r JOIN fact {asof} f ON f.src = r.node
  WHERE r.depth < ? AND f.valid_from <= ? AND ? < f.valid_to
)
SELECT f.edge_id, f.src, f.dst, f.relation, f.valid_from
FROM (SELECT DISTINCT node FROM reach WHERE depth < ?) n JOIN fact {asof} f ON f.src = n.node
WHERE f.valid_from <= ? AND ? < f.valid_to
"""  # the anchor reads the subject from the table so that `node` has src's type and collation
# (a CAST parameter had another, and every join became a full scan)
HOPS_CURRENT = _HOPS.format(asof="")
HOPS_KNOWN_AT = _HOPS.format(asof="FOR SYSTEM_TIME AS OF TIMESTAMP ?")
# Many questions in one round trip: the questions as one JSON parameter, joined to the table.  Each
# row is [question index, src, t, known_at] with times as DATETIME text; known_at reads all of
# system time with the AS OF condition spelt out (AS OF takes one instant per table reference).
_QUESTIONS = ("JSON_TABLE(?, '$[*]' COLUMNS (i INT PATH '$[0]', src VARCHAR(512) PATH '$[1]',"
              " t DATETIME(3) PATH '$[2]', k TIMESTAMP(6) PATH '$[3]')) q")
MANY_CURRENT = (f"SELECT q.i, {', '.join('f.' + c for c in COLUMNS.split(', '))} FROM {_QUESTIONS}"
                " JOIN fact f ON f.src = q.src AND f.valid_from <= q.t AND q.t < f.valid_to")
MANY_KNOWN_AT = (f"SELECT q.i, {', '.join('f.' + c for c in COLUMNS.split(', '))} FROM {_QUESTIONS}"
                 " JOIN fact FOR SYSTEM_TIME ALL f ON f.src = q.src AND f.valid_from <= q.t AND q.t < f.valid_to"
                 " AND f.row_start <= q.k AND q.k < f.row_end")


def as_dt(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def valid_dt(ms: int | None) -> datetime:
    return OPEN_VALID if ms is None or ms >= OPEN else as_dt(ms)


def as_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


def _bytes(size: str) -> int:
    """``768m`` / ``2g`` (KG_GRAPH_HEAP's form) in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    size = size.strip().lower()
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def buffer_pool(heap: str, pagecache: str) -> int:
    return _bytes(heap) + _bytes(pagecache)


class Server:
    """A private ``mariadbd``: fresh datadir, own socket, loopback port, a generated password."""

    def __init__(self, folder: Path, buffer_pool_bytes: int) -> None:
        self.folder = folder
        self.buffer_pool_bytes = buffer_pool_bytes
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(mariadbd).exists():
            raise SystemExit("mariadbd not found: run `make bench-setup` (installs Debian's mariadb-server)")
        self._stop_left_over()
        if self.folder.exists():
            shutil.rmtree(self.folder)
        data = self.folder / "data"
        data.mkdir(parents=True)
        os.chmod(self.folder, 0o700)
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", *user,
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        log = (self.folder / "mariadbd.log").open("w")
        self.process = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={self.socket}", f"--port={self.port}",
             "--bind-address=127.0.0.1", *user, "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci", "--skip-log-bin", "--skip-name-resolve",
             f"--innodb-buffer-pool-size={self.buffer_pool_bytes}", "--innodb-flush-log-at-trx-commit=1",
             "--innodb-doublewrite=1", "--innodb-log-file-size=512M", "--max-connections=20",
             f"--pid-file={self.folder / 'mariadbd.pid'}"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mariadbd did not start: see {self.folder / 'mariadbd.log'}")
            time.sleep(0.2)
        setup = ("CREATE DATABASE bench; CREATE USER bench@'127.0.0.1' IDENTIFIED BY '{pw}';"
                 " GRANT ALL PRIVILEGES ON *.* TO bench@'127.0.0.1';").format(pw=self.password)
        subprocess.run(["mariadb", f"--socket={self.socket}", "-u", "root", "-e", setup], check=True)
        return self

    def _stop_left_over(self) -> None:
        """Stop a server an earlier run left behind in this folder (its process died without
        stopping it): found by the pid file and checked to be a mariadbd of this datadir."""
        pid_file = self.folder / "mariadbd.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if f"--datadir={self.folder / 'data'}".encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)

    @property
    def socket(self) -> Path:
        return self.folder / "mariadbd.sock"

    def connect(self):
        import mariadb

        conn = mariadb.connect(host="127.0.0.1", port=self.port, user="bench", password=self.password,
                               database="bench", autocommit=False)
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SET system_versioning_insert_history = 1")
        cur.close()
        return conn

    def stop(self) -> None:
        stop_process(self.process, 60)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Peer:
    """The bi-temporal table on one connection; each method is one transaction."""

    def __init__(self, conn, functional: frozenset[str]) -> None:
        self.conn = conn
        self.functional = functional
        self.text = conn.cursor()
        self._prepared: dict[str, object] = {}

    def run(self, sql: str, params: tuple = (), many: list | None = None):
        """Execute ``sql`` on its own prepared cursor (prepared once, kept: a cursor re-prepares
        when its statement changes, and this connector, 1.1, then ran an INSERT after an UPDATE
        on the same cursor as nothing at all)."""
        cur = self._prepared.get(sql)
        if cur is None:
            cur = self._prepared[sql] = self.conn.cursor(prepared=True)
        if many is not None:
            cur.executemany(sql, many)
        else:
            cur.execute(sql, params)
        return cur

    def create(self) -> None:
        cur = self.conn.cursor()
        cur.execute("DROP TABLE IF EXISTS fact")
        cur.execute(SCHEMA)
        cur.close()

    def _at(self, ms: int) -> None:
        """System time of the next statements: ``ms`` (``SET timestamp`` takes seconds).  The one
        statement sent as text: the connector crashed on ``SET`` prepared with a parameter."""
        self.text.execute(f"SET timestamp = {Decimal(int(ms)) / 1000}")

    def insert_many(self, edges: list[NewEdge]) -> None:
        """A batch in one transaction: ordinary facts in one bulk insert; each functional fact
        first cuts the current fact of its subject that it overlaps (the in-order case of the
        service's rule), at its ``created_at``."""
        row = lambda e: (e.id, e.src, e.dst, e.relation, e.weight, e.attributes, as_dt(e.valid_at),  # noqa: E731
                         valid_dt(e.invalid_at), e.created_at, as_dt(e.created_at), OPEN_SYSTEM)
        plain = [row(e) for e in edges if e.relation not in self.functional]
        if plain:
            self.run(INSERT, many=plain)
        for e in edges:
            if e.relation in self.functional:
                self._at(e.created_at)
                start = as_dt(e.valid_at)
                self.run(CUT_RIVAL, (start, e.id, e.src, e.relation, start, start))
                self.run(INSERT, row(e))
        self.conn.commit()

    def invalidate(self, edge_id: str, invalid_at: int, expired_at: int) -> None:
        self._at(expired_at)
        at = as_dt(invalid_at)
        self.run(INVALIDATE, (at, edge_id, at, at))
        self.conn.commit()

    def invalidate_many(self, items: list[tuple[str, int, int]]) -> None:
        """Many invalidations in one transaction; one ``SET timestamp`` per run of equal ``expired_at``."""
        last = None
        group: list[tuple] = []
        for edge_id, invalid_at, expired_at in items:
            if expired_at != last and group:
                self._at(last)
                self.run(INVALIDATE, many=group)
                group = []
            last = expired_at
            at = as_dt(invalid_at)
            group.append((at, edge_id, at, at))
        if group:
            self._at(last)
            self.run(INVALIDATE, many=group)
        self.conn.commit()

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        out = self.run(sql, params).fetchall()
        self.conn.commit()
        return out

    def lookup(self, src: str) -> list[tuple]:
        return self._read(LOOKUP, (src,))

    def query_at(self, src: str, t: int, known_at: int | None = None) -> list[tuple]:
        at = as_dt(t)
        if known_at is None:
            return [answer(r) for r in self._read(CURRENT, (src, at, at))]
        return [answer(r) for r in self._read(KNOWN_AT, (as_dt(known_at), src, at, at))]

    def query_at_many(self, questions: list[tuple[str, int, int | None]]) -> list[list[tuple]]:
        """Answers to many questions in one round trip per time axis."""
        out: list[list[tuple]] = [[] for _ in questions]
        current = [[i, s, _text(as_dt(t)), None] for i, (s, t, k) in enumerate(questions) if k is None]
        known = [[i, s, _text(as_dt(t)), _text(as_dt(k))] for i, (s, t, k) in enumerate(questions) if k is not None]
        for sql, batch in ((MANY_CURRENT, current), (MANY_KNOWN_AT, known)):
            if batch:
                for r in self.run(sql, (json.dumps(batch),)).fetchall():
                    out[r[0]].append(answer(r[1:]))
        self.conn.commit()
        return [sorted(a) for a in out]

    def neighbourhood(self, src: str, hops: int, t: int, known_at: int | None = None) -> list[tuple]:
        found = self._hops(src, hops, t, known_at)
        self.conn.commit()
        return found

    def neighbourhood_many(self, questions: list[tuple[str, int, int, int | None]]) -> list[list[tuple]]:
        """``neighbourhood`` for each (src, hops, t, known_at), in one transaction."""
        found = [self._hops(*question) for question in questions]
        self.conn.commit()
        return found

    def _hops(self, src: str, hops: int, t: int, known_at: int | None) -> list[tuple]:
        at = as_dt(t)
        if known_at is None:
            found = self.run(HOPS_CURRENT, (src, hops - 1, at, at, hops, at, at)).fetchall()
        else:
            k = as_dt(known_at)
            found = self.run(HOPS_KNOWN_AT, (src, k, hops - 1, at, at, hops, k, at, at)).fetchall()
        return sorted((r[0], r[1], r[2], r[3], as_ms(r[4])) for r in found)


def _text(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def answer(r: tuple) -> tuple:
    """A row of COLUMNS as the comparable tuple: id, src, dst, relation, weight, valid_at,
    invalid_at (None: open), invalidated_by, sys_from (the version's system start)."""
    edge_id, src, dst, relation, weight, valid_from, valid_to, invalidated_by, row_start = r
    return (edge_id, src, dst, relation, float(weight), as_ms(valid_from),
            None if valid_to >= OPEN_VALID else as_ms(valid_to), invalidated_by, as_ms(_naive(row_start)))


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def service_answer(view: dict) -> tuple:
    """A ``query_at`` view of the service as ``answer``'s tuple."""
    sys_from = view["expired_at"] if view["version"] > 1 else view["created_at"]
    return (view["id"], view["src"], view["dst"], view["relation"], float(view["weight"]), view["valid_at"],
            view["invalid_at"], view["invalidated_by"], sys_from)
