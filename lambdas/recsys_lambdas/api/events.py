"""Lambda handler for ``POST /events`` (Amazon Personalize PutEvents)."""

from __future__ import annotations

import time
from typing import Any, Dict

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from recsys_lambdas import events_path
from recsys_lambdas.api.common import deps, json_response, logger, make_app, metrics, tracer
from recsys_lambdas.settings import ANSWER_RESERVE_S
from recsys_lambdas.validation import parse_json_body, validate

app = make_app()


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: Dict[str, Any], context: LambdaContext) -> Dict[str, Any]:
    """API Gateway (REST, proxy) entry point."""
    return app.resolve(event, context)
