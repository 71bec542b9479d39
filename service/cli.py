"""The ``kg`` command: the local stack, dispatch, ingest, user Cypher, workers, HTTP and the demo."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from kg.config import Settings
from kg.errors import KgError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO / "data" / "temporal-kg"  # shipped in the repository (data/temporal-kg/README.md)


def cmd_up(args: argparse.Namespace) -> int:
    from service.stack import Stack

    Stack(Settings.from_env()).up(progress=lambda m: print(m, file=sys.stderr))
    return cmd_status(args)


def cmd_status(args: argparse.Namespace) -> int:
    from service.stack import Stack

    parts = Stack(Settings.from_env()).status()
    for part in parts:
        print(part.line())
    return 0 if all(p.healthy for p in parts) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from service.stack import Stack

    Stack(Settings.from_env()).down(progress=lambda m: print(m, file=sys.stderr))
    return 0


def cmd_dispatch(args: argparse.Namespace) -> int:
    from service.root import Session

    with Session() as session:
        for line in sys.stdin.buffer:  # bytes: a line that is not UTF-8 is answered, not fatal
            if not line.strip():
                continue
            sys.stdout.write(session.dispatch_line(line) + "\n")
            sys.stdout.flush()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from service.root import Session
    from kg.ingest import ingest, require_path

    require_path(Path(args.file))  # named before any connection is tried
    settings = Settings.from_env()
    session = Session(settings)
    try:
        report = ingest(session.store, args.namespace, Path(args.file), settings.home,
                        batch_size=args.batch_size or settings.batch_size,
                        progress=not args.quiet, resume=not args.restart)
        print(report.summary(), file=sys.stderr)
    finally:
        session.close()
    return 130 if report.interrupted else 0


def cmd_cypher(args: argparse.Namespace) -> int:
    from service.root import Session
    from kg.timeparse import text_to_ms
    from kg.usercypher import format_table, run_read_only
    from kg.ingest import now_ms

    settings = Settings.from_env()
    at = text_to_ms(args.at, "--at") if args.at is not None else now_ms()
    known_at = text_to_ms(args.known_at, "--known-at") if args.known_at is not None else now_ms()
    with Session(settings) as session:
        records = run_read_only(session.graph, args.query, timeout_s=settings.cypher_timeout_s,
                                max_rows=settings.cypher_max_rows, t=at, known_at=known_at, ns=args.namespace)
    if records.truncated:
        print(f"note: only the first {len(records):,} rows are shown (KG_CYPHER_MAX_ROWS); add LIMIT",
              file=sys.stderr)
    if args.json:
        print(json.dumps(records, ensure_ascii=False, default=str))
    else:
        print(format_table(records))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one more Celery worker in the foreground (``kg up`` already runs one)."""
    import os
    import socket

    settings = Settings.from_env()
    name = args.name or f"kg-worker-{os.getpid()}@{socket.gethostname()}"
    argv = ["worker", "-l", args.loglevel, "-c", str(args.concurrency or settings.workers.concurrency),
            "-n", name, "-Q", "kg", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if args.beat:
        argv.append("--beat")
    from workers.app import make_app

    make_app(settings).worker_main(argv)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from service.prefork import CrashLoop, serve

    try:
        return serve(Settings.from_env(), args.host, args.port, args.processes)
    except OSError as exc:
        print(f"kg serve: cannot listen: {exc.strerror}", file=sys.stderr)
        return 2
    except CrashLoop as exc:
        print(f"kg serve: {exc}", file=sys.stderr)
        return 1


def cmd_state_show(args: argparse.Namespace) -> int:
    from workers.state_cli import show

    return show(Settings.from_env(), args.namespace, args.core, as_json=args.json)


def cmd_state_rollback(args: argparse.Namespace) -> int:
    from workers.state_cli import rollback

    return rollback(Settings.from_env(), args.namespace, args.core, args.to_version)


def cmd_state_export(args: argparse.Namespace) -> int:
    from workers.state_cli import export

    return export(Settings.from_env(), args.namespace, args.core, args.file)


def cmd_state_import(args: argparse.Namespace) -> int:
    from workers.state_cli import import_

    return import_(Settings.from_env(), args.file, args.namespace, args.replace)


def cmd_state_inspect(args: argparse.Namespace) -> int:
    from workers.state_cli import inspect

    return inspect(args.file)


def cmd_demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return run_demo(Path(args.data))


# Options whose value is a time (ms or ISO-8601); filled by ``add_time_option``.
TIME_OPTIONS: set[str] = set()
# A time value that starts with "-": a negative ISO year ("-0431-03-15", "-12000") or negative ms.
_NEGATIVE_TIME = re.compile(r"-\d+(?:-\d\d(?:-\d\d(?:T[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?)?)?)?")


def add_time_option(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """Add an option taking a time; ``attach_negative_times`` lets its value start with '-'."""
    TIME_OPTIONS.add(name)
    parser.add_argument(name, help=help + "; a negative year works as is (--known-at -0431-03-15)")


def attach_negative_times(argv: list[str]) -> list[str]:
    """``--at -0431-03-15`` as ``--at=-0431-03-15``.

    argparse takes any argument that starts with "-" and is not a plain negative number for an
    option, so a BC date given as the next argument was refused ("expected one argument").
    The ``=`` form is what argparse documents for such values; this writes it for the user.

    >>> attach_negative_times(["cypher", "q", "--known-at", "-0431-03-15", "--at", "2019"])
    ['cypher', 'q', '--known-at=-0431-03-15', '--at', '2019']
    """
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            out.append(arg)
            out.extend(args)
            break
        if arg in TIME_OPTIONS:
            value = next(args, None)
            if value is not None and _NEGATIVE_TIME.fullmatch(value):
                out.append(f"{arg}={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the local stack (Neo4j or ArcadeDB, redis-server, a Celery worker and beat) and wait until healthy").set_defaults(fn=cmd_up)
    sub.add_parser("status", help="report each part of the stack").set_defaults(fn=cmd_status)
    sub.add_parser("down", help="stop what `kg up` started").set_defaults(fn=cmd_down)
    sub.add_parser("dispatch", help="JSON requests on stdin, one per line; responses on stdout").set_defaults(fn=cmd_dispatch)
    p = sub.add_parser("ingest", help="bulk-load edges (and, from JSONL, contradictions and invalidations) "
                                          "from JSONL, CSV/TSV or a temporal-kg dataset folder")
    p.add_argument("file")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint of an earlier run")
    p.set_defaults(fn=cmd_ingest)
    p = sub.add_parser("cypher", help="run a read-only Cypher query with $t, $known_at and $ns bound")
    p.add_argument("query")
    add_time_option(p, "--at", help="valid time bound to $t (ms or ISO-8601; default now)")
    add_time_option(p, "--known-at", help="system time bound to $known_at (ms or ISO-8601; default now)")
    p.add_argument("--namespace", "-n", default="default", help="bound to $ns")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_cypher)
    p = sub.add_parser("worker", help="run one more Celery worker in the foreground")
    p.add_argument("--name", "-n", help="Celery node name (default kg-worker-<pid>@<host>)")
    p.add_argument("--concurrency", "-c", type=int, default=None)
    p.add_argument("--loglevel", "-l", default="INFO")
    p.add_argument("--beat", action="store_true", help="also run the beat schedule in this process")
    p.set_defaults(fn=cmd_worker)
    p = sub.add_parser("serve", help="serve POST /v1/dispatch over HTTP (127.0.0.1 by default)")
    p.add_argument("--host", default=None, help="bind address (default KG_HTTP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default KG_HTTP_PORT or 8765)")
    p.add_argument("--processes", type=positive_int, default=1, metavar="N",
                   help="serving processes forked by a preloading supervisor, which replaces one that "
                        "dies (default 1)")
    p.set_defaults(fn=cmd_serve)
    state = sub.add_parser("state", help="inspect, roll back, export or import learned state")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    p = state_sub.add_parser("show", help="versions, checks and history of a namespace's states")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--core", choices=["instant", "ewc", "router", "attention"], default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_state_show)
    p = state_sub.add_parser("rollback", help="write an earlier intact version back as the newest")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--core", choices=["instant", "ewc", "router", "attention"], required=True)
    p.add_argument("--to-version", type=int, default=None,
                   help="the version to restore (default: the newest intact one before the current)")
    p.set_defaults(fn=cmd_state_rollback)
    p = state_sub.add_parser("export", help="write every core's current state of a namespace to one file")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--core", choices=["instant", "ewc", "router", "attention"], action="append", default=None,
                   help="only this core (repeatable; default: every core that holds state)")
    p.add_argument("file")
    p.set_defaults(fn=cmd_state_export)
    p = state_sub.add_parser("import", help="load a state file into a namespace: all cores or none, each as "
                                            "a new version")
    p.add_argument("file")
    p.add_argument("--namespace", "-n", default=None, help="the namespace (default: the one in the file)")
    p.add_argument("--replace", action="store_true",
                   help="replace cores that already hold state (the replaced versions stay for rollback)")
    p.set_defaults(fn=cmd_state_import)
    p = state_sub.add_parser("inspect", help="check a state file and print its manifest (writes nothing)")
    p.add_argument("file")
    p.set_defaults(fn=cmd_state_inspect)
    p = sub.add_parser("demo", help="start the stack, ingest YAGO11k and answer as-of questions")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.set_defaults(fn=cmd_demo)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    return parser.parse_args(attach_negative_times(sys.argv[1:] if argv is None else list(argv)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.fn(args)
    except KgError as exc:
        print(f"kg {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
