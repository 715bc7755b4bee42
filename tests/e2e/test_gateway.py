"""The API Gateway emulator: REST v1 proxy events in, proxy responses out, gateway errors."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from recsys_lambdas import routes
from recsys_tools.local.gateway import (
    MAX_BODY_BYTES,
    Gateway,
    GatewayServer,
    build_event,
    compile_routes,
    match_route,
    proxy_response_to_http,
)
from recsys_tools.local.ports import bind_listener

pytestmark = pytest.mark.e2e

SEEN: list = []


def echo_handler(event, context):
    """Answers with the event it got and what the context told it."""
    SEEN.append((event, context))
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"event": event, "remaining_ms": context.get_remaining_time_in_millis(),
                            "function": context.function_name}),
        "isBase64Encoded": False,
    }


def failing_handler(event, context):
    raise RuntimeError("bug in the handler")


def bad_shape_handler(event, context):
    return {"body": "no status code"}


def health_handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"status": "ok"})}


@pytest.fixture
def gateway() -> Gateway:
    SEEN.clear()
    return Gateway(routes.ROUTES, {"recommendations": echo_handler, "events": failing_handler,
                                   "meta": health_handler},
                   health_parts=lambda: {"endpoint": {"ok": False}})


@pytest.fixture
def served(gateway: Gateway):
    sock = bind_listener("127.0.0.1", 0, "API")
    server = GatewayServer(gateway, sock).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def test_every_contract_route_resolves_to_its_function():
    compiled = compile_routes(routes.ROUTES)
    for route in routes.ROUTES:
        concrete = route.path.replace("{itemId}", "i%2F42")
        found, params = match_route(compiled, route.method, concrete)
        assert found.function == route.function
        if "{itemId}" in route.path:
            assert params == {"itemId": "i/42"}  # path parameters arrive decoded


def test_event_has_the_rest_v1_proxy_shape():
    route = compile_routes(routes.ROUTES)
    similar = next(r for r in route if r.operation_id == "GetSimilarItems")
    event = build_event(similar, {"itemId": "i1"}, "GET", "/items/i1/similar", "numResults=5&f=a&f=b",
                        [("Host", "localhost:8080"), ("X-Tag", "1"), ("X-Tag", "2")], b"",
                        stage="local", source_ip="127.0.0.1", request_id="req-1")
    assert event["resource"] == "/items/{itemId}/similar"
    assert event["path"] == "/items/i1/similar"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"itemId": "i1"}
    assert event["queryStringParameters"] == {"numResults": "5", "f": "b"}  # last value wins
    assert event["multiValueQueryStringParameters"] == {"numResults": ["5"], "f": ["a", "b"]}
    assert event["headers"]["X-Tag"] == "2"
    assert event["multiValueHeaders"]["X-Tag"] == ["1", "2"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["requestId"] == "req-1"
    assert ctx["stage"] == "local"
    assert ctx["resourcePath"] == "/items/{itemId}/similar"
    assert ctx["httpMethod"] == "GET"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert event["stageVariables"] is None


def test_binary_body_is_base64_encoded():
    route = compile_routes(routes.ROUTES)[0]
    event = build_event(route, {}, "POST", "/recommendations", "", [], b"\xff\xfe\x00")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_proxy_response_conversion_keeps_multi_value_headers_and_base64_bodies():
    status, headers, body = proxy_response_to_http({
        "statusCode": 201, "headers": {"A": "1"}, "multiValueHeaders": {"B": ["x", "y"]},
        "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert status == 201
    assert ("B", "x") in headers and ("B", "y") in headers and ("A", "1") in headers
    assert body == b"\x00\x01"
    with pytest.raises(ValueError, match="statusCode"):
        proxy_response_to_http({"statusCode": "200"})


def test_request_over_http_reaches_the_handler_with_a_lambda_context(served):
    resp = requests.post(f"{served}/recommendations?x=1", json={"userId": "u1"}, timeout=10)
    assert resp.status_code == 200
    doc = resp.json()
    assert json.loads(doc["event"]["body"]) == {"userId": "u1"}
    assert doc["event"]["queryStringParameters"] == {"x": "1"}
    assert doc["event"]["requestContext"]["resourcePath"] == "/recommendations"
    assert 0 < doc["remaining_ms"] <= 10_000
    assert doc["function"].endswith("recommendations")
    assert resp.headers["x-amzn-RequestId"] == doc["event"]["requestContext"]["requestId"]
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def test_unknown_route_is_a_404_json(served):
    resp = requests.get(f"{served}/nope", timeout=10)
    assert resp.status_code == 404
    assert "no route" in resp.json()["message"]
    assert resp.headers["x-amzn-ErrorType"] == "NotFoundException"


def test_wrong_method_is_a_405_json_with_allow(served):
    resp = requests.get(f"{served}/recommendations", timeout=10)
    assert resp.status_code == 405
    assert "GET" in resp.json()["message"]
    assert resp.headers["Allow"] == "POST"


def test_body_over_10_mb_is_a_413(served):
    resp = requests.post(f"{served}/recommendations", data=b"x" * (MAX_BODY_BYTES + 1),
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 413
    assert str(MAX_BODY_BYTES) in resp.json()["message"]
    assert not SEEN  # the handler never ran


def test_handler_exception_is_a_502_like_api_gateway(served):
    resp = requests.post(f"{served}/events", json={}, timeout=10)
    assert resp.status_code == 502
    assert resp.json() == {"message": "Internal server error"}


def test_malformed_proxy_response_is_a_502(gateway):
    gateway.functions["events"].handler = bad_shape_handler
    status, _, body = gateway.handle("POST", "/events", [], b"{}")
    assert status == 502
    assert json.loads(body)["message"] == "Internal server error"


def test_health_gets_the_local_stack_parts(served):
    resp = requests.get(f"{served}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "localStack": {"endpoint": {"ok": False}}}


def test_chunked_request_body_is_reassembled(served):
    def chunks():
        yield b'{"userId":'
        yield b' "u2"}'

    resp = requests.post(f"{served}/recommendations", data=chunks(), timeout=10)
    assert resp.status_code == 200
    assert json.loads(resp.json()["event"]["body"]) == {"userId": "u2"}


def _raw_request(base: str, payload: bytes, half_close: bool) -> bytes:
    """Send bytes as they are and read the answer (up to the server closing the connection)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return answer  # no answer while the connection stays open
            if not data:
                return answer
            answer += data


@pytest.mark.parametrize("chunked, half_close", [
    (b"-5\r\nabcde\r\n0\r\n\r\n", False),  # a negative size: int() took it, read(-5) waited for EOF
    (b"zz\r\nabc\r\n0\r\n\r\n", False),  # not hexadecimal
    (b"+5\r\nabcde\r\n0\r\n\r\n", False),  # a sign is not a hex digit
    (b"a\r\nabc", True),  # the body ends inside a chunk
])
def test_a_malformed_chunked_body_is_a_400_json(served, chunked, half_close):
    answer = _raw_request(served, b"POST /recommendations HTTP/1.1\r\nHost: local\r\n"
                                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
                          half_close)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert "malformed chunked body" in json.loads(body)["message"]
    assert not SEEN  # the handler never ran


def test_a_handler_past_its_timeout_gets_api_gateways_502(tmp_path):
    """The emulator enforces the function's timeout (contracts.API_FUNCTION_TIMEOUT_S unless told):
    a handler still running then is answered as Lambda + API Gateway do, a bare 502, on time."""
    import io
    import threading
    import time

    release = threading.Event()

    def slow_handler(event, context):
        release.wait(5)
        return health_handler(event, context)

    log = io.StringIO()
    gateway = Gateway(routes.ROUTES, {"recommendations": slow_handler, "events": failing_handler,
                                      "meta": health_handler}, timeout_s=0.5, log=log)
    started = time.monotonic()
    status, _, body = gateway.handle("POST", "/recommendations", [], b"{}")
    elapsed = time.monotonic() - started
    assert status == 502 and json.loads(body) == {"message": "Internal server error"}
    assert 0.5 <= elapsed < 2.0
    assert "Task timed out after 0.50 seconds" in log.getvalue()
    release.set()  # the stuck invocation ends; the function serves again
    assert gateway.handle("POST", "/recommendations", [], b"{}")[0] == 200
    assert gateway.handle("GET", "/health", [], b"")[0] == 200


def test_each_functions_output_goes_to_its_own_log(tmp_path, capsys):
    """What a handler prints or logs (Powertools' EMF metric lines included) goes to
    <log_dir>/<function>.log, as Lambda sends it to CloudWatch, not into the terminal."""
    import logging
    import sys

    logger = logging.getLogger("test-function-output")
    logger.setLevel(logging.INFO)

    def chatty_handler(event, context):
        print('{"_aws": {"CloudWatchMetrics": []}, "EventsAccepted": [1.0]}')
        logger.addHandler(logging.StreamHandler(sys.stdout))  # as Powertools' Logger, made at import
        logger.info("handled %s", event["path"])
        print("to stderr", file=sys.stderr)
        return health_handler(event, context)

    gateway = Gateway(routes.ROUTES, {"recommendations": chatty_handler, "events": failing_handler,
                                      "meta": health_handler}, log_dir=tmp_path / "logs")
    assert gateway.handle("POST", "/recommendations", [], b"{}")[0] == 200
    print("the stack's own line")
    text = (tmp_path / "logs" / "recommendations.log").read_text()
    assert '"EventsAccepted": [1.0]' in text and "handled /recommendations" in text and "to stderr" in text
    assert (tmp_path / "logs" / "events.log").read_text() == ""
    out = capsys.readouterr()
    assert "EventsAccepted" not in out.out + out.err and "the stack's own line" in out.out


def test_requests_are_validated_with_the_models_cdk_attaches():
    """The emulator checks bodies and required parameters against the same models CDK builds for
    API Gateway (recsys_infra.openapi_models), answering in API Gateway's shape."""
    from recsys_lambdas.validation import openapi_document

    SEEN.clear()
    gateway = Gateway(routes.ROUTES, {"recommendations": echo_handler, "events": echo_handler,
                                      "meta": health_handler}, document=openapi_document())
    for body in (b"{}", b'{"trackingId": "t"}', b"not json", b"[" * 100_000, b""):
        status, headers, out = gateway.handle("POST", "/events", [("Content-Type", "application/json")], body)
        assert status == 400 and json.loads(out) == {"message": "Invalid request body"}, body[:20]
        assert dict(headers)["x-amzn-ErrorType"] == "BadRequestException"
    status, _, out = gateway.handle("GET", "/search", [], b"")
    assert status == 400 and json.loads(out) == {"message": "Missing required request parameters: [q]"}
    assert not SEEN  # no handler ran
    ok = {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click", "itemId": "i", "sentAt": 1}]}
    assert gateway.handle("POST", "/events", [], json.dumps(ok).encode())[0] == 200
    assert gateway.handle("GET", "/search?q=tower", [], b"")[0] == 200
    assert len(SEEN) == 2
