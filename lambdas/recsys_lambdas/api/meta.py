"""Lambda handler for ``GET /health`` and ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any, Dict

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from recsys_lambdas import aws
from recsys_lambdas.api.common import (
    JSON,
    json_response,
    logger,
    make_app,
    metrics,
    record_metric,
    tracer,
)
from recsys_lambdas.validation import openapi_text

app = make_app()


@app.get("/health")
def health() -> Response:
    settings = aws.current_settings()
    record_metric("HealthChecks")
    return json_response(200, {"status": "ok", "servingMode": settings.serving_mode,
                               "endpointConfigured": bool(settings.endpoint_name)})


@app.get("/openapi.json")
def openapi_document() -> Response:
    record_metric("OpenApiServed")
    return Response(status_code=200, content_type=JSON, body=openapi_text())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: Dict[str, Any], context: LambdaContext) -> Dict[str, Any]:
    """API Gateway (REST, proxy) entry point."""
    return app.resolve(event, context)
