"""The API's logic as plain functions: validated request dict in, result out.

Every function takes a :class:`Deps` (settings, AWS clients, a metric sink, a clock), so tests
drive it with moto-backed clients, Stubbers, or the project's real inference code behind the
``sagemaker-runtime`` client. Handlers in :mod:`recsys_lambdas.api` only parse and shape.

Degradation (``degraded: true``): when the endpoint errors, throttles, times out, is missing, or
no endpoint is configured (batch mode), recommendations come from the user's row of the
batch-recommendations table, topped up from the popular row, with the user's recent history and
the request's filters applied. DynamoDB throttling past the retry budget is a 503.

The event path (PutEvents) lives in :mod:`recsys_lambdas.events_path`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from recsys_lambdas import contracts, endpoint_client, feature_store
from recsys_lambdas.endpoint_client import EndpointUnavailable, Scored
from recsys_lambdas.errors import (
    InvalidInput,
    ResourceNotFound,
    ServiceUnavailable,
)
from recsys_lambdas.settings import DEFAULT_NUM_RESULTS, Settings

FilterDict = Dict[str, List[str]]
METADATA_COLUMNS = ("title", "category")


def _no_metric(name: str, value: float = 1.0) -> None:
    return None


@dataclass
class Deps:
    """What the logic needs from the outside world; clients are fetched lazily when provided as
    factories so that a request that never calls the endpoint never creates its client."""

    settings: Settings
    ddb_factory: Callable[[], Any]
    smr_factory: Callable[[], Any] = lambda: None
    firehose_factory: Callable[[], Any] = lambda: None
    s3_factory: Callable[[], Any] = lambda: None
    metric: Callable[..., None] = _no_metric
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    notes: Dict[str, Any] = field(default_factory=dict)  # facts for the handler's log line
    deadline: float = math.inf  # time.monotonic() by which the answer must be on its way

    def remaining_s(self) -> float:
        """Seconds left before :attr:`deadline` (infinite when no deadline is set)."""
        return self.deadline - time.monotonic()

    @property
    def ddb(self) -> Any:
        return self.ddb_factory()

    @property
    def smr(self) -> Any:
        return self.smr_factory()

    @property
    def firehose(self) -> Any:
        return self.firehose_factory()

    @property
    def s3(self) -> Any:
        return self.s3_factory()


@dataclass(frozen=True)
class Recommendations:
    """An answer: scored items best first, which model answered, and whether it was a fallback."""

    items: Scored
    model_version: str
    degraded: bool
    recommendation_id: str = field(default_factory=lambda: f"RID-{uuid.uuid4()}")
    metadata: Optional[Dict[str, Dict[str, str]]] = None


# --- request pieces -----------------------------------------------------------------------


def context_items(context: Optional[Dict[str, str]]) -> Tuple[List[str], Dict[str, str]]:
    """Split Personalize's string-map ``context`` into the recent items it carries and the rest.

    ``recentItems`` is a JSON array string (``'["i1","i2"]'``) or comma-separated (``'i1,i2'``),
    oldest first. Anything the schema allows is accepted (the document is the contract): a value
    that is not a JSON array of strings is read as comma-separated, and ids longer than 256
    characters are dropped (no item has one).
    """
    if not context:
        return [], {}
    rest = {k: v for k, v in context.items() if k != "recentItems"}
    raw = context.get("recentItems")
    if raw is None or not raw.strip():
        return [], rest
    items: List[str] = []
    parsed: Any = None
    if raw.lstrip().startswith("["):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    if isinstance(parsed, list) and all(isinstance(i, str) for i in parsed):
        items = [i for i in parsed if i]
    else:
        items = [part.strip() for part in raw.split(",") if part.strip()]
    return [i for i in items if len(i) <= 256], rest


def _filter_value_list(raw: str) -> List[str]:
    # Personalize filter values look like "\"a\",\"b\""; plain "a,b" is accepted too
    return [part.strip().strip('"').strip() for part in raw.split(",") if part.strip().strip('"').strip()]


def resolve_filters(settings: Settings, request: Dict[str, Any]) -> FilterDict:
    """Combine the request's ``filter`` extension and its named filter (``filterArn``).

    Raises:
        ResourceNotFound: ``filterArn`` names no configured filter.
        InvalidInput: a placeholder of the named filter has no value in ``filterValues``.
    """
    out: Dict[str, Set[str]] = {k: set() for k in endpoint_client.FILTER_KEYS}
    for key, values in (request.get("filter") or {}).items():
        out[key].update(values)
    arn = request.get("filterArn")
    if arn:
        name = arn.rsplit("/", 1)[-1] if "filter/" in arn else ""
        spec = settings.named_filters.get(name)
        if spec is None:
            known = sorted(settings.named_filters)
            raise ResourceNotFound(f"filterArn {arn!r} names no configured filter (configured: {known})")
        values = request.get("filterValues") or {}
        for key in endpoint_client.FILTER_KEYS:
            for entry in spec.get(key, []):
                if isinstance(entry, str) and entry.startswith("$"):
                    param = entry[1:]
                    if param not in values:
                        raise InvalidInput(f"filterValues.{param} is required by filter {name!r}")
                    out[key].update(_filter_value_list(values[param]))
                else:
                    out[key].add(str(entry))
    # filterValues without filterArn select nothing and are ignored (the schema allows them)
    return {k: sorted(v) for k, v in out.items()}


def _num_results(request: Dict[str, Any]) -> int:
    return int(request.get("numResults") or DEFAULT_NUM_RESULTS)


def _with_history(history: Sequence[str], recent: Sequence[str]) -> List[str]:
    merged = list(history) + list(recent)
    return merged[-endpoint_client.MAX_HISTORY:]


# --- degraded path ------------------------------------------------------------------------


def _needs_categories(filters: FilterDict) -> bool:
    return bool(filters.get("includeCategories") or filters.get("excludeCategories"))


def apply_filters(deps: Deps, scored: Scored, filters: FilterDict, exclude: Set[str] = frozenset()) -> Scored:  # type: ignore[assignment]
    """Drop excluded ids and items outside the category filters (categories from the items table)."""
    banned = set(exclude) | set(filters.get("excludeItemIds", []))
    kept = [(i, s) for i, s in scored if i not in banned]
    if not _needs_categories(filters) or not kept:
        return kept
    info = feature_store.get_items(deps.ddb, deps.settings.items_table, [i for i, _ in kept])
    include = set(filters.get("includeCategories", []))
    excluded_cats = set(filters.get("excludeCategories", []))

    def ok(item_id: str) -> bool:
        category = info.get(item_id, {}).get("category", "")
        return (not include or category in include) and category not in excluded_cats

    return [(i, s) for i, s in kept if ok(i)]


def fallback(deps: Deps, user_id: Optional[str], k: int, filters: FilterDict, exclude: Set[str],
             reason: str) -> Recommendations:
    """Answer from the batch-recommendations table: the user's row, then the popular row.

    Raises:
        ServiceUnavailable: neither row exists (no pipeline run has loaded batch data yet).
    """
    deps.settings.require("batch_table")
    deps.metric("DegradedResponses")
    deps.notes["degraded_reason"] = reason
    rows = feature_store.get_batch_recommendations(deps.ddb, deps.settings.batch_table, user_id)
    if not rows:
        raise ServiceUnavailable(
            f"no recommendations available: the model could not answer ({reason}) and no batch "
            "recommendations are loaded yet", retry_after_s=30)
    seen: Set[str] = set()
    merged: Scored = []
    for row in rows:
        for item_id, score in row.items:
            if item_id not in seen:
                seen.add(item_id)
                merged.append((item_id, score))
    kept = apply_filters(deps, merged, filters, exclude)
    return Recommendations(items=kept[:k], model_version=rows[0].model_version, degraded=True)


def _endpoint(deps: Deps, request: Dict[str, Any]) -> endpoint_client.EndpointAnswer:
    try:
        return endpoint_client.invoke(deps.smr, deps.settings.endpoint_name, request)
    except EndpointUnavailable as exc:
        deps.metric("EndpointErrors")
        deps.notes["endpoint_error"] = str(exc)[:300]
        raise


# --- operations ---------------------------------------------------------------------------


def _metadata(deps: Deps, request: Dict[str, Any], items: Scored) -> Optional[Dict[str, Dict[str, str]]]:
    columns = (request.get("metadataColumns") or {}).get("ITEMS")
    if not columns:
        return None
    deps.settings.require("items_table")
    info = feature_store.get_items(deps.ddb, deps.settings.items_table, [i for i, _ in items])
    return {i: {c: info.get(i, {}).get(c, "") for c in columns} for i, _ in items}


def get_recommendations(deps: Deps, request: Dict[str, Any]) -> Recommendations:
    """GetRecommendations: for a user (``userId``) or related to an item (``itemId``)."""
    k = _num_results(request)
    filters = resolve_filters(deps.settings, request)
    recent, other_context = context_items(request.get("context"))
    user_id = request.get("userId")
    history: List[str] = []
    if user_id:
        deps.settings.require("users_table")
        history = feature_store.get_history(deps.ddb, deps.settings.users_table, user_id, consistent=True).items
    history = _with_history(history, recent)
    if request.get("itemId"):
        result = similar_items(deps, request["itemId"], k, filters, exclude=set(history))
    else:
        result = _recommend_for_user(deps, user_id or "", history, k, filters, other_context)
    if request.get("metadataColumns"):
        result = Recommendations(result.items, result.model_version, result.degraded,
                                 result.recommendation_id, _metadata(deps, request, result.items))
    return result


def _recommend_for_user(deps: Deps, user_id: str, history: List[str], k: int, filters: FilterDict,
                        context: Dict[str, str]) -> Recommendations:
    reason = "no endpoint configured"
    if deps.settings.realtime:
        try:
            answer = _endpoint(deps, endpoint_client.recommend_request(history, k, filters, context, user_id or None))
            # the model already drops the history; this guards the contract the API promises
            items = [(i, s) for i, s in answer.items if i not in set(filters["excludeItemIds"])]
            return Recommendations(items=items[:k], model_version=answer.model_version, degraded=False)
        except EndpointUnavailable as exc:
            reason = exc.reason
    return fallback(deps, user_id, k, filters, exclude=set(history), reason=reason)


def similar_items(deps: Deps, item_id: str, k: int, filters: Optional[FilterDict] = None,
                  exclude: Set[str] = frozenset()) -> Recommendations:  # type: ignore[assignment]
    """Items related to ``item_id``, never the item itself.

    Raises:
        ResourceNotFound: the item is unknown to the model (or to the items table when degraded).
    """
    filters = dict(filters or {k_: [] for k_ in endpoint_client.FILTER_KEYS})
    banned = set(exclude) | set(filters.get("excludeItemIds", [])) | {item_id}
    filters["excludeItemIds"] = sorted(banned)
    reason = "no endpoint configured"
    if deps.settings.realtime:
        try:
            answer = _endpoint(deps, endpoint_client.similar_request(item_id, k, filters))
            items = [(i, s) for i, s in answer.items if i not in banned]
            return Recommendations(items=items[:k], model_version=answer.model_version, degraded=False)
        except EndpointUnavailable as exc:
            reason = exc.reason
    deps.settings.require("items_table")
    if not feature_store.item_exists(deps.ddb, deps.settings.items_table, item_id):
        raise ResourceNotFound(f"item {item_id!r} not found")
    return fallback(deps, None, k, filters, exclude=banned, reason=reason)


def personalized_ranking(deps: Deps, request: Dict[str, Any]) -> Recommendations:
    """GetPersonalizedRanking: exactly the input items (minus filtered ones), best first.

    Raises:
        InvalidInput: ``inputList`` repeats an item id.
    """
    input_list: List[str] = request["inputList"]
    first: Dict[str, int] = {}
    for pos, item_id in enumerate(input_list):
        if item_id in first:
            raise InvalidInput(f"body.inputList[{pos}] repeats item {item_id!r} (first at index {first[item_id]})")
        first[item_id] = pos
    filters = resolve_filters(deps.settings, request)
    recent, _ = context_items(request.get("context"))
    deps.settings.require("users_table")
    history = feature_store.get_history(deps.ddb, deps.settings.users_table, request["userId"], consistent=True).items
    history = _with_history(history, recent)
    ranked: Optional[Scored] = None
    model_version = ""
    degraded = False
    if deps.settings.realtime:
        try:
            answer = _endpoint(deps, endpoint_client.rank_request(history, input_list, request["userId"]))
            ranked, model_version = answer.items, answer.model_version
        except EndpointUnavailable as exc:
            deps.notes["degraded_reason"] = exc.reason
    if ranked is None:
        degraded = True
        deps.metric("DegradedResponses")
        ranked, model_version = _rank_from_batch(deps, request["userId"], input_list)
    # exactly the input items: drop strays, append what the model left out in input order
    seen: Set[str] = set()
    ordered: Scored = []
    for item_id, score in ranked:
        if item_id in first and item_id not in seen:
            seen.add(item_id)
            ordered.append((item_id, score))
    ordered += [(i, 0.0) for i in input_list if i not in seen]
    ordered = apply_filters(deps, ordered, filters)
    result = Recommendations(items=ordered, model_version=model_version, degraded=degraded)
    if request.get("metadataColumns"):
        result = Recommendations(result.items, result.model_version, result.degraded,
                                 result.recommendation_id, _metadata(deps, request, result.items))
    return result


def _rank_from_batch(deps: Deps, user_id: str, input_list: List[str]) -> Tuple[Scored, str]:
    """Order by the user's batch row, then the popular row, then input order."""
    deps.settings.require("batch_table")
    rows = feature_store.get_batch_recommendations(deps.ddb, deps.settings.batch_table, user_id)
    position: Dict[str, Tuple[int, int]] = {}
    for tier, row in enumerate(rows):
        for pos, (item_id, _) in enumerate(row.items):
            position.setdefault(item_id, (tier, pos))
    fallback_key = (len(rows), 0)
    order = sorted(range(len(input_list)), key=lambda i: (position.get(input_list[i], fallback_key), i))
    n = len(input_list)
    scored = [(input_list[i], round((n - rank) / n, 6)) for rank, i in enumerate(order)]
    return scored, (rows[0].model_version if rows else "none")


def search(deps: Deps, query: str, k: int, user_id: Optional[str]) -> Recommendations:
    """Text search, personalised by the user's history when ``user_id`` is given; degraded to a
    word match over the batch table's search rows when the endpoint fails or there is none."""
    reason = "no endpoint configured"
    if deps.settings.realtime:
        history: List[str] = []
        if user_id:
            deps.settings.require("users_table")
            history = feature_store.get_history(deps.ddb, deps.settings.users_table, user_id, consistent=True).items
        try:
            answer = _endpoint(deps, endpoint_client.search_request(query.strip(), k, history, user_id=user_id))
            return Recommendations(items=answer.items[:k], model_version=answer.model_version, degraded=False)
        except EndpointUnavailable as exc:
            reason = exc.reason
    return degraded_search(deps, query, k, reason)


def degraded_search(deps: Deps, query: str, k: int, reason: str) -> Recommendations:
    """Items whose title or category has the query's words: most words matched first, then the most
    popular. Whole words only (no typos, no prefixes) and not personalised.

    Raises:
        ServiceUnavailable: no batch data is loaded yet (not even the popular row).
    """
    deps.settings.require("batch_table")
    deps.metric("DegradedResponses")
    deps.notes["degraded_reason"] = reason
    words = contracts.search_tokens(query)[:contracts.MAX_SEARCH_WORDS]
    rows = feature_store.get_batch_rows(deps.ddb, deps.settings.batch_table,
                                        [contracts.SEARCH_ROW_PREFIX + w for w in words] + [contracts.POPULAR_USER_ID])
    if not rows or rows[-1].user_id != contracts.POPULAR_USER_ID:
        raise ServiceUnavailable(
            f"search is unavailable: the model could not answer ({reason}) and no batch data is loaded yet",
            retry_after_s=30)
    matched: Dict[str, int] = {}
    popularity: Dict[str, float] = {}
    for row in rows[:-1]:
        for item_id, score in row.items:
            matched[item_id] = matched.get(item_id, 0) + 1
            popularity[item_id] = score
    best = sorted(matched, key=lambda i: (-matched[i], -popularity[i]))[:k]
    return Recommendations(items=[(i, round(matched[i] / len(words), 6)) for i in best],
                           model_version=rows[-1].model_version, degraded=True)

