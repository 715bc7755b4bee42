"""Calls to the SageMaker endpoint, in the request/response contract of ``recsys.protocol``.

The Lambda package does not ship the ML core, so the requests are built here as plain dicts with
the same keys; ``tests/lambdas/test_endpoint_client.py`` runs ``recsys.protocol.parse_request``
over every request this module builds.

Outcomes of :func:`invoke`:
- a list of ``(item_id, score)`` and the model version;
- ``ResourceNotFound`` / ``InvalidInput`` when the model answers with a client error
  (``{"error": {"type": "ItemNotFound" | "InvalidRequest"}}``), so the API answers 404 / 400;
- :class:`EndpointUnavailable` for everything that means "no answer from the model now"
  (ModelError, throttling, timeouts, connection errors, a missing endpoint, a garbled answer):
  the caller falls back to the batch recommendations.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from botocore.exceptions import BotoCoreError, ClientError

from recsys_lambdas.errors import InvalidInput, NotImplementedByModel, ResourceNotFound

# Mirrors recsys.protocol (asserted by the tests): the endpoint rejects longer lists.
MAX_HISTORY = 500
MAX_K = 500
FILTER_KEYS = ("excludeItemIds", "includeCategories", "excludeCategories")

Scored = List[Tuple[str, float]]


class EndpointUnavailable(Exception):
    """The endpoint gave no usable answer; ``reason`` is a short metric-friendly label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class EndpointAnswer:
    items: Scored
    model_version: str


def _filters(filters: Optional[Mapping[str, Sequence[str]]]) -> Dict[str, List[str]]:
    filters = filters or {}
    return {key: sorted(set(filters.get(key, ()))) for key in FILTER_KEYS}


def _history(history: Sequence[str]) -> List[str]:
    return list(history)[-MAX_HISTORY:]  # newest last: keep the most recent


def _with_user(body: Dict[str, Any], user_id: Optional[str]) -> Dict[str, Any]:
    """``userId`` for a model trained with user attributes (it reads them by id); omitted when None."""
    if user_id:
        body["userId"] = user_id
    return body


def recommend_request(history: Sequence[str], k: int, filters: Optional[Mapping[str, Sequence[str]]] = None,
                      context: Optional[Dict[str, Any]] = None, user_id: Optional[str] = None) -> Dict[str, Any]:
    """Body of a ``recommend`` request (history oldest -> newest)."""
    body: Dict[str, Any] = {"action": "recommend", "history": _history(history), "k": int(k),
                            "filters": _filters(filters)}
    if context:
        body["context"] = dict(context)
    return _with_user(body, user_id)


def similar_request(item_id: str, k: int, filters: Optional[Mapping[str, Sequence[str]]] = None) -> Dict[str, Any]:
    """Body of a ``similar`` request."""
    return {"action": "similar", "itemId": item_id, "k": int(k), "filters": _filters(filters)}


def rank_request(history: Sequence[str], item_ids: Sequence[str], user_id: Optional[str] = None) -> Dict[str, Any]:
    """Body of a ``rank`` request."""
    return _with_user({"action": "rank", "history": _history(history), "itemIds": list(item_ids)}, user_id)


def search_request(query: str, k: int, history: Sequence[str] = (),
                   filters: Optional[Mapping[str, Sequence[str]]] = None, user_id: Optional[str] = None) -> Dict[str, Any]:
    """Body of a ``search`` request."""
    return _with_user({"action": "search", "query": query, "k": int(k), "history": _history(history),
                       "filters": _filters(filters)}, user_id)


def popular_request(k: int, filters: Optional[Mapping[str, Sequence[str]]] = None) -> Dict[str, Any]:
    """Body of a ``popular`` request."""
    return {"action": "popular", "k": int(k), "filters": _filters(filters)}


def _score(value: Any) -> float:
    score = float(value)
    return score if math.isfinite(score) else 0.0


def parse_answer(payload: bytes, action: str) -> EndpointAnswer:
    """Decode the endpoint's JSON answer.

    Raises:
        ResourceNotFound: the model does not know an item the request depends on.
        InvalidInput: the model rejected the request as invalid.
        NotImplementedByModel: the model has no support for ``action`` (e.g. no text index).
        EndpointUnavailable: the answer is not in the protocol's shape.
    """
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EndpointUnavailable("BadResponse", f"endpoint answer is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EndpointUnavailable("BadResponse", "endpoint answer is not a JSON object")
    error = body.get("error")
    if isinstance(error, dict):
        kind = error.get("type")
        message = str(error.get("message") or kind)
        if kind == "ItemNotFound":
            raise ResourceNotFound(message)
        if kind == "NotSupported" or (action == "search" and "no text index" in message):
            # the protocol has no error type for a missing capability yet; see docs/API.md
            raise NotImplementedByModel(message)
        if kind == "InvalidRequest":
            raise InvalidInput(message)
        raise EndpointUnavailable("ModelError", f"endpoint error {kind}: {message}")
    items = body.get("items")
    if not isinstance(items, list):
        raise EndpointUnavailable("BadResponse", "endpoint answer has no 'items' list")
    try:
        scored = [(str(entry["itemId"]), _score(entry.get("score", 0.0))) for entry in items]
    except (TypeError, KeyError, ValueError) as exc:
        raise EndpointUnavailable("BadResponse", f"malformed item in endpoint answer: {exc}") from None
    return EndpointAnswer(items=scored, model_version=str(body.get("modelVersion") or "unknown"))


def invoke(smr: Any, endpoint_name: str, request: Dict[str, Any]) -> EndpointAnswer:
    """Send one protocol request to the endpoint and decode the answer (see :func:`parse_answer`)."""
    try:
        resp = smr.invoke_endpoint(
            EndpointName=endpoint_name, ContentType="application/json", Accept="application/json",
            Body=json.dumps(request).encode("utf-8"))
        payload = resp["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        raise EndpointUnavailable(code, str(exc)) from exc
    except BotoCoreError as exc:  # timeouts, connection errors
        raise EndpointUnavailable(type(exc).__name__, str(exc)) from exc
    return parse_answer(payload, request["action"])
