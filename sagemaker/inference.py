"""SageMaker scikit-learn container hooks for the real-time endpoint (and the local endpoint).

``model_fn`` loads the model once per worker; each request goes ``input_fn`` -> ``predict_fn`` ->
``output_fn``. Requests and responses follow :mod:`recsys.protocol`. A client error comes back as
a JSON ``error`` object, not an exception, so callers can tell it from a model failure.

SageMaker Batch Transform sends ``application/jsonlines``: one or more Personalize batch input
lines per request (``SplitType: Line``, ``BatchStrategy: MultiRecord``); the answer is one
Personalize output line per input line, in order (:mod:`recsys.batch_inference`). The transform
job's environment picks the job (``RECSYS_BATCH_JOB``: users, items or ranking) and
``RECSYS_BATCH_NUM_RESULTS`` (default 25).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from recsys import batch_inference, protocol
from recsys.model import Recommender

JSON = "application/json"
JSONLINES = "application/jsonlines"


class _BadInput:
    def __init__(self, message: str) -> None:
        self.message = message


class _Lines:
    """A Batch Transform request: its lines, answered as Personalize batch output lines."""

    def __init__(self, lines: List[str]) -> None:
        self.lines = lines


class _LinesOut:
    def __init__(self, lines: List[str]) -> None:
        self.lines = lines


def model_fn(model_dir: str) -> Recommender:
    model = Recommender.load(model_dir)
    setattr(model, "_model_dir", model_dir)  # noqa: B010 (read by _histories)
    return model


def _histories(model: Recommender) -> Dict[str, List[str]]:
    """The model's ``histories.jsonl``, read on the first batch request only (an endpoint's
    requests carry their own history and never load it)."""
    cached = getattr(model, "_batch_histories", None)
    if cached is None:
        model_dir = getattr(model, "_model_dir", None)
        cached = batch_inference.load_histories(Path(model_dir) / batch_inference.HISTORIES_FILE) \
            if model_dir else {}
        setattr(model, "_batch_histories", cached)  # noqa: B010
    return cached


def input_fn(request_body: Any, request_content_type: str = JSON) -> Any:
    content_type = (request_content_type or JSON).split(";")[0].strip().lower()
    if content_type not in (JSON, "application/x-recsys+json", JSONLINES):
        return _BadInput(f"Content-Type must be {JSON} or {JSONLINES}, got {request_content_type!r}")
    if isinstance(request_body, (bytes, bytearray)):
        try:
            request_body = request_body.decode("utf-8")
        except UnicodeDecodeError:
            return _BadInput("request body is not UTF-8")
    if content_type == JSONLINES:
        return _Lines(str(request_body).splitlines())
    try:
        return json.loads(request_body)
    except (TypeError, ValueError) as exc:
        return _BadInput(f"request body is not valid JSON ({exc})")


def predict_fn(input_data: Any, model: Recommender) -> Union[dict, _LinesOut]:
    if isinstance(input_data, _BadInput):
        return protocol.error_response(protocol.InvalidRequest(input_data.message), model.model_version)
    if isinstance(input_data, _Lines):
        # a bad job or numResults is the transform job's configuration: fail the request loudly
        job = os.environ.get(batch_inference.ENV_JOB, "users")
        num_results = os.environ.get(batch_inference.ENV_NUM_RESULTS, str(batch_inference.DEFAULT_NUM_RESULTS))
        return _LinesOut(list(batch_inference.transform_lines(model, input_data.lines, job, num_results,
                                                              _histories(model))))
    return model.handle(input_data)


def output_fn(prediction: Union[dict, _LinesOut], accept: str = JSON) -> Tuple[str, str]:
    if isinstance(prediction, _LinesOut):
        # no trailing newline: AssembleWith Line adds one after each response
        return "\n".join(prediction.lines), JSONLINES
    return json.dumps(prediction, separators=(",", ":")), JSON
