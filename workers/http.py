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
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kg.dispatch import VERBS, Session
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
        if self.path == "/openapi.json":
            self._send(200, self.server.openapi)
        else:
            self._send(404, {"ok": False, "verb": None, "error": "path: not found"})

    def do_POST(self) -> None:  # noqa: N802
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


class DispatchServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, session: Session, host: str | None = None, port: int | None = None) -> None:
        ws = session.settings.workers
        self.session = session
        self.api_key = ws.api_key
        self.openapi = spec(VERBS, bool(ws.api_key))
        super().__init__((host or ws.http_host, ws.http_port if port is None else port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="kg-http", daemon=True)
        thread.start()
        return thread


def serve(session: Session, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (``kg serve``)."""
    server = DispatchServer(session, host, port)
    print(f"kg: dispatch on {server.url}/v1/dispatch (OpenAPI at {server.url}/openapi.json)"
          + ("; API key required" if server.api_key else ""), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
