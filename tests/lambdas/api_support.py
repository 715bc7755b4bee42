"""Helpers for the API tests: proxy events, the in-process endpoint, data loading, and a bridge
that lets boto3's Personalize clients talk to the handlers in-process."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from boto3.dynamodb.types import TypeSerializer
from botocore.awsrequest import AWSResponse
from recsys_lambdas import contracts

PREFIX = "test"
REGION = "us-east-1"
STREAM = "recsys-test-events"
BUCKET = "recsys-test-events-bucket"
ENDPOINT = "recsys-test-endpoint"

_ser = TypeSerializer()


def table(spec: contracts.TableSpec) -> str:
    return contracts.table_name(PREFIX, spec)


def api_event(method: str, path: str, body: Any = None, query: Optional[Dict[str, str]] = None,
              raw_body: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
              path_parameters: Optional[Dict[str, str]] = None, base64_body: bool = False) -> Dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway sends it to the Lambda."""
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    if base64_body and raw_body is not None:
        raw_body = base64.b64encode(raw_body.encode("utf-8")).decode("ascii")
    resource = path
    if path.startswith("/items/") and path.endswith("/similar"):
        resource = "/items/{itemId}/similar"
        path_parameters = path_parameters or {"itemId": unquote(path[len("/items/"):-len("/similar")])}
    elif path.startswith("/users/"):
        resource = "/users/{userId}"
        path_parameters = path_parameters or {"userId": unquote(path[len("/users/"):])}
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "path": f"/prod{path}", "stage": "prod",
            "requestId": str(uuid.uuid4()), "accountId": "123456789012", "apiId": "testapi",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": raw_body,
        "isBase64Encoded": base64_body,
    }


@dataclass
class LambdaContext:
    function_name: str = "recsys-api-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:recsys-api-test"
    aws_request_id: str = "req-0"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass
class ApiResponse:
    status: int
    headers: Dict[str, str]
    body: Any
    raw: Dict[str, Any]

    @property
    def error_type(self) -> Optional[str]:
        return self.headers.get("X-Amzn-ErrorType")


def handler_for(path: str) -> Callable[[Dict[str, Any], Any], Dict[str, Any]]:
    """The Lambda handler routes.py assigns to ``path`` (falls back to recommendations)."""
    import importlib

    from recsys_lambdas import routes

    function = "recommendations"
    for route in routes.ROUTES:
        similar = "{" in route.path and path.startswith("/items/") and path.endswith("/similar")
        user = route.path == "/users/{userId}" and path.startswith("/users/")
        if route.path == path or similar or user:
            function = route.function
            break
    module, _, name = routes.FUNCTIONS[function].rpartition(".")
    return getattr(importlib.import_module(module), name)


def call(method: str, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
    """Invoke the handler that serves ``path`` with a proxy event and decode its answer."""
    event = api_event(method, path, body, **kwargs)
    raw = handler_for(path)(event, LambdaContext())
    headers = dict(raw.get("headers") or {})
    for key, values in (raw.get("multiValueHeaders") or {}).items():
        headers.setdefault(key, values[0])
    text = raw.get("body") or ""
    if raw.get("isBase64Encoded"):
        text = base64.b64decode(text).decode("utf-8")
    return ApiResponse(raw["statusCode"], headers, json.loads(text) if text else None, raw)


# --- the SageMaker endpoint, in-process -----------------------------------------------------


class _Raw(io.BytesIO):
    """What botocore reads a response from: ``stream()`` for parsed bodies, ``read()`` for blobs."""

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self.getvalue()


def http_response(url: str, status: int, headers: Dict[str, str], body: bytes) -> AWSResponse:
    return AWSResponse(url, status, headers, _Raw(body))


class InProcessEndpoint:
    """Answers sagemaker-runtime InvokeEndpoint with the project's real ``inference.py`` (moto's
    own InvokeEndpoint returns canned data, so the request is routed before it reaches moto)."""

    def __init__(self, model_dir: Path) -> None:
        import inference  # sagemaker/inference.py

        self.inference = inference
        self.model = inference.model_fn(str(model_dir))
        self.requests: list = []

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body if isinstance(request.body, bytes) else (request.body or b"").encode()
        self.requests.append(json.loads(body))
        data = self.inference.input_fn(body, "application/json")
        prediction = self.inference.predict_fn(data, self.model)
        out = self.inference.output_fn(prediction, "application/json")
        if isinstance(out, tuple):
            out = out[0]
        if isinstance(out, str):
            out = out.encode("utf-8")
        return http_response(request.url, 200, {"Content-Type": "application/json"}, out)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", self)


# --- data, as the pipeline loads it ----------------------------------------------------------


def put_rows(ddb: Any, table_name: str, rows: Iterable[Dict[str, Any]]) -> int:
    """Write rows (plain JSON-like dicts) with BatchWriteItem."""
    from decimal import Decimal

    def conv(v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(repr(v))
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    rows = list(rows)
    for start in range(0, len(rows), 25):
        chunk = rows[start:start + 25]
        ddb.batch_write_item(RequestItems={table_name: [
            {"PutRequest": {"Item": {k: _ser.serialize(conv(v)) for k, v in row.items()}}} for row in chunk]})
    return len(rows)


def read_jsonl(path: Path) -> list:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sample_users(batch_dir: Path, n: int = 12, max_history: int = 40) -> list:
    """The users the tests load: the one with the longest history first, then a few more, each
    history cut to its newest ``max_history`` items (moto 5's response serializer spends most of
    a test's time on long lists)."""
    users = read_jsonl(batch_dir / "users.jsonl")
    longest = max(users, key=lambda r: len(r["recentItems"]))
    chosen = [longest, *[u for u in users if u["userId"] != longest["userId"]][: n - 1]]
    return [{**u, "recentItems": u["recentItems"][-max_history:],
             "recentTimestamps": u["recentTimestamps"][-max_history:]} for u in chosen]


def load_batch_output(ddb: Any, batch_dir: Path) -> None:
    """Load training's ``batch/*.jsonl`` into the tables, like the pipeline's loader: every item and
    search row, and a sample of users (moto writes nested lists slowly; the tests need only a few)."""
    users = sample_users(batch_dir)
    wanted = {u["userId"] for u in users} | {contracts.POPULAR_USER_ID}
    put_rows(ddb, table(contracts.ITEMS), read_jsonl(batch_dir / "items.jsonl"))
    put_rows(ddb, table(contracts.USERS), users)
    put_rows(ddb, table(contracts.BATCH_RECOMMENDATIONS),
             [r for r in read_jsonl(batch_dir / "recommendations.jsonl")
              if r["userId"] in wanted or r["userId"].startswith(contracts.SEARCH_ROW_PREFIX)])


# --- boto3's Personalize clients against the handlers ------------------------------------------


class PersonalizeBridge:
    """A ``before-send`` hook: the client's HTTP request becomes a proxy event for our handler,
    and the handler's proxy response becomes the HTTP response botocore parses."""

    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        parts = urlsplit(request.url)
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        query = dict(parse_qsl(parts.query)) or None
        event = api_event(request.method, parts.path, raw_body=body or None, query=query,
                          headers={k: v for k, v in request.headers.items() if isinstance(v, str)})
        raw = handler_for(parts.path)(event, LambdaContext())
        self.calls.append((request.method, parts.path, raw["statusCode"]))
        headers = dict(raw.get("headers") or {})
        for key, values in (raw.get("multiValueHeaders") or {}).items():
            headers.setdefault(key, ",".join(values))
        return http_response(request.url, raw["statusCode"], headers, (raw.get("body") or "").encode("utf-8"))

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send", self)
        return client


def set_env(monkeypatch: Any, **values: str) -> None:
    """Change handler settings mid-test (drops the container's cached clients and settings)."""
    from recsys_lambdas import aws

    for key, value in values.items():
        monkeypatch.setenv(key, value)
    aws.reset()


def wsgi_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    """The handlers behind a minimal API-Gateway-like WSGI adapter (for schemathesis in-process)."""
    method = environ["REQUEST_METHOD"]
    path = unquote(environ.get("PATH_INFO", "/"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)) or None
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    try:
        text = body.decode("utf-8") if body else None
        b64 = False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode("ascii"), True
    event = api_event(method, path, raw_body=text, query=query, headers=headers)
    event["isBase64Encoded"] = b64
    raw = handler_for(path)(event, LambdaContext())
    out_headers = dict(raw.get("headers") or {})
    for key, values in (raw.get("multiValueHeaders") or {}).items():
        out_headers.setdefault(key, ",".join(values))
    data = (raw.get("body") or "").encode("utf-8")
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
              500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}.get(raw["statusCode"], "X")
    start_response(f"{raw['statusCode']} {reason}", [*out_headers.items(), ("Content-Length", str(len(data)))])
    return [data]
