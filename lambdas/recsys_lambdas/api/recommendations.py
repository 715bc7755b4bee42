"""Lambda handler for the recommendation routes: ``POST /recommendations``,
``POST /personalize-ranking``, ``GET /items/{itemId}/similar`` and ``GET /search``.

Thin: parse and validate against ``openapi.json`` -> :mod:`recsys_lambdas.service` -> shape.
"""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from recsys_lambdas import service
from recsys_lambdas.api.common import (
    deps,
    json_response,
    logger,
    make_app,
    metrics,
    record_metric,
    tracer,
)
from recsys_lambdas.validation import (
    parameter_schema,
    parse_json_body,
    query_param,
    validate,
    validate_value,
)

SIMILAR_PATH = "/items/{itemId}/similar"


def _items(result: service.Recommendations) -> list:
    out = []
    for item_id, score in result.items:
        entry: Dict[str, Any] = {"itemId": item_id, "score": float(score)}
        if result.metadata is not None:
            entry["metadata"] = result.metadata.get(item_id, {})
        out.append(entry)
    return out


def _log(d: service.Deps, operation: str, result: service.Recommendations) -> None:
    record_metric(f"{operation}Served")
    logger.info(operation, extra={"items": len(result.items), "degraded": result.degraded,
                                  "model_version": result.model_version,
                                  "recommendation_id": result.recommendation_id, **d.notes})


def _recommendations_body(result: service.Recommendations) -> Dict[str, Any]:
    return {"itemList": _items(result), "recommendationId": result.recommendation_id,
            "modelVersion": result.model_version, "degraded": result.degraded}


def _similar(item_id: str) -> Response:
    validate_value(parameter_schema(SIMILAR_PATH, "GET", "itemId"), item_id, "path parameter itemId")
    k = query_param(app.current_event.raw_event, SIMILAR_PATH, "GET", "numResults")
    d = deps()
    result = service.similar_items(d, item_id, k)
    _log(d, "GetSimilarItems", result)
    return json_response(200, _recommendations_body(result))


app = make_app(unrouted={"GetSimilarItems": _similar})


@app.post("/recommendations")
def get_recommendations() -> Response:
    body = validate("GetRecommendationsRequest", parse_json_body(app.current_event.raw_event))
    d = deps()
    result = service.get_recommendations(d, body)
    _log(d, "GetRecommendations", result)
    return json_response(200, _recommendations_body(result))


@app.post("/personalize-ranking")
def get_personalized_ranking() -> Response:
    body = validate("GetPersonalizedRankingRequest", parse_json_body(app.current_event.raw_event))
    d = deps()
    result = service.personalized_ranking(d, body)
    _log(d, "GetPersonalizedRanking", result)
    return json_response(200, {"personalizedRanking": _items(result),
                               "recommendationId": result.recommendation_id,
                               "modelVersion": result.model_version, "degraded": result.degraded})


@app.get("/items/<itemId>/similar")
def get_similar_items(itemId: str) -> Response:
    # API Gateway puts the decoded value in pathParameters; the router saw the raw path
    decoded = (app.current_event.path_parameters or {}).get("itemId") or unquote(itemId)
    return _similar(decoded)


@app.get("/search")
def search() -> Response:
    event = app.current_event.raw_event
    query = query_param(event, "/search", "GET", "q")
    user_id = query_param(event, "/search", "GET", "userId")
    k = query_param(event, "/search", "GET", "numResults")
    d = deps()
    result = service.search(d, query, k, user_id)
    _log(d, "Search", result)
    return json_response(200, _recommendations_body(result))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: Dict[str, Any], context: LambdaContext) -> Dict[str, Any]:
    """API Gateway (REST, proxy) entry point."""
    return app.resolve(event, context)
