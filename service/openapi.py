"""The OpenAPI 3.1 description of ``POST /v1/dispatch``, built from the verb tables' body models."""

from __future__ import annotations

from typing import Any

ERROR = "error: the field it names and what is wrong with it, never the value"


def spec(verbs: dict[str, Any], api_key: bool) -> dict[str, Any]:
    """One request schema per verb (its body model), all under one ``oneOf`` keyed by ``verb``."""
    schemas: dict[str, Any] = {}
    variants = []
    for name in sorted(verbs):
        verb = verbs[name]
        body = verb.model.model_json_schema(ref_template="#/components/schemas/{model}",
                                            mode="validation")
        for sub, sub_schema in body.pop("$defs", {}).items():
            schemas.setdefault(sub, sub_schema)
        body_name = f"{name}_body"
        schemas[body_name] = body
        request = {
            "type": "object",
            "title": f"{name} request",
            "description": verb.summary,
            "required": ["verb"],
            "additionalProperties": False,
            "properties": {
                "verb": {"const": name},
                "body": {"$ref": f"#/components/schemas/{body_name}"},
            },
        }
        if verb.async_ok:
            request["properties"]["async"] = {
                "type": "boolean", "default": False,
                "description": "answer at once with a ticket instead of waiting for the update",
            }
        schemas[f"{name}_request"] = request
        variants.append({"$ref": f"#/components/schemas/{name}_request"})
    schemas["DispatchRequest"] = {
        "oneOf": variants,
        "discriminator": {"propertyName": "verb"},
    }
    schemas["DispatchResponse"] = {
        "type": "object",
        "required": ["ok", "verb"],
        "properties": {
            "ok": {"type": "boolean"},
            "verb": {"type": ["string", "null"]},
            "data": {"description": "the verb's answer when ok"},
            "error": {"type": "string", "description": ERROR},
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "kg-temporal dispatch",
            "version": "1",
            "description": "Every call is {verb, body} in and {ok, verb, data | error} out. "
                           "Bad input gets ok: false naming the field and changes nothing.",
        },
        "paths": {
            "/v1/dispatch": {
                "post": {
                    "operationId": "dispatch",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/DispatchRequest"}}}},
                    "responses": {
                        "200": {"description": "the answer, ok or not",
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/DispatchResponse"}}}},
                        "400": {"description": "the request is not JSON"},
                        "401": {"description": "missing or wrong API key"},
                        "413": {"description": "the request is larger than the limit"},
                    },
                }
            },
            "/openapi.json": {"get": {"operationId": "openapi",
                                      "responses": {"200": {"description": "this document"}}}},
        },
        "components": {"schemas": schemas},
    }
    if api_key:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        doc["paths"]["/v1/dispatch"]["post"]["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc
