"""HTTP front: POST /v1/dispatch, GET /openapi.json, the API key, limits, timeouts, the default bind.

uvicorn serves the app in a thread of this process, on a socket bound like ``kg serve`` binds it,
against a real redis-server (tests/workers/conftest.py). Raw sockets where a client library would
not send what is tested (a lying length, a dribbled body, nothing at all).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import replace

import pytest
import uvicorn

from service.http import VERBS, DispatchApp, config, listen

TIMEOUT_S = 1.0  # the server's KG_HTTP_TIMEOUT_S here; the tests wait far longer for it to act
JSON = {"Content-Type": "application/json"}
KEY = {"X-API-Key": "k3y", **JSON}
EWC = json.dumps({"verb": "ewc_penalty", "body": {"param_id": "p", "params": [1.0]}}).encode()


class Served:
    def __init__(self, app: DispatchApp, host: str) -> None:
        self.sock = listen(host, 0)
        self.server_address = self.sock.getsockname()
        self.server = uvicorn.Server(config(app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def server(settings):
    ws = replace(settings.workers, api_key="k3y", http_timeout_s=TIMEOUT_S, wait_timeout_s=3 * TIMEOUT_S)
    with DispatchApp.opened(replace(settings, workers=ws, max_request_bytes=10_000)) as app:
        srv = Served(app, ws.http_host)
        yield srv
        srv.stop()


def call(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "application/json", (method, path, resp.status)
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def raw(srv, data: bytes, read_timeout: float = 30) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(srv.server_address[:2], timeout=read_timeout) as s:
        s.sendall(data)
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def answers(data: bytes) -> list[tuple[int, dict]]:
    """The responses in ``data`` (each with a Content-Length), as (status, JSON body)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:])
        assert fields[b"content-type"] == b"application/json", head
        length = int(fields[b"content-length"])
        out.append((int(head.split(b" ", 2)[1]), json.loads(rest[:length])))
        data = rest[length:]
    return out


def status_and_json(response: bytes) -> tuple[int, dict]:
    (only,) = answers(response)
    return only


def test_binds_to_localhost_by_default(server) -> None:
    assert server.server_address[0] == "127.0.0.1"


def test_api_key_is_required_in_either_header(server) -> None:
    assert call(server, "POST", "/v1/dispatch", EWC, JSON)[0] == 401
    status, out = call(server, "POST", "/v1/dispatch", EWC, {"Authorization": "Bearer nope", **JSON})
    assert status == 401 and out == {"ok": False, "verb": None, "error": "authorization: missing or wrong API key"}
    status, out = call(server, "POST", "/v1/dispatch", EWC, {"Authorization": "Bearer k3y", **JSON})
    assert status == 200 and out == {"ok": True, "verb": "ewc_penalty", "data": {"penalty": 0.0, "version": 0}}
    assert call(server, "POST", "/v1/dispatch", EWC, KEY)[0] == 200
    assert call(server, "POST", "/v1/dispatch", EWC, {"X-API-Key": "k3", **JSON})[0] == 401
    assert b'www-authenticate: bearer realm="kg"' in raw(
        server, b"POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").lower()


def test_bad_requests(server) -> None:
    status, out = call(server, "POST", "/v1/dispatch", b"{nope", KEY)
    assert status == 400 and out["error"] == "request: not valid JSON"
    status, out = call(server, "POST", "/v1/dispatch", b"x" * 20_000, KEY)
    assert status == 413 and out["error"] == "request: larger than 10000 bytes"
    status, out = call(server, "POST", "/v1/dispatch", json.dumps({"verb": "nope"}).encode(), KEY)
    assert status == 200 and out == {"ok": False, "verb": "nope", "error": "verb: is not a known verb"}
    status, out = call(server, "POST", "/v1/dispatch", b"[" * 100_000, {**KEY})
    assert status == 413  # the limit comes before the parser
    assert call(server, "GET", "/v1/other")[0] == 404
    status, out = call(server, "POST", "/elsewhere", b"{}", KEY)
    assert status == 404 and out == {"ok": False, "verb": None, "error": "path: not found"}


def test_every_other_method_gets_405_as_json(server) -> None:
    """PUT and TRACE got http.server's HTML 501 page; GET on the dispatch path a 404."""
    for method, path, allowed in (("PUT", "/v1/dispatch", "POST"), ("TRACE", "/v1/dispatch", "POST"),
                                  ("DELETE", "/v1/dispatch", "POST"), ("OPTIONS", "/v1/dispatch", "POST"),
                                  ("GET", "/v1/dispatch", "POST"), ("POST", "/openapi.json", "GET"),
                                  ("PATCH", "/openapi.json", "GET")):
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request(method, path, body=b"{}" if method in ("PUT", "POST", "PATCH") else None, headers=KEY)
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Allow"), resp.getheader("Content-Type")) == (
            405, allowed, "application/json"), (method, path)
        assert json.loads(resp.read()) == {"ok": False, "verb": None,
                                           "error": f"method: not allowed here (use {allowed})"}
        conn.close()


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_a_dispatch_must_be_json(server, content_type) -> None:
    """A browser posts text/plain or a form from any page without a CORS preflight: such a
    request is refused before anything runs (415), even when the body is a valid request."""
    headers = {"X-API-Key": "k3y"} | ({"Content-Type": content_type} if content_type else {})
    status, out = call(server, "POST", "/v1/dispatch", EWC, headers)
    assert status == 415 and out == {"ok": False, "verb": None, "error": "content-type: must be application/json"}
    for accepted in ("application/json; charset=utf-8", "Application/JSON"):
        assert call(server, "POST", "/v1/dispatch", EWC, {"X-API-Key": "k3y", "Content-Type": accepted})[0] == 200


def test_the_body_limit_holds_whatever_the_headers_say(server) -> None:
    """``Content-Length: -1`` let a 40 MB body through the 1 MB limit: it is not HTTP (400, as
    JSON); a chunked body and a small declared length followed by more are cut at the limit."""
    head = b"POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\nContent-Type: application/json\r\n"
    status, out = status_and_json(raw(server, head + b"Content-Length: -1\r\n\r\n" + EWC + b"x" * 40_000))
    assert (status, out) == (400, {"ok": False, "verb": None, "error": "request: not valid HTTP/1.1"})

    chunk = b"x" * 4000
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    status, out = status_and_json(raw(server, chunked))
    assert (status, out["error"]) == (413, "request: larger than 10000 bytes")

    # a chunked body that fits is answered
    ok = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(EWC), EWC)
    status, out = status_and_json(raw(server, ok))
    assert status == 200 and out["ok"] is True

    # a length that understates the body: what follows it is not a request
    (status, out), bad = answers(raw(server, head + b"Content-Length: 2\r\n\r\n{}" + b"x" * 40_000))
    assert status == 200 and out["ok"] is False and out["error"].startswith("verb")
    assert bad == (400, {"ok": False, "verb": None, "error": "request: not valid HTTP/1.1"})


def test_a_connection_that_sends_nothing_is_closed(server) -> None:
    """300 idle connections held 301 threads for ever; now each is closed after the timeout."""
    before = threading.active_count()
    conns = [socket.create_connection(server.server_address[:2], timeout=30) for _ in range(20)]
    try:
        assert call(server, "GET", "/openapi.json")[0] == 200  # accepted after the idle ones
        assert threading.active_count() <= before  # no thread per connection
        assert all(read_all(s) == b"" for s in conns)  # recv returned: the server closed them
    finally:
        for s in conns:
            s.close()


def test_a_slow_request_head_is_cut_off(server) -> None:
    """Sending a byte now and then restarts uvicorn's own idle clock; the head deadline holds."""
    with socket.create_connection(server.server_address[:2], timeout=0.2) as s:
        s.sendall(b"POST /v1/dispatch HTTP/1.1\r\nX-Slow: ")
        closed = False
        for _ in range(150):  # one byte every 0.2 s, 30 s at most
            try:
                s.sendall(b"a")
                closed = s.recv(1024) == b""
            except socket.timeout:
                continue
            except OSError:  # reset: closed
                closed = True
            if closed:
                break
        assert closed, "the server kept reading a head for 30 s"


def test_a_slow_body_gets_408_and_a_kept_alive_connection_is_closed_when_idle(server) -> None:
    head = (b"POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(EWC))
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(head + EWC[:5])  # and then nothing
        status, out = status_and_json(read_all(s))
    assert (status, out["error"]) == (408, f"request: body not received within {TIMEOUT_S:g} s")

    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(head + EWC)
        (status, out), = answers(read_all(s))  # kept alive, then closed when idle
    assert status == 200 and out["ok"] is True


def test_a_request_that_takes_longer_than_the_timeout_is_answered(server) -> None:
    """The deadlines are for what the client sends, not for the answer: an update waits 3 s for a
    worker (none runs here) and is answered, also when it came pipelined after another request."""
    init = json.dumps({"verb": "init_instant", "body": {"namespace": "slow", "targets": ["a", "b"],
                                                        "in_dim": 4}}).encode()
    head = (b"POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n")
    (first, read), (second, update) = answers(raw(server, head % len(EWC) + EWC + head % len(init) + init))
    assert (first, read["ok"], second, update["ok"]) == (200, True, 200, False)
    assert "ticket" in update["error"], update


def test_an_error_in_the_http_layer_is_a_json_500(server, monkeypatch) -> None:
    """``Session.dispatch`` answers every error itself; a bug around it (here: injected) gets a
    JSON 500 naming only the exception's type, not http.server's dropped connection."""
    def broken(request: dict) -> dict:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.server.config.loaded_app.session, "dispatch", broken)
    status, out = call(server, "POST", "/v1/dispatch", EWC, KEY)
    assert (status, out) == (500, {"ok": False, "verb": None, "error": "internal error: RuntimeError"})


def test_openapi_describes_every_verb(server) -> None:
    status, doc = call(server, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["DispatchRequest"]["oneOf"]}
    assert variants == {f"{v}_request" for v in VERBS}
    assert "async" in schemas["feedback_request"]["properties"]
    assert "async" not in schemas["route_request"]["properties"]
    assert set(schemas["feedback_body"]["required"]) == {"embedding", "model", "payload", "now_ms"}
    assert doc["paths"]["/v1/dispatch"]["post"]["security"]
    assert "securitySchemes" in doc["components"]


def test_accepted_connections_send_small_writes_at_once() -> None:
    """An answer's head and body are two writes: with Nagle's algorithm on (asyncio turns it off
    only on sockets made with IPPROTO_TCP), a kept-alive client waited ~40 ms for every body."""
    import asyncio

    async def accept_one() -> int:
        accepted = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        with socket.create_connection(sock.getsockname()[:2], timeout=30):
            nodelay = await asyncio.wait_for(accepted, 30)
        server.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0
