"""Lambda handler for ``POST /events`` (Amazon Personalize PutEvents) and ``DELETE
/users/{userId}`` (the right to be forgotten: :mod:`recsys_lambdas.deletion`)."""

from __future__ import annotations

import time
from typing import Any, Dict
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from recsys_lambdas import deletion, events_path
from recsys_lambdas.api.common import deps, json_response, logger, make_app, metrics, tracer
from recsys_lambdas.settings import ANSWER_RESERVE_S
from recsys_lambdas.validation import parameter_schema, parse_json_body, validate, validate_value

USER_PATH = "/users/{userId}"


def _delete_user(user_id: str) -> Response:
    validate_value(parameter_schema(USER_PATH, "DELETE", "userId"), user_id, "path parameter userId")
    result = deletion.forget_user(deps(), user_id)
    logger.info("DeleteUser", extra={"history_items": result.history_items,
                                     "batch_row": result.batch_recommendations})
    return json_response(200, result.to_json())


app = make_app(unrouted={"DeleteUser": _delete_user})


@app.post("/events")
def put_events() -> Response:
    body = validate("PutEventsRequest", parse_json_body(app.current_event.raw_event))
    d = deps()
    # the Lambda's own deadline, less the time to shape and send the answer
    d.deadline = time.monotonic() + app.lambda_context.get_remaining_time_in_millis() / 1000 - ANSWER_RESERVE_S
    outcomes = events_path.put_events(d, body)
    logger.info("PutEvents", extra={"events": len(outcomes),
                                    "accepted": sum(o.status == "ACCEPTED" for o in outcomes)})
    return json_response(200, {"eventResults": [o.to_json() for o in outcomes], "failedEventCount": 0})


@app.delete("/users/<userId>")
def delete_user(userId: str) -> Response:
    # API Gateway puts the decoded value in pathParameters; the router saw the raw path
    return _delete_user((app.current_event.path_parameters or {}).get("userId") or unquote(userId))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: Dict[str, Any], context: LambdaContext) -> Dict[str, Any]:
    """API Gateway (REST, proxy) entry point."""
    return app.resolve(event, context)
