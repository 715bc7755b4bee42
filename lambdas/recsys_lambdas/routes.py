"""The HTTP routes and which Lambda handler serves each: read by the CDK app (API Gateway
methods and integrations) and by the local stack's API Gateway emulator, so both wire the same
handler to the same route.

Handlers receive API Gateway REST (v1) proxy events and return proxy responses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path, with {pathParameters}
    function: str  # logical Lambda name (one function per route group)
    operation_id: str  # the OpenAPI operationId


# One Lambda function per route group; the value is the handler's import path.
FUNCTIONS = {
    "recommendations": "recsys_lambdas.api.recommendations.handler",
    "events": "recsys_lambdas.api.events.handler",
    "meta": "recsys_lambdas.api.meta.handler",
}

ROUTES = (
    Route("POST", "/recommendations", "recommendations", "GetRecommendations"),
    Route("POST", "/personalize-ranking", "recommendations", "GetPersonalizedRanking"),
    Route("GET", "/items/{itemId}/similar", "recommendations", "GetSimilarItems"),
    Route("GET", "/search", "recommendations", "Search"),
    Route("POST", "/events", "events", "PutEvents"),
    Route("DELETE", "/users/{userId}", "events", "DeleteUser"),
    Route("GET", "/health", "meta", "Health"),
    Route("GET", "/openapi.json", "meta", "GetOpenApiDocument"),
)
