"""``POST /v1/dispatch`` over HTTP (stdlib ``ThreadingHTTPServer``), with ``GET /openapi.json``.

Bound to 127.0.0.1 unless ``KG_HTTP_HOST`` says otherwise. When ``KG_API_KEY`` is set, a request
must carry it (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``) or it is refused with 401;
the key is compared in constant time and never logged. A dispatch answer is always HTTP 200 with
``ok`` inside (like JSON-RPC); 400 means the request was not JSON, 413 that it was too large.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from service.root import VERBS, Session
from workers.openapi import spec

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: "DispatchServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # never the body or headers
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        key = self.server.api_key
        if not key:
            return True
        given = self.headers.get("X-API-Key")
        auth = self.headers.get("Authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), key.encode())

    def do_GET(self) -> None:  # noqa: N802
        with self.server.busy():
            self._get()

    def do_POST(self) -> None:  # noqa: N802
        with self.server.busy():
            self._post()

    def _get(self) -> None:
        if self.path == "/openapi.json":
            self._send(200, self.server.openapi)
        else:
            self._send(404, {"ok": False, "verb": None, "error": "path: not found"})

    def _post(self) -> None:
        if self.path != "/v1/dispatch":
            self._drain_body()
            self._send(404, {"ok": False, "verb": None, "error": "path: not found"})
            return
        if not self._authorised():
            self._drain_body()
            self._send(401, {"ok": False, "verb": None, "error": "authorization: missing or wrong API key"},
                       {"WWW-Authenticate": 'Bearer realm="kg"'})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, {"ok": False, "verb": None, "error": "request: Content-Length is required"},
                       {"Connection": "close"})
            self.close_connection = True
            return
        limit = self.server.session.settings.max_request_bytes
        if length > limit:
            self._send(413, {"ok": False, "verb": None, "error": f"request: larger than {limit} bytes"},
                       {"Connection": "close"})
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            self._send(400, {"ok": False, "verb": None, "error": "request: not valid JSON"})
            return
        except RecursionError:
            self._send(400, {"ok": False, "verb": None, "error": "request: nested too deeply"})
            return
        self._send(200, self.server.session.dispatch(request))

    def _drain_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if 0 < length <= self.server.session.settings.max_request_bytes:
            self.rfile.read(length)
        elif length:
            self.close_connection = True


BACKLOG = 128  # connections the kernel queues while every serving process is busy or restarting


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound once by the supervisor and shared by the processes it forks.

    Non-blocking: every process polls it and only one wins a connection; a blocking ``accept`` in
    the others would hang until the next connection (and hold up their shutdown).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(address: tuple) -> str:
    host, port = address[:2]
    return f"http://{host}:{port}"


class DispatchServer(ThreadingHTTPServer):
    """One process's HTTP front. With ``sock`` it serves an already listening socket (inherited
    from the supervisor, :mod:`workers.prefork`) instead of binding its own; ``openapi`` is the
    description built by the supervisor (~40 ms that a restarted process need not spend)."""

    daemon_threads = True

    def __init__(self, session: Session, host: str | None = None, port: int | None = None,
                 sock: socket.socket | None = None, openapi: dict[str, Any] | None = None) -> None:
        ws = session.settings.workers
        self.session = session
        self.api_key = ws.api_key
        self.openapi = openapi or spec(VERBS, bool(ws.api_key))
        self._busy = 0
        self._idle = threading.Condition()
        address = (host or ws.http_host, ws.http_port if port is None else port)
        super().__init__(address, _Handler, bind_and_activate=sock is None)
        if sock is not None:
            self.socket.close()  # the unbound one socketserver made
            self.socket = sock
            self.server_address = sock.getsockname()
            self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return url_of(self.server_address)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count a request in flight (so that a stopping process can let it finish)."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if some still are after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="kg-http", daemon=True)
        thread.start()
        return thread
