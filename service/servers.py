"""How ``kg up`` starts each server: its command line, environment and files.

``redis_launch`` is redis-server as every local Redis of the project runs (``kg up``, and the
worker tests and benchmarks): loopback only, AOF on, ``noeviction``.

Neo4j 5.26 Community is the default: ``tools/neo4j`` holds a Maven project that
fetches ``org.neo4j:neo4j`` once and a launcher class that starts a persistent
database with the Bolt connector on 127.0.0.1 (``make setup`` builds it; later
starts need no network).  ArcadeDB (``KG_GRAPH_SERVER=arcadedb``, the
``arcadedb-embedded`` wheel with its own Java runtime) is the second supported
server, for machines with Python but no JDK or Maven.

Secrets never go on a command line (``ps`` shows it to every user): Neo4j's
password travels in the launcher's environment, ArcadeDB's in a private Java
argument file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kg.config import Settings
from kg.errors import StackError

NEO4J_VERSION = "5.26.30"  # pinned in tools/neo4j/pom.xml
ARCADEDB_VERSION = "26.10.2.post1"  # pinned in pyproject.toml
NEO4J_TOOLS = Path(__file__).resolve().parent.parent / "tools" / "neo4j"
NEO4J_READY = "kg-neo4j ready"


@dataclass(frozen=True)
class Launch:
    """One server process: what to run, where, and the log line that says it answers."""

    name: str
    label: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str] | None = None
    ready_line: str | None = None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that is mode 0600 from its creation (no window of 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH; a clear error when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("java not found (Neo4j needs a JDK 17): install OpenJDK 17, or set "
                         "KG_GRAPH_SERVER=arcadedb, or point KG_GRAPH_URI at a running server")
    return found


def neo4j_classpath() -> str:
    jar = NEO4J_TOOLS / "target" / "kg-neo4j-launcher-1.jar"
    lib = NEO4J_TOOLS / "target" / "lib"
    if not jar.exists() or not (lib / f"neo4j-{NEO4J_VERSION}.jar").exists():
        raise StackError(f"the Neo4j {NEO4J_VERSION} launcher is not built: run `make setup` "
                         f"(mvn package in {NEO4J_TOOLS})")
    return f"{jar}{os.pathsep}{lib / '*'}"


TX_LOG_RETENTION = "1G size"


def neo4j_conf(settings: Settings, port: int) -> str:
    """The server's settings file (written by ``kg up`` before every start)."""
    return "\n".join([
        "# written by `kg up` at every start; edit KG_GRAPH_* settings instead",
        "server.bolt.enabled=true",
        f"server.bolt.listen_address=127.0.0.1:{port}",
        f"server.bolt.advertised_address=127.0.0.1:{port}",
        "server.http.enabled=false",
        "server.https.enabled=false",
        "dbms.security.auth_enabled=true",
        f"server.memory.pagecache.size={settings.graph_pagecache}",
        # Community has no online backup to read old transaction logs, and recovery needs only
        # those since the last checkpoint: the default (2 days) kept 11 GB after a 10M-edge load
        f"db.tx_log.rotation.retention_policy={TX_LOG_RETENTION}",
        "dbms.usage_report.enabled=false",
        "",
    ])


def neo4j_launch(settings: Settings, root: Path, port: int, password: str) -> Launch:
    """Neo4j under ``root`` (data, logs, transaction logs): heap and page cache from settings."""
    tmp = root / "tmp"  # JNA unpacks a native library here: it must allow exec, unlike some /tmp
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = root / "neo4j.conf"
    write_private(conf, neo4j_conf(settings, port))
    heap = settings.graph_heap
    cmd = [
        java_binary(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
        f"-Djava.io.tmpdir={tmp}", f"-Djna.tmpdir={tmp}", "-Dfile.encoding=UTF-8",
        "-cp", neo4j_classpath(), "kg.neo4j.Launcher", str(root), str(conf),
    ]
    env = dict(os.environ, KG_NEO4J_PASSWORD=password)
    return Launch("neo4j", f"Neo4j {NEO4J_VERSION}", cmd, root, env, NEO4J_READY)


def arcadedb_launch(settings: Settings, root: Path, port: int, http_port: int, password: str) -> Launch:
    """ArcadeDB with its Bolt plugin; the root password goes in a private argument file."""
    try:
        import arcadedb_embedded
    except ImportError as exc:  # pragma: no cover - a broken install
        raise StackError("arcadedb-embedded is not installed: pip install -e '.[local]' "
                         "(or point KG_GRAPH_URI at a running server)") from exc
    pkg = Path(arcadedb_embedded.__file__).parent
    args = root / "secret.args"
    write_private(args, f"-Darcadedb.server.rootPassword={password}\n")
    cmd = [
        str(pkg / "jre" / "bin" / "java"), f"-Xmx{settings.graph_heap}", "-cp", str(pkg / "jars" / "*"),
        f"@{args}",
        f"-Darcadedb.server.rootPath={root}",
        f"-Darcadedb.server.databaseDirectory={root / 'databases'}",
        "-Darcadedb.server.httpIncomingHost=127.0.0.1",
        f"-Darcadedb.server.httpIncomingPort={http_port}",
        "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
        "-Darcadedb.bolt.host=127.0.0.1",
        f"-Darcadedb.bolt.port={port}",
        f"-Darcadedb.server.defaultDatabases={settings.graph_database}[root]",
        "-Darcadedb.server.mode=production",
        "com.arcadedb.server.ArcadeDBServer",
    ]
    return Launch("arcadedb", f"ArcadeDB {ARCADEDB_VERSION}", cmd, root)


def redis_launch(root: Path, port: int, appendfsync: str = "everysec", password: str | None = None) -> Launch:
    """redis-server on 127.0.0.1:``port`` with its data in ``root``: AOF (``appendfsync``), no RDB
    snapshots, ``noeviction`` (learned state must never be evicted). A ``password`` goes in a
    private config file, not on the command line."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server not found on PATH; `make setup` installs it "
                         "(apt-get install redis-server), or set KG_REDIS_URL")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    cmd = [binary]
    if password is not None:
        conf = root / "redis.conf"
        write_private(conf, f"requirepass {password}\n")
        cmd.append(str(conf))
    cmd += [
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
        "--appendonly", "yes", "--appendfsync", appendfsync,
        "--maxmemory-policy", "noeviction", "--save", "", "--daemonize", "no",
        "--protected-mode", "yes",
    ]
    return Launch("redis", "redis-server", cmd, root)
