"""Request validation for API Gateway from the API's OpenAPI document.

The OpenAPI document (``lambdas/recsys_lambdas/openapi.json``) is the one home of the request
shapes. API Gateway models are JSON Schema draft 4 and cannot follow ``#/components/...``
references, so each request body schema is inlined here (references resolved, OpenAPI-only
keywords dropped) and required query/path parameters are read from the same document.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from recsys_infra.config import REPO_ROOT

OPENAPI_PATH = REPO_ROOT / "lambdas" / "recsys_lambdas" / "openapi.json"
_OPENAPI_ONLY = {
    "nullable",
    "example",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "discriminator",
    "xml",
    "externalDocs",
}


@dataclass(frozen=True)
class OperationValidation:
    """What API Gateway checks before invoking the Lambda for one operation."""

    body_schema: Optional[dict[str, Any]]  # draft-4 JSON schema, or None (no body)
    required_parameters: dict[str, bool]  # e.g. {"method.request.querystring.q": True}


def load_openapi(path: Path = OPENAPI_PATH) -> Optional[dict[str, Any]]:
    """The OpenAPI document, or None when it does not exist (validation of parameters only)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def inline_schema(schema: Any, document: dict[str, Any], _seen: tuple[str, ...] = ()) -> Any:
    """Resolve local ``$ref``s and drop OpenAPI-only keywords, recursively.

    Raises:
        ValueError: A reference is not local, points nowhere, or is cyclic.
    """
    if isinstance(schema, list):
        return [inline_schema(s, document, _seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"OpenAPI $ref {ref!r} is not a local reference")
        if ref in _seen:
            raise ValueError(
                f"OpenAPI $ref {ref!r} is cyclic; API Gateway models cannot express it"
            )
        target: Any = document
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise ValueError(f"OpenAPI $ref {ref!r} points to nothing")
            target = target[part]
        return inline_schema(copy.deepcopy(target), document, (*_seen, ref))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _OPENAPI_ONLY:
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: inline_schema(s, document, _seen) for name, s in value.items()}
        else:
            out[key] = inline_schema(value, document, _seen)
    return out


def operation_validation(
    document: Optional[dict[str, Any]], method: str, path: str
) -> OperationValidation:
    """Body schema and required parameters of one operation (empty when not documented)."""
    if document is None:
        return OperationValidation(None, {})
    operation = document.get("paths", {}).get(path, {}).get(method.lower())
    if operation is None:
        raise ValueError(
            f"openapi.json has no {method} {path}; routes.py and the document disagree"
        )
    required: dict[str, bool] = {}
    for param in operation.get("parameters", []):
        param = inline_schema(param, document)
        location = {"query": "querystring", "path": "path", "header": "header"}.get(param["in"])
        if location:
            required[f"method.request.{location}.{param['name']}"] = bool(param.get("required"))
    body = None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = inline_schema(content["application/json"]["schema"], document)
        body = {"$schema": "http://json-schema.org/draft-04/schema#", **body}
    return OperationValidation(body, required)
