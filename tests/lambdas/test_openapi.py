"""openapi.json is the one home of the HTTP contract: it must be a valid OpenAPI 3.0 document,
describe every route in routes.py, accept every field boto3's Personalize clients send, use only
JSON-Schema draft-4 keywords (API Gateway request validation), and describe what the handlers
actually answer (checked here in-process; schemathesis checks it over HTTP)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import botocore
import fastjsonschema
import pytest
from api_support import call
from recsys_lambdas import routes
from recsys_lambdas.validation import openapi_document, validator

DOC = openapi_document()
DRAFT4_KEYWORDS = {"$ref", "type", "properties", "required", "additionalProperties", "patternProperties",
                   "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
                   "enum", "anyOf", "oneOf", "maxProperties", "description", "default", "format", "uniqueItems"}


def test_document_is_valid_openapi_3_0():
    from openapi_spec_validator import validate

    validate(DOC)
    assert DOC["openapi"].startswith("3.0")


def test_every_route_is_documented_with_its_operation_id():
    documented = {(m.upper(), p): op["operationId"] for p, item in DOC["paths"].items() for m, op in item.items()}
    expected = {(r.method, r.path): r.operation_id for r in routes.ROUTES}
    assert documented == expected


def test_every_operation_documents_its_errors():
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert {"200", "405", "500"} <= codes, (method, path)
            if op.get("requestBody") or op.get("parameters"):
                assert {"400", "503"} <= codes, (method, path)
            if method == "post":
                assert "413" in codes


def _walk(node, where="#"):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key in ("properties", "patternProperties"):
                for name, sub in value.items():
                    yield from _walk(sub, f"{where}/{key}/{name}")
            elif isinstance(value, (dict, list)):
                yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _walk(value, f"{where}/{n}")


def test_schemas_use_only_draft4_keywords_and_compile():
    for name, schema in DOC["components"]["schemas"].items():
        for where, node in _walk(schema, name):
            if "type" in node or "$ref" in node:
                assert set(node) <= DRAFT4_KEYWORDS, (where, set(node) - DRAFT4_KEYWORDS)
        validator(name)  # compiles


def _botocore_shapes(service: str) -> dict:
    root = Path(botocore.__file__).parent / "data" / service
    path = sorted(root.glob("*/service-2.json*"))[-1]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return json.load(fh)["shapes"]


@pytest.mark.parametrize("service,shape,ours", [
    ("personalize-runtime", "GetRecommendationsRequest", "GetRecommendationsRequest"),
    ("personalize-runtime", "GetPersonalizedRankingRequest", "GetPersonalizedRankingRequest"),
    ("personalize-events", "PutEventsRequest", "PutEventsRequest"),
    ("personalize-events", "Event", "Event"),
])
def test_every_field_personalize_clients_send_is_accepted(service, shape, ours):
    shapes = _botocore_shapes(service)
    members = set(shapes[shape]["members"])
    documented = set(DOC["components"]["schemas"][ours]["properties"])
    assert members <= documented, members - documented
    for name, member in shapes[shape]["members"].items():
        limit = shapes[member["shape"]].get("max")
        prop = DOC["components"]["schemas"][ours]["properties"][name]
        if "$ref" in prop:
            prop = DOC["components"]["schemas"][prop["$ref"].rsplit("/", 1)[1]]
        ours_max = prop.get("maxLength", prop.get("maxItems", prop.get("maxProperties")))
        if limit is not None and ours_max is not None:
            assert ours_max <= limit, (name, ours_max, limit)


def _response_schema(path: str, method: str, status: int) -> dict:
    op = DOC["paths"][path][method.lower()]
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = DOC["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    return resp


def _check(template: str, method: str, r) -> None:
    resp = _response_schema(template, method, r.status)
    schema = resp["content"]["application/json"]["schema"]
    full = {"definitions": json.loads(json.dumps(DOC["components"]["schemas"]).replace("#/components/schemas/", "#/definitions/")),
            **json.loads(json.dumps(schema).replace("#/components/schemas/", "#/definitions/"))}
    fastjsonschema.compile(full)(r.body)
    for header in resp.get("headers", {}):
        assert header in r.headers, (template, r.status, header)


@pytest.mark.parametrize("method,path,template,kwargs", [
    ("POST", "/recommendations", "/recommendations", {"body": {"userId": "doc", "numResults": 3}}),
    ("POST", "/recommendations", "/recommendations", {"body": {"userId": "doc", "numResults": 3, "metadataColumns": {"ITEMS": ["title"]}}}),
    ("POST", "/recommendations", "/recommendations", {"body": {"itemId": "nope"}}),
    ("POST", "/recommendations", "/recommendations", {"body": {"numResults": 3}}),
    ("POST", "/recommendations", "/recommendations", {"raw_body": "x" * (1024 * 1024 + 1)}),
    ("GET", "/recommendations", "/recommendations", {}),
    ("POST", "/personalize-ranking", "/personalize-ranking", {"body": {"userId": "doc", "inputList": ["i00001", "x"]}}),
    ("GET", "/items/i00001/similar", "/items/{itemId}/similar", {"query": {"numResults": "2"}}),
    ("GET", "/items/zzz/similar", "/items/{itemId}/similar", {}),
    ("GET", "/search", "/search", {"query": {"q": "little"}}),
    ("GET", "/search", "/search", {"query": {"q": ""}}),
    ("POST", "/events", "/events", {"body": {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": 1}]}}),
    ("POST", "/events", "/events", {"body": {"trackingId": "t"}}),
    ("GET", "/health", "/health", {}),
    ("GET", "/openapi.json", "/openapi.json", {}),
])
def test_answers_match_the_document(api_live, method, path, template, kwargs):
    r = call(method, path, **kwargs)
    if r.status == 405:  # documented on each operation of the path; read it from the POST
        assert method.lower() not in DOC["paths"][template]
        method = "POST"
    assert str(r.status) in DOC["paths"][template][method.lower()]["responses"]
    _check(template, method, r)
