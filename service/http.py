"""``POST /v1/dispatch`` and ``GET /openapi.json``: a small ASGI app, served by uvicorn.

uvicorn (its h11 protocol) parses HTTP and refuses what is not HTTP/1.1, such as a negative or
malformed ``Content-Length``; the app does the rest:

- Bound to 127.0.0.1 unless ``KG_HTTP_HOST`` says otherwise. When ``KG_API_KEY`` is set, a
  dispatch must carry it (``X-API-Key: <key>`` or ``Authorization: Bearer <key>``) or it gets 401;
  the key is compared in constant time and never logged. ``/openapi.json`` needs no key.
- A dispatch must be ``Content-Type: application/json`` (else 415): a browser sends a form or
  ``text/plain`` from any page without asking, but ``application/json`` only after a CORS
  preflight, which this server refuses (405).
- The body limit (``max_request_bytes``) is enforced while the body is read, whatever the headers
  say (chunked bodies included): 413, and the connection is closed without reading the rest.
- Time limits (``KG_HTTP_TIMEOUT_S``): a connection that has sent no complete request head that
  long after it opened or after its last answer is closed (uvicorn only times out a kept-alive
  connection that sends nothing at all, and restarts that clock on every byte); a body must arrive
  within it (408).
- A dispatch answer is always HTTP 200 with ``ok`` inside (like JSON-RPC). Every other answer is
  JSON too, ``{"ok": false, "verb": null, "error": ...}``: 400 (not JSON, or not HTTP), 401, 404,
  405 (with ``Allow``), 408, 413, 415, 500.

``Session.dispatch`` blocks (an update waits for its result), so it runs in a thread pool of
:data:`THREADS`; the event loop only reads and writes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kg.config import Settings
from service.root import VERBS, Session  # the one place HTTP (and kg serve) gets the verbs and the session
from service.openapi import spec

log = logging.getLogger(__name__)

BACKLOG = 128  # connections the kernel queues while every serving process is busy or restarting
THREADS = 32  # requests one serving process computes at once; more wait for a thread
MAX_HEAD_BYTES = 16 * 1024  # request line and headers (h11's default)
ROUTES = {"/v1/dispatch": "POST", "/openapi.json": "GET"}


def error(message: str) -> dict[str, Any]:
    return {"ok": False, "verb": None, "error": message}


class Refused(Exception):
    """An answer other than a dispatch: HTTP ``status`` with :func:`error` ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def openapi_document(api_key: bool) -> dict[str, Any]:
    """The OpenAPI document of the served verbs."""
    return spec(VERBS, api_key)


class DispatchApp:
    """The ASGI app of one serving process: its own ``session``; ``openapi`` is the description
    built by the supervisor (~40 ms that a restarted process need not spend)."""

    def __init__(self, session: Session, openapi: dict[str, Any] | None = None) -> None:
        ws = session.settings.workers
        self.session = session
        self.limit = session.settings.max_request_bytes
        self.timeout_s = ws.http_timeout_s
        self._key = ws.api_key.encode() if ws.api_key else None
        self._openapi = json.dumps(openapi or openapi_document(bool(ws.api_key)), ensure_ascii=False).encode()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="kg-dispatch")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @classmethod
    @contextmanager
    def opened(cls, settings: Settings, openapi: dict[str, Any] | None = None) -> Iterator["DispatchApp"]:
        """An app on its own ``Session(settings)``, both closed after."""
        with Session(settings) as session:
            app = cls(session, openapi)
            try:
                yield app
            finally:
                app.close()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # no lifespan, no websockets: uvicorn is told so
            return
        headers = {}
        for name, value in scope["headers"]:  # the first of repeated headers, as http.server did
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            status, body = await self._answer(scope, headers, receive)
            extra: dict[str, str] = {}
        except Refused as exc:
            status, body, extra = exc.status, json.dumps(error(exc.message)).encode(), exc.headers
        except Exception as exc:  # noqa: BLE001 - a bug: answered without echoing the input
            log.exception("HTTP %s %s failed", scope["method"], scope["path"])
            status, body = 500, json.dumps(error(f"internal error: {type(exc).__name__}")).encode()
            extra = {"Connection": "close"}
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: dict, headers: dict[str, str], receive: Any) -> tuple[int, bytes]:
        allowed = ROUTES.get(scope["path"])
        # an answer before the whole body is read closes the connection: the rest is not read
        close = {"Connection": "close"} if headers.get("content-length", "0") != "0" or \
            "transfer-encoding" in headers else {}
        if allowed is None:
            raise Refused(404, "path: not found", close)
        if scope["method"] != allowed:
            raise Refused(405, f"method: not allowed here (use {allowed})", {"Allow": allowed, **close})
        if allowed == "GET":
            return 200, self._openapi
        if not self._authorised(headers):
            raise Refused(401, "authorization: missing or wrong API key",
                          {"WWW-Authenticate": 'Bearer realm="kg"', **close})
        if headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
            raise Refused(415, "content-type: must be application/json", close)
        raw = await self._body(headers, receive, close)
        loop = asyncio.get_running_loop()
        return 200, await loop.run_in_executor(self._pool, self._dispatch, raw)

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self._key is None:
            return True
        given = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), self._key)

    async def _body(self, headers: dict[str, str], receive: Any, close: dict[str, str]) -> bytes:
        """The whole body, refused (413) as soon as it is larger than the limit: the declared
        length is checked first, then what actually arrives."""
        too_large = Refused(413, f"request: larger than {self.limit} bytes", {"Connection": "close"})
        if int(headers.get("content-length", "0")) > self.limit:  # h11 accepts only digits here
            raise too_large
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise Refused(400, "request: the client went away", close)  # nobody reads it
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        raise too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise Refused(408, f"request: body not received within {self.timeout_s:g} s",
                          {"Connection": "close"}) from None

    def _dispatch(self, raw: bytes) -> bytes:
        """In a pool thread: parse, dispatch, encode (a parse error is an HTTP 400)."""
        try:
            request = json.loads(raw)
        except ValueError:
            raise Refused(400, "request: not valid JSON") from None
        except RecursionError:
            raise Refused(400, "request: nested too deeply") from None
        return json.dumps(self.session.dispatch(request), ensure_ascii=False).encode()


class Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and its 400 as JSON.

    uvicorn closes a kept-alive connection that sends nothing for ``timeout_keep_alive``, but not
    a new connection that sends nothing, and any byte restarts its clock (a slowloris head stays
    open for ever). Here a complete head must arrive within ``timeout_keep_alive`` of the
    connection opening or of the previous answer, or the connection is closed.
    """

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        self._await_head()  # first: a pipelined request that this starts is a new cycle
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_late, self.cycle)

    def _head_late(self, cycle: Any) -> None:
        waiting = cycle is None or cycle.response_complete  # for a head, not in a request
        if self.cycle is cycle and waiting and not self.transport.is_closing():  # and no new one since
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error("request: not valid HTTP/1.1")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def config(app: DispatchApp, drain_timeout_s: int | None = None) -> uvicorn.Config:
    """uvicorn's settings for ``app`` (served on a socket given to ``Server.serve``)."""
    return uvicorn.Config(
        app, http=Protocol, ws="none", lifespan="off", interface="asgi3", loop="asyncio",
        log_config=None, access_log=False, proxy_headers=False, server_header=False,
        timeout_keep_alive=app.timeout_s, timeout_graceful_shutdown=drain_timeout_s,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES, backlog=BACKLOG)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound once by the supervisor and shared by the processes it forks
    (non-blocking: every process polls it and one wins each connection)."""
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and an answer's
    # head and body are two writes (with Nagle on, a kept-alive client waited 40 ms for the body)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
