"""SageMaker scikit-learn container hooks for the real-time endpoint (and the local endpoint).

``model_fn`` loads the model once per worker; each request goes ``input_fn`` -> ``predict_fn`` ->
``output_fn``. Requests and responses follow :mod:`recsys.protocol`. A client error comes back as
a JSON ``error`` object, not an exception, so callers can tell it from a model failure.
"""

from __future__ import annotations

import json
from typing import Any, Tuple

from recsys import protocol
from recsys.model import Recommender

JSON = "application/json"


class _BadInput:
    def __init__(self, message: str) -> None:
        self.message = message


def model_fn(model_dir: str) -> Recommender:
    return Recommender.load(model_dir)


def input_fn(request_body: Any, request_content_type: str = JSON) -> Any:
    content_type = (request_content_type or JSON).split(";")[0].strip().lower()
    if content_type not in (JSON, "application/x-recsys+json"):
        return _BadInput(f"Content-Type must be {JSON}, got {request_content_type!r}")
    if isinstance(request_body, (bytes, bytearray)):
        try:
            request_body = request_body.decode("utf-8")
        except UnicodeDecodeError:
            return _BadInput("request body is not UTF-8")
    try:
        return json.loads(request_body)
    except (TypeError, ValueError) as exc:
        return _BadInput(f"request body is not valid JSON ({exc})")


def predict_fn(input_data: Any, model: Recommender) -> dict:
    if isinstance(input_data, _BadInput):
        return protocol.error_response(protocol.InvalidRequest(input_data.message), model.model_version)
    return model.handle(input_data)


def output_fn(prediction: dict, accept: str = JSON) -> Tuple[str, str]:
    return json.dumps(prediction, separators=(",", ":")), JSON
