"""HTTP front: POST /v1/dispatch, GET /openapi.json, the API key, limits, the default bind."""

from __future__ import annotations

import http.client
import json
from dataclasses import replace

import pytest

from service.root import VERBS, Session
from workers.http import DispatchServer


@pytest.fixture
def server(settings):
    ws = replace(settings.workers, api_key="k3y", http_port=0)
    with Session(replace(settings, workers=ws, max_request_bytes=10_000)) as session:
        srv = DispatchServer(session)
        srv.start_background()
        yield srv
        srv.shutdown()
        srv.server_close()


def call(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def test_binds_to_localhost_by_default(server) -> None:
    assert server.server_address[0] == "127.0.0.1"


def test_api_key_is_required_in_either_header(server) -> None:
    req = json.dumps({"verb": "ewc_penalty", "body": {"param_id": "p", "params": [1.0]}}).encode()
    assert call(server, "POST", "/v1/dispatch", req)[0] == 401
    assert call(server, "POST", "/v1/dispatch", req, {"Authorization": "Bearer nope"})[0] == 401
    status, out = call(server, "POST", "/v1/dispatch", req, {"Authorization": "Bearer k3y"})
    assert status == 200 and out == {"ok": True, "verb": "ewc_penalty", "data": {"penalty": 0.0, "version": 0}}
    assert call(server, "POST", "/v1/dispatch", req, {"X-API-Key": "k3y"})[0] == 200


def test_bad_requests(server) -> None:
    key = {"X-API-Key": "k3y"}
    status, out = call(server, "POST", "/v1/dispatch", b"{nope", key)
    assert status == 400 and out["error"] == "request: not valid JSON"
    status, out = call(server, "POST", "/v1/dispatch", b"x" * 20_000, key)
    assert status == 413 and out["error"] == "request: larger than 10000 bytes"
    status, out = call(server, "POST", "/v1/dispatch", json.dumps({"verb": "nope"}).encode(), key)
    assert status == 200 and out == {"ok": False, "verb": "nope", "error": "verb: is not a known verb"}
    assert call(server, "GET", "/v1/other")[0] == 404
    assert call(server, "POST", "/elsewhere", b"{}", key)[0] == 404


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
