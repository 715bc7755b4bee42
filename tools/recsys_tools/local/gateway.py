"""A local API Gateway (REST API, Lambda proxy integration) in front of the Lambda handlers.

Each HTTP request becomes the REST v1 proxy event API Gateway would send, the handler named in
``recsys_lambdas.routes`` gets it with a Lambda-like context, and its proxy response becomes the
HTTP response. What API Gateway itself answers is answered here too: an unknown path is a 404,
a known path with another method a 405, a body over 10 MB a 413, a handler that raises or returns
something that is not a proxy response a 502 ``Internal server error``; all as JSON with a
``message`` and the ``x-amzn-ErrorType`` header.

Like one warm Lambda container per function, each function runs one event at a time (handler
modules hold per-container state, e.g. a Powertools resolver's current event).
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from recsys_lambdas import contracts

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read (and drop) an oversized body up to this, then hang up
DEFAULT_TIMEOUT_S = 29.0  # API Gateway's integration timeout
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")  # a chunk-size line (extensions already cut off)
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

Handler = Callable[[dict[str, Any], Any], Any]
HttpResponse = tuple[int, list[tuple[str, str]], bytes]


class GatewayError(Exception):
    """An answer the gateway gives itself, without calling a handler."""

    def __init__(self, status: int, error_type: str, message: str,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class CompiledRoute:
    method: str
    resource: str  # the API Gateway resource path, e.g. /items/{itemId}/similar
    function: str
    operation_id: str
    pattern: re.Pattern[str]


def compile_routes(routes: Iterable[Any]) -> list[CompiledRoute]:
    """Compile ``recsys_lambdas.routes.Route``-like objects (method, path, function, operation_id)."""
    compiled = []
    for route in routes:
        parts = []
        for segment in route.path.strip("/").split("/"):
            m = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
            if m:
                parts.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        compiled.append(CompiledRoute(route.method.upper(), route.path, route.function,
                                      route.operation_id, re.compile("^/" + "/".join(parts) + "$")))
    return compiled


def match_route(routes: Sequence[CompiledRoute], method: str,
                path: str) -> tuple[CompiledRoute, dict[str, str]]:
    """The route for ``method path`` and its decoded path parameters.

    Raises:
        GatewayError: 404 when no resource matches, 405 when it does for other methods only.
    """
    allowed = []
    for route in routes:
        m = route.pattern.match(path)
        if not m:
            continue
        if route.method == method:
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        allowed.append(route.method)
    if allowed:
        raise GatewayError(405, "MethodNotAllowedException",
                           f"method {method} is not allowed on {path}; allowed: {', '.join(sorted(set(allowed)))}",
                           {"Allow": ", ".join(sorted(set(allowed)))})
    raise GatewayError(404, "NotFoundException", f"no route for {method} {path}")


def build_event(
    route: CompiledRoute,
    path_parameters: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
    request_id: Optional[str] = None,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one request."""
    request_id = request_id or str(uuid.uuid4())
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for key, value in headers:
        single_headers[key] = value  # API Gateway keeps the last value of a repeated header
        multi_headers.setdefault(key, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        single_query[key] = value
        multi_query.setdefault(key, []).append(value)
    text: Optional[str]
    is_base64 = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(body).decode("ascii")
            is_base64 = True
    now = time.time()
    lower = {k.lower(): v for k, v in single_headers.items()}
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "resourceId": route.operation_id,
            "resourcePath": route.resource,
            "operationName": route.operation_id,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "domainName": lower.get("host", "localhost"),
            "domainPrefix": "local",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent"),
                "apiKey": lower.get("x-api-key"),
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
            },
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def proxy_response_to_http(result: Any) -> HttpResponse:
    """Turn a handler's proxy response into (status, headers, body).

    Raises:
        ValueError: the result is not a valid proxy response (API Gateway answers 502).
    """
    if not isinstance(result, dict):
        raise ValueError(f"handler returned {type(result).__name__}, not a proxy response object")
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"proxy response has an invalid statusCode: {status!r}")
    headers: list[tuple[str, str]] = []
    seen = set()
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values or []:
            headers.append((str(key), str(value)))
        seen.add(str(key).lower())
    for key, value in (result.get("headers") or {}).items():
        if str(key).lower() not in seen:
            headers.append((str(key), str(value)))
    body = result.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise ValueError(f"proxy response body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    else:
        raw = body.encode("utf-8")
    return status, headers, raw


class RequestValidator:
    """API Gateway's request validation, from the models CDK attaches (the same document, the same
    ``recsys_infra.openapi_models.operation_validation``): required parameters and the JSON body
    schema, answered in API Gateway's shape before any handler runs."""

    def __init__(self, document: Mapping[str, Any], routes: Sequence[CompiledRoute]) -> None:
        import fastjsonschema
        from recsys_infra.openapi_models import operation_validation

        self._checks: dict[str, tuple[Any, list[str]]] = {}
        for route in routes:
            spec = operation_validation(dict(document), route.method, route.resource)
            body = fastjsonschema.compile(spec.body_schema) if spec.body_schema else None
            required = [name for name, needed in spec.required_parameters.items() if needed]
            self._checks[route.operation_id] = (body, required)

    def check(self, route: CompiledRoute, query: str, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        """Raises GatewayError (400 ``BadRequestException``) as API Gateway's validator does."""
        import fastjsonschema

        validate, required = self._checks.get(route.operation_id, (None, []))
        params = {k for k, _ in parse_qsl(query, keep_blank_values=True)}
        names = {k.lower() for k, _ in headers}
        missing = []
        for name in required:
            _, _, where, key = name.split(".", 3)
            if (where == "querystring" and key not in params) or (where == "header" and key.lower() not in names):
                missing.append(key)
        if missing:
            raise GatewayError(400, "BadRequestException",
                               f"Missing required request parameters: [{', '.join(missing)}]")
        if validate is None:
            return
        try:
            validate(json.loads(body.decode("utf-8")) if body.strip() else None)
        except (ValueError, UnicodeDecodeError, RecursionError, fastjsonschema.JsonSchemaException):
            raise GatewayError(400, "BadRequestException", "Invalid request body") from None


_ROUTE = threading.local()  # .sink: the function log of the invocation running on this thread


class _RoutedStream:
    """``sys.stdout``/``sys.stderr`` for the stack's process: what a handler writes (its logs,
    Powertools' EMF metric lines) goes to its function's log, the rest to the original stream."""

    def __init__(self, default: Any) -> None:
        self._default = default

    def write(self, text: str) -> int:
        sink = getattr(_ROUTE, "sink", None)
        return int((sink or self._default).write(text) or 0)

    def flush(self) -> None:
        sink = getattr(_ROUTE, "sink", None)
        (sink or self._default).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._default, name)


def route_function_output() -> None:
    """Install the routed streams (once; before the handlers are imported, so that Powertools'
    log handler holds the routed ``sys.stdout``)."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)  # type: ignore[assignment]


class FunctionTimedOut(Exception):
    """A handler ran past its function's timeout (Lambda's "Task timed out")."""


class LambdaContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_s: float, memory_mb: int = 1024) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LambdaFunction:
    """One function: its handler (callable or import path ``pkg.module.attr``), one event at a time."""

    name: str
    handler: Any
    timeout_s: float = float(contracts.API_FUNCTION_TIMEOUT_S)
    lock: threading.Lock = field(default_factory=threading.Lock)
    log_file: Any = None  # an open text file: the function's output, as Lambda's CloudWatch log

    def resolve(self) -> Handler:
        """Import the handler (the cold start); raises ImportError/AttributeError naming it."""
        if isinstance(self.handler, str):
            module_name, _, attr = self.handler.rpartition(".")
            module = importlib.import_module(module_name)
            self.handler = getattr(module, attr)
        return self.handler  # type: ignore[no-any-return]

    def invoke(self, event: dict[str, Any], function_prefix: str = "recsys-local") -> Any:
        """Run the handler on ``event`` with a context counting down ``timeout_s``.

        Raises:
            FunctionTimedOut: the handler ran past ``timeout_s`` (as Lambda stops it; here it runs
                on in its thread, holding the function, until it returns).
        """
        handler = self.resolve()
        self.lock.acquire()  # one event at a time, as one Lambda sandbox
        context = LambdaContext(f"{function_prefix}-{self.name}", self.timeout_s)
        box: dict[str, Any] = {}

        def run() -> None:
            _ROUTE.sink = self.log_file
            try:
                box["result"] = handler(event, context)
            except BaseException as exc:  # re-raised on the request's thread
                box["error"] = exc
            finally:
                _ROUTE.sink = None
                if self.log_file is not None:
                    self.log_file.flush()
                self.lock.release()

        worker = threading.Thread(target=run, name=f"lambda-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise FunctionTimedOut(f"{context.function_name}: Task timed out after {self.timeout_s:.2f} seconds")
        if "error" in box:
            raise box["error"]
        return box["result"]


class Gateway:
    """Routes requests to Lambda functions; transport-free so tests can call :meth:`handle`.

    Args:
        routes: ``recsys_lambdas.routes.ROUTES`` (or the same shape).
        functions: function name -> handler callable or import path.
        stage: the stage name in ``requestContext``.
        health_parts: extra health parts merged into ``GET /health`` as ``localStack``.
        log: where handler tracebacks go.
        document: the OpenAPI document; when given, requests are validated as API Gateway does
            with the models CDK builds from it (:class:`RequestValidator`).
        log_dir: when given, each function's output (what its handler prints and logs, EMF
            metric lines included) goes to ``log_dir/<function>.log``, as Lambda sends it to
            the function's CloudWatch log group, not to this process's terminal.
    """

    def __init__(
        self,
        routes: Iterable[Any],
        functions: Mapping[str, Any],
        stage: str = "local",
        timeout_s: float = float(contracts.API_FUNCTION_TIMEOUT_S),
        health_parts: Optional[Callable[[], dict[str, Any]]] = None,
        log: Any = None,
        log_dir: Optional[Path] = None,
        document: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.routes = compile_routes(routes)
        self.validator = RequestValidator(document, self.routes) if document is not None else None
        self.functions = {name: LambdaFunction(name, handler, timeout_s)
                          for name, handler in functions.items()}
        self.log_dir = log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            for name, function in self.functions.items():
                function.log_file = open(log_dir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - lives with the gateway
            route_function_output()
        missing = {r.function for r in self.routes} - set(self.functions)
        if missing:
            raise ValueError(f"routes name functions that are not defined: {sorted(missing)}")
        self.stage = stage
        self.health_parts = health_parts
        self.log = log or sys.stderr

    def load_handlers(self) -> None:
        """Import every handler now, so a broken one fails the start, not the first request."""
        for function in self.functions.values():
            function.resolve()

    def handle(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes,
               source_ip: str = "127.0.0.1") -> HttpResponse:
        """Answer one HTTP request (``target`` is the request line's path and query)."""
        request_id = str(uuid.uuid4())
        base_headers = [("x-amzn-RequestId", request_id)]
        split = urlsplit(target)
        path = split.path or "/"
        try:
            if len(body) > MAX_BODY_BYTES:
                raise GatewayError(413, "RequestTooLarge",
                                   f"request body is {len(body)} bytes; at most {MAX_BODY_BYTES} allowed")
            route, params = match_route(self.routes, method.upper(), path)
            if self.validator is not None:
                self.validator.check(route, split.query, headers, body)
        except GatewayError as exc:
            return gateway_error(exc, base_headers)
        event = build_event(route, params, method.upper(), path, split.query, headers, body,
                            stage=self.stage, source_ip=source_ip, request_id=request_id)
        try:
            result = self.functions[route.function].invoke(event)
            status, out_headers, out_body = proxy_response_to_http(result)
        except FunctionTimedOut as exc:
            # Lambda ends the invocation; API Gateway's proxy integration answers a bare 502
            self.log.write(f"[gateway] {route.function} on {method} {path}: {exc}\n")
            self.log.flush()
            return gateway_error(GatewayError(502, "InternalServerErrorException",
                                              "Internal server error"), base_headers)
        except Exception:
            self.log.write(f"[gateway] {route.function} failed on {method} {path}:\n"
                           + traceback.format_exc())
            self.log.flush()
            return gateway_error(GatewayError(502, "InternalServerErrorException",
                                              "Internal server error"), base_headers)
        if route.operation_id == "Health" and self.health_parts is not None:
            out_body = self._add_health_parts(out_body)
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-length"]
        return status, base_headers + out_headers, out_body

    def _add_health_parts(self, body: bytes) -> bytes:
        assert self.health_parts is not None
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if isinstance(doc, dict):
            doc["localStack"] = self.health_parts()
            return json.dumps(doc).encode()
        return body


def gateway_error(exc: GatewayError, headers: list[tuple[str, str]]) -> HttpResponse:
    body = json.dumps({"message": exc.message}).encode()
    out = [*headers, ("Content-Type", "application/json"), ("x-amzn-ErrorType", exc.error_type)]
    out.extend(exc.headers.items())
    return exc.status, out, body


def make_http_handler(gateway: Gateway) -> type:
    """The ``http.server`` request handler class serving ``gateway``."""

    class GatewayRequestHandler(BaseHTTPRequestHandler):
        server_version = "recsys-local-apigateway"
        protocol_version = "HTTP/1.1"
        timeout = 120

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the stack prints its own one-line summaries where useful

        def _read_body(self) -> Optional[bytes]:
            """The request body, or None after answering 413/400 (connection then closed)."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                total = 0
                while True:
                    size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                    # hex digits only: int() would also take "-5" (then read(-5) waits for EOF)
                    if not _CHUNK_SIZE.fullmatch(size_line):
                        shown = size_line[:20].decode("latin-1")
                        self._reply_error(GatewayError(
                            400, "BadRequestException",
                            f"malformed chunked body: chunk size {shown!r} is not a hexadecimal number"))
                        return None
                    size = int(size_line, 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    total += size
                    if total > DRAIN_LIMIT_BYTES:
                        self._reply_error(GatewayError(413, "RequestTooLarge", "request body too large"))
                        return None
                    data = self.rfile.read(size)
                    if len(data) < size:
                        self._reply_error(GatewayError(
                            400, "BadRequestException", "malformed chunked body: it ends inside a chunk"))
                        return None
                    chunks.append(data)
                    self.rfile.readline(1024)
                return b"".join(chunks)
            raw_length = self.headers.get("Content-Length")
            if raw_length is None:
                return b""
            try:
                length = int(raw_length)
                if length < 0:
                    raise ValueError
            except ValueError:
                self._reply_error(GatewayError(400, "BadRequestException",
                                               "Content-Length must be a non-negative integer"))
                return None
            if length > MAX_BODY_BYTES:
                # Read what the client is sending (up to a cap) so it sees the 413, not a reset.
                remaining = min(length, DRAIN_LIMIT_BYTES)
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                self._reply_error(GatewayError(
                    413, "RequestTooLarge",
                    f"request body is {length} bytes; at most {MAX_BODY_BYTES} allowed"))
                return None
            return self.rfile.read(length)

        def _reply_error(self, exc: GatewayError) -> None:
            self.close_connection = True
            self._write(*gateway_error(exc, [("x-amzn-RequestId", str(uuid.uuid4()))]))

        def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _dispatch(self) -> None:
            body = self._read_body()
            if body is None:
                return
            headers = [(k, v) for k, v in self.headers.items()]
            response = gateway.handle(self.command, self.path, headers, body,
                                      source_ip=self.client_address[0])
            self._write(*response)

        # every method reaches the router, so an undeclared one is a JSON 405 like API Gateway's
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch
        do_TRACE = do_QUERY = _dispatch

    return GatewayRequestHandler


class GatewayServer:
    """Serves a :class:`Gateway` on an already bound listening socket, from a thread."""

    def __init__(self, gateway: Gateway, sock: Any) -> None:
        handler = make_http_handler(gateway)
        self.server = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="gateway", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])

    def start(self) -> GatewayServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close the listening socket."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5.0)
        self.server.server_close()
