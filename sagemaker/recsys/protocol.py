"""The endpoint's request/response contract: what a caller sends to ``POST /invocations``.

This module is the one home of that contract. It is pure Python (no third-party imports) so the
SageMaker container, the CLI, the local stack and the tests can all import it; the Lambda side
builds the same dicts (``recsys_lambdas.endpoint_client``) and a test checks them against
:func:`parse_request`.

Requests (JSON object, ``Content-Type: application/json``)::

    {"action": "recommend", "history": ["i1", "i2"], "k": 10, "userId": "u1",
     "filters": {"excludeItemIds": [], "includeCategories": [], "excludeCategories": []},
     "context": {"recentItems": ["i9"]}}
    {"action": "similar", "itemId": "i1", "k": 10, "filters": {...}}
    {"action": "rank",    "history": [...], "itemIds": ["i3", "i4"]}
    {"action": "search",  "query": "star wars", "k": 10, "history": [...], "filters": {...}}
    {"action": "popular", "k": 10, "filters": {...}}

``history`` is ordered oldest -> newest. ``userId`` (optional, on ``recommend``, ``rank`` and
``search``) selects the user's attributes for a model trained with a users file; a model
without user attributes, or an unknown id, ignores it. Responses::

    {"items": [{"itemId": "i3", "score": 0.91}, ...], "modelVersion": "20261130T...-abc123"}
    {"error": {"type": "ItemNotFound" | "InvalidRequest" | "NotSupported", "message": "..."}, "modelVersion": ...}

A client error is answered with an ``error`` object (HTTP 200 from the container) rather than an
exception, because the SageMaker container turns exceptions into a 5xx ``ModelError`` that the
caller could not tell apart from a real fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

ACTIONS = ("recommend", "similar", "rank", "search", "popular")
MAX_K = 500
MAX_HISTORY = 500
MAX_RANK_ITEMS = 500
MAX_QUERY_CHARS = 256
MAX_USER_ID_CHARS = 256
FILTER_KEYS = ("excludeItemIds", "includeCategories", "excludeCategories")


class InvalidRequest(ValueError):
    """A request that breaks the contract; the message says which field and why."""

    error_type = "InvalidRequest"


class NotSupported(InvalidRequest):
    """A request this model cannot answer (e.g. search on a model trained without titles)."""

    error_type = "NotSupported"


class ItemNotFound(KeyError):
    """An item id the model does not know, where the request depends on it."""

    error_type = "ItemNotFound"

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "item not found"


@dataclass(frozen=True)
class Filters:
    exclude_item_ids: frozenset = frozenset()
    include_categories: frozenset = frozenset()
    exclude_categories: frozenset = frozenset()

    @classmethod
    def from_json(cls, raw: Any, where: str = "filters") -> Filters:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{where} must be an object, got {type(raw).__name__}")
        unknown = set(raw) - set(FILTER_KEYS)
        if unknown:
            raise InvalidRequest(f"{where} has unknown keys {sorted(unknown)}; allowed: {list(FILTER_KEYS)}")
        values = {}
        for key in FILTER_KEYS:
            values[key] = frozenset(_string_list(raw.get(key, []), f"{where}.{key}", 10_000))
        return cls(values["excludeItemIds"], values["includeCategories"], values["excludeCategories"])

    def to_json(self) -> Dict[str, List[str]]:
        return {
            "excludeItemIds": sorted(self.exclude_item_ids),
            "includeCategories": sorted(self.include_categories),
            "excludeCategories": sorted(self.exclude_categories),
        }


@dataclass(frozen=True)
class Request:
    action: str
    k: int = 10
    history: List[str] = field(default_factory=list)
    item_id: Optional[str] = None
    item_ids: List[str] = field(default_factory=list)
    query: Optional[str] = None
    filters: Filters = field(default_factory=Filters)
    context: Dict[str, Any] = field(default_factory=dict)
    user_id: Optional[str] = None


def _string_list(raw: Any, where: str, max_len: int) -> List[str]:
    if not isinstance(raw, list):
        raise InvalidRequest(f"{where} must be a list of strings, got {type(raw).__name__}")
    if len(raw) > max_len:
        raise InvalidRequest(f"{where} has {len(raw)} entries; at most {max_len} allowed")
    for i, value in enumerate(raw):
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{where}[{i}] must be a non-empty string")
    return list(raw)


def _k(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidRequest(f"k must be an integer between 1 and {MAX_K}")
    if not 1 <= raw <= MAX_K:
        raise InvalidRequest(f"k must be between 1 and {MAX_K}, got {raw}")
    return raw


def parse_request(body: Any) -> Request:
    """Validate a decoded JSON request and return a :class:`Request`.

    Raises:
        InvalidRequest: naming the offending field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    action = body.get("action")
    if action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {list(ACTIONS)}, got {action!r}")
    k = _k(body.get("k", 10))
    history = _string_list(body.get("history", []), "history", MAX_HISTORY)
    filters = Filters.from_json(body.get("filters"))
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidRequest("context must be an object")
    if "recentItems" in context:
        _string_list(context["recentItems"], "context.recentItems", MAX_HISTORY)
    user_id = body.get("userId")
    if user_id is not None and (not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_CHARS):
        raise InvalidRequest(f"userId must be a non-empty string of at most {MAX_USER_ID_CHARS} characters")
    item_id = None
    item_ids: List[str] = []
    query = None
    if action == "similar":
        item_id = body.get("itemId")
        if not isinstance(item_id, str) or not item_id:
            raise InvalidRequest("itemId must be a non-empty string for action 'similar'")
    elif action == "rank":
        item_ids = _string_list(body.get("itemIds"), "itemIds", MAX_RANK_ITEMS)
    elif action == "search":
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequest("query must be a non-empty string for action 'search'")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"query has {len(query)} characters; at most {MAX_QUERY_CHARS} allowed")
    return Request(action=action, k=k, history=history, item_id=item_id, item_ids=item_ids,
                   query=query, filters=filters, context=dict(context), user_id=user_id)


def error_response(exc: Exception, model_version: Optional[str] = None) -> Dict[str, Any]:
    return {
        "error": {"type": getattr(exc, "error_type", "InvalidRequest"), "message": str(exc)},
        "modelVersion": model_version,
    }
