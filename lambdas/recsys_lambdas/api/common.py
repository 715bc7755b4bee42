"""What every API handler shares: Powertools logger/metrics/tracer, the resolver with the
error mapping (Personalize's shape: status, ``X-Amzn-ErrorType``, JSON ``message``), and the
:class:`~recsys_lambdas.service.Deps` built from the container's cached clients.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, Optional
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from recsys_lambdas import aws, routes
from recsys_lambdas.errors import ApiError, MethodNotAllowed
from recsys_lambdas.service import Deps

SERVICE = "recsys-api"
NAMESPACE = "Recsys"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

JSON = "application/json"


def _route_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")


_ROUTE_PATTERNS = [(r, _route_regex(r.path)) for r in routes.ROUTES]


def json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Response:
    """A JSON response (compact, no NaN)."""
    return Response(status_code=status, content_type=JSON,
                    body=json.dumps(body, separators=(",", ":"), allow_nan=False),
                    headers=headers or {})


def error_response(exc: ApiError) -> Response:
    """The wire shape of an :class:`ApiError`."""
    return json_response(exc.status, exc.body(), {"X-Amzn-ErrorType": exc.code, **exc.headers})


def record_metric(name: str, value: float = 1.0) -> None:
    """A Count metric in the function's EMF output."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def deps() -> Deps:
    """Dependencies for one request: settings and lazily created, container-cached clients."""
    return Deps(
        settings=aws.current_settings(),
        ddb_factory=lambda: aws.client("dynamodb"),
        smr_factory=lambda: aws.client("sagemaker-runtime"),
        firehose_factory=lambda: aws.client("firehose"),
        s3_factory=lambda: aws.client("s3"),
        metric=record_metric,
    )


def make_app(unrouted: Optional[Dict[str, Callable[[str], Response]]] = None) -> APIGatewayRestResolver:
    """A resolver whose errors all come out in the API's error shape.

    Args:
        unrouted: operationId -> function of the path's last parameter, for paths Powertools'
            router cannot match because the parameter holds characters outside its pattern
            (e.g. ``#`` or ``"`` in an item id); API Gateway routes them by resource.
    """
    app = APIGatewayRestResolver()
    unrouted = unrouted or {}

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        if exc.status >= 500:
            logger.warning("request failed", extra={"error_code": exc.code, "error": exc.message})
            record_metric("ServerErrors")
        else:
            logger.info("request rejected", extra={"error_code": exc.code, "error": exc.message})
            record_metric("ClientErrors")
        return error_response(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        record_metric("ServerErrors")
        return error_response(ApiError("internal error; the request can be retried"))

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        event = app.current_event
        path, method = event.path, event.http_method.upper()
        record_metric("ClientErrors")
        matches = [r for r, rx in _ROUTE_PATTERNS if rx.match(path)]
        for route in matches:
            if route.method == method and route.operation_id in unrouted:
                params = event.path_parameters or {}
                value = next(iter(params.values()), None) or unquote(path.rstrip("/").split("/")[-2])
                return unrouted[route.operation_id](value)
        allowed = sorted({r.method for r in matches})
        if allowed:
            return error_response(MethodNotAllowed(
                f"{method} is not allowed on {path}; allowed: {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)}))
        return json_response(404, {"message": f"no route for {method} {path}"},
                             {"X-Amzn-ErrorType": "UnknownOperationException"})

    return app
