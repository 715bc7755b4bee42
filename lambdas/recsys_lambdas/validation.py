"""Request validation against the schemas in ``openapi.json``, the one home of the API's shapes.

The document's component schemas are compiled once per container with fastjsonschema (the
engine of Powertools' validation utility). Error messages name the field by its JSON path, e.g.
``body.eventList[0].sentAt must be a number``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import fastjsonschema

from recsys_lambdas.errors import InvalidInput, PayloadTooLarge
from recsys_lambdas.settings import MAX_BODY_BYTES

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@lru_cache(maxsize=1)
def openapi_document() -> Dict[str, Any]:
    """The OpenAPI document (parsed once)."""
    with OPENAPI_PATH.open(encoding="utf-8") as fh:
        doc: Dict[str, Any] = json.load(fh)
    return doc


@lru_cache(maxsize=1)
def openapi_text() -> str:
    """The OpenAPI document as served at ``GET /openapi.json``."""
    return json.dumps(openapi_document(), separators=(",", ":"))


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = value.replace("#/components/schemas/", "#/definitions/")
            elif key in ("description", "default", "example"):
                continue  # annotations; keep the compiled validator small
            else:
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


@cache
def validator(schema_name: str) -> Callable[[Any], Any]:
    """A compiled validator for ``components.schemas[schema_name]``."""
    definitions = _rewrite_refs(openapi_document()["components"]["schemas"])
    if schema_name not in definitions:
        raise KeyError(f"openapi.json has no schema {schema_name!r}")
    schema = {"$schema": "http://json-schema.org/draft-04/schema#",
              "definitions": definitions, "$ref": f"#/definitions/{schema_name}"}
    return fastjsonschema.compile(schema)


def parameter_schema(path: str, method: str, name: str) -> Dict[str, Any]:
    """The schema of one parameter of an operation, references resolved."""
    for param in openapi_document()["paths"][path][method.lower()].get("parameters", []):
        if param["name"] == name:
            schema = param["schema"]
            if "$ref" in schema:
                schema = openapi_document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            return dict(schema)
    raise KeyError(f"{method} {path} has no parameter {name!r}")


def _friendly(exc: fastjsonschema.JsonSchemaValueException, root: str) -> str:
    message = exc.message
    if exc.rule == "anyOf" and isinstance(exc.rule_definition, list) and all(
            isinstance(d, dict) and set(d) == {"required"} for d in exc.rule_definition):
        names = [d["required"][0] for d in exc.rule_definition]
        message = f"data must include one of {', '.join(names)}"
    elif exc.rule == "additionalProperties":
        extra = sorted(set(exc.value) - set((exc.definition or {}).get("properties", {}))) if isinstance(exc.value, dict) else []
        if extra:
            message = f"{exc.name} has unknown field(s) {', '.join(extra)}"
    elif exc.rule == "patternProperties" or (exc.rule == "additionalProperties" and not message):
        message = f"{exc.name} has an invalid key"
    return re.sub(r"^data", root, message)


def validate(schema_name: str, data: Any, root: str = "body") -> Any:
    """Validate ``data`` against a component schema.

    Raises:
        InvalidInput: naming the offending field.
    """
    try:
        return validator(schema_name)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidInput(_friendly(exc, root)) from None
    except RecursionError:
        raise InvalidInput(f"{root} is nested too deeply to be a request of this API") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(event: Mapping[str, Any], *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """Decode an API Gateway proxy event's body as JSON, with clear 4xx errors.

    Raises:
        PayloadTooLarge: the body is larger than ``max_bytes``.
        InvalidInput: the body is missing, not UTF-8, not JSON, or nested too deeply to parse.
    """
    raw: Optional[str] = event.get("body")
    if raw is None or raw == "":
        raise InvalidInput("request body is required (a JSON object)")
    if event.get("isBase64Encoded"):
        if len(raw) > (max_bytes * 4) // 3 + 4:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("request body is not valid base64") from None
    else:
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("request body is not valid UTF-8") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"request body has {len(data)} bytes; at most {max_bytes} allowed")
    try:
        text = data.decode("utf-8")
        body = json.loads(text, parse_constant=_reject_constant)
        # lone surrogates (\ud800) decode fine but cannot be stored or logged
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise InvalidInput("request body is not valid UTF-8 (or holds an unpaired surrogate escape)") from None
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        # e.g. "[" * 100000: the parser gives up on the nesting, not on the client's syntax
        raise InvalidInput("request body is nested too deeply to be a request of this API") from None
    return body


def query_param(event: Mapping[str, Any], path: str, method: str, name: str) -> Any:
    """Read and validate one query parameter against its schema in the document.

    Integers are converted; a missing optional parameter gives its schema default (or None).

    Raises:
        InvalidInput: naming the parameter.
    """
    params = event.get("queryStringParameters") or {}
    multi = event.get("multiValueQueryStringParameters") or {}
    schema = parameter_schema(path, method, name)
    if name in multi and len(multi[name] or []) > 1:
        raise InvalidInput(f"query parameter {name} must be given once")
    raw = params.get(name)
    if raw is None:
        required = any(p["name"] == name and p.get("required")
                       for p in openapi_document()["paths"][path][method.lower()].get("parameters", []))
        if required:
            raise InvalidInput(f"query parameter {name} is required")
        return schema.get("default")
    value: Any = raw
    if schema.get("type") == "integer":
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw.strip()):
            raise InvalidInput(f"query parameter {name} must be an integer, got {raw[:40]!r}")
        value = int(raw)
    return validate_value(schema, value, f"query parameter {name}")


def validate_value(schema: Dict[str, Any], value: Any, where: str) -> Any:
    """Validate one value against an inline schema (compiled and cached by its JSON)."""
    key = json.dumps(_rewrite_refs(schema), sort_keys=True)
    try:
        return _compiled(key)(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidInput(re.sub(r"^data", where, exc.message)) from None


@lru_cache(maxsize=64)
def _compiled(schema_json: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(json.loads(schema_json))
