"""DynamoDB reads and writes of the feature store (tables in :mod:`recsys_lambdas.contracts`),
with throttling retried under a time budget.

Functions take the low-level boto3 DynamoDB client as an argument, so tests pass a moto-backed
client or one wrapped in botocore's Stubber.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from recsys_lambdas import contracts
from recsys_lambdas.errors import ServiceUnavailable
from recsys_lambdas.settings import DYNAMODB_BUDGET_S

T = TypeVar("T")

# Error codes that mean "try again shortly" rather than "this request is wrong".
RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "LimitExceededException",
})
BACKOFF_BASE_S = 0.02
BACKOFF_CAP_S = 0.4


def is_retryable(exc: BaseException) -> bool:
    """True for throttling and transient faults of an AWS call."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") in RETRYABLE_CODES
    return isinstance(exc, (ConnectionError, ReadTimeoutError))


def with_backoff(call: Callable[[], T], *, what: str, budget_s: Optional[float] = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``; retry throttling with full-jitter exponential backoff within ``budget_s``.

    Raises:
        ServiceUnavailable: still throttled (or unreachable) when the budget is spent: the API
            answers 503 with ``Retry-After``.
    """
    deadline = time.monotonic() + (DYNAMODB_BUDGET_S if budget_s is None else budget_s)
    attempt = 0
    while True:
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            if not is_retryable(exc):
                raise
            delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** attempt)))
            attempt += 1
            if time.monotonic() + delay >= deadline:
                code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
                raise ServiceUnavailable(
                    f"{what} is unavailable ({code}) after {attempt} attempts; retry later",
                    retry_after_s=1) from exc
            sleep(delay)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, Decimal, str)) else 0.0


def _str_list(attr: Optional[Dict[str, Any]]) -> List[str]:
    if not attr:
        return []
    if "L" in attr:
        return [v["S"] for v in attr["L"] if "S" in v]
    if "SS" in attr:
        return list(attr["SS"])
    return []


def _num_list(attr: Optional[Dict[str, Any]]) -> List[float]:
    if not attr or "L" not in attr:
        return []
    return [float(v["N"]) for v in attr["L"] if "N" in v]


HISTORY_PROJECTION = "recentItems, recentTimestamps, version, mergedInto"


@dataclass(frozen=True)
class UserHistory:
    """A user's recent items (oldest first) as stored in the users table."""

    items: List[str]
    timestamps: List[float]
    version: Optional[int]  # None: no row yet, or a row written by the pipeline without one
    merged_into: Optional[str] = None  # an anonymous session's row: the user it was merged into

    @property
    def exists(self) -> bool:
        return bool(self.items) or self.version is not None


def get_history(ddb: Any, table: str, user_id: str, *, consistent: bool = False,
                budget_s: Optional[float] = None) -> UserHistory:
    """Read one user's recent history (one GetItem; throttling retried within ``budget_s``)."""
    resp = with_backoff(
        lambda: ddb.get_item(
            TableName=table, Key={contracts.USERS.partition_key: {"S": user_id}},
            ProjectionExpression=HISTORY_PROJECTION,
            ConsistentRead=consistent),
        what=f"DynamoDB table {table}", budget_s=budget_s)
    return history_from_item(resp.get("Item") or {})


def history_from_item(item: Dict[str, Any]) -> UserHistory:
    """A users-table row (low-level attribute values; ``{}`` for no row) as a history."""
    version = int(item["version"]["N"]) if "version" in item else None
    items = _str_list(item.get("recentItems"))
    stamps = _num_list(item.get("recentTimestamps"))
    if len(stamps) != len(items):  # rows from older writers may lack timestamps
        stamps = [0.0] * len(items)
    merged = item.get("mergedInto", {}).get("S")
    return UserHistory(items=items, timestamps=stamps, version=version, merged_into=merged)


@dataclass(frozen=True)
class BatchRecommendations:
    """One row of the batch-recommendations table."""

    user_id: str
    items: List[Tuple[str, float]]
    model_version: str


def _batch_row(item: Dict[str, Any]) -> BatchRecommendations:
    entries = []
    for entry in item.get("items", {}).get("L", []):
        fields = entry.get("M", {})
        if "itemId" in fields and "S" in fields["itemId"]:
            score = fields.get("score", {})
            entries.append((fields["itemId"]["S"], float(score.get("N", 0.0)) if "N" in score else 0.0))
    return BatchRecommendations(
        user_id=item[contracts.BATCH_RECOMMENDATIONS.partition_key]["S"],
        items=entries,
        model_version=item.get("modelVersion", {}).get("S", "batch"),
    )


def batch_get(ddb: Any, keys_by_table: Dict[str, List[Dict[str, Any]]],
              projection: Optional[Dict[str, str]] = None,
              consistent: Iterable[str] = (), budget_s: Optional[float] = None,
              ) -> Dict[str, List[Dict[str, Any]]]:
    """BatchGetItem over several tables in one round trip (more only for unprocessed keys).

    Tables named in ``consistent`` are read with strongly consistent reads. Unprocessed keys
    (DynamoDB's answer under throttling) are retried within the backoff budget.
    """
    strong = set(consistent)
    found: Dict[str, List[Dict[str, Any]]] = {t: [] for t in keys_by_table}
    pending: Dict[str, Any] = {}
    for table, keys in keys_by_table.items():
        if keys:
            spec: Dict[str, Any] = {"Keys": keys}
            if projection and table in projection:
                spec["ProjectionExpression"] = projection[table]
            if table in strong:
                spec["ConsistentRead"] = True
            pending[table] = spec

    def one_round() -> Dict[str, Any]:
        nonlocal pending
        resp = ddb.batch_get_item(RequestItems=pending)
        for table, items in resp.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        pending = resp.get("UnprocessedKeys") or {}
        if pending:
            # shaped like a throttle so with_backoff retries just the leftovers
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "unprocessed keys"}}, "BatchGetItem")
        return resp

    if pending:
        tables = ", ".join(sorted(pending))
        with_backoff(one_round, what=f"DynamoDB table(s) {tables}", budget_s=budget_s)
    return found


def get_batch_rows(ddb: Any, table: str, keys: Sequence[str]) -> List[BatchRecommendations]:
    """The rows of the batch-recommendations table with these keys, in the keys' order (absent
    keys skipped; at most 100 keys, one BatchGetItem)."""
    wanted = list(dict.fromkeys(keys))
    key = contracts.BATCH_RECOMMENDATIONS.partition_key
    rows = batch_get(ddb, {table: [{key: {"S": u}} for u in wanted]})[table]
    by_key = {r[key]["S"]: _batch_row(r) for r in rows}
    return [by_key[u] for u in wanted if u in by_key]


def get_batch_recommendations(ddb: Any, table: str, user_id: Optional[str]) -> List[BatchRecommendations]:
    """The user's precomputed row (if any) then the popular row (if any), in that order."""
    wanted = [user_id] if user_id and user_id != contracts.POPULAR_USER_ID else []
    return get_batch_rows(ddb, table, [*wanted, contracts.POPULAR_USER_ID])


def get_items(ddb: Any, table: str, item_ids: Iterable[str]) -> Dict[str, Dict[str, str]]:
    """Title and category of each known item id (unknown ids are absent), 100 keys per call."""
    ids = list(dict.fromkeys(item_ids))
    key = contracts.ITEMS.partition_key
    out: Dict[str, Dict[str, str]] = {}
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        rows = batch_get(ddb, {table: [{key: {"S": i}} for i in chunk]},
                         projection={table: "itemId, title, category"})[table]
        for row in rows:
            out[row[key]["S"]] = {
                "title": row.get("title", {}).get("S", ""),
                "category": row.get("category", {}).get("S", ""),
            }
    return out


def item_exists(ddb: Any, table: str, item_id: str) -> bool:
    """Whether the items table knows ``item_id`` (one GetItem)."""
    resp = with_backoff(
        lambda: ddb.get_item(TableName=table, Key={contracts.ITEMS.partition_key: {"S": item_id}},
                             ProjectionExpression="itemId"),
        what=f"DynamoDB table {table}")
    return "Item" in resp


def merge_history(old_items: Sequence[str], old_ts: Sequence[float],
                  new: Sequence[Tuple[str, float]], limit: int = contracts.MAX_RECENT_ITEMS,
                  ) -> Tuple[List[str], List[float]]:
    """Add ``new`` (item, timestamp) pairs to a history, ordered by time (stable), newest ``limit`` kept."""
    pairs = list(zip(old_items, old_ts)) + list(new)
    pairs.sort(key=lambda p: p[1])  # stable: equal timestamps keep arrival order
    pairs = pairs[-limit:]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def dropped_from_history(old_ts: Sequence[float], new: Sequence[Tuple[str, float]],
                         limit: int = contracts.MAX_RECENT_ITEMS) -> List[int]:
    """Indices of ``new`` pairs that :func:`merge_history` cuts off (older than the newest ``limit``)."""
    tagged = [(t, -1) for t in old_ts] + [(t, n) for n, (_, t) in enumerate(new)]
    tagged.sort(key=lambda p: p[0])  # stable, as merge_history
    cut = max(0, len(tagged) - limit)
    return sorted(n for _, n in tagged[:cut] if n >= 0)


def _n(value: float) -> Dict[str, str]:
    text = repr(float(value))
    return {"N": text[:-2] if text.endswith(".0") else text}


def history_update(table: str, user_id: str, before: UserHistory, items: List[str],
                   stamps: List[float], now: float) -> Dict[str, Any]:
    """A TransactWriteItems ``Update`` that replaces the history iff nobody else changed it.

    Optimistic concurrency on ``version`` makes read-merge-write atomic: a concurrent writer
    makes the condition fail and the caller re-reads and retries.
    """
    values: Dict[str, Any] = {
        ":items": {"L": [{"S": i} for i in items]},
        ":ts": {"L": [_n(t) for t in stamps]},
        ":now": _n(round(now, 3)),
        ":exp": {"N": str(int(now) + contracts.USER_TTL_DAYS * 86400)},
        ":next": {"N": str((before.version or 0) + 1)},
    }
    if before.version is None:
        condition = "attribute_not_exists(version)"
    else:
        condition = "version = :prev"
        values[":prev"] = {"N": str(before.version)}
    return {"Update": {
        "TableName": table,
        "Key": {contracts.USERS.partition_key: {"S": user_id}},
        "UpdateExpression": ("SET recentItems = :items, recentTimestamps = :ts, updatedAt = :now, "
                             "expiresAt = :exp, version = :next"),
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values,
    }}


def session_merge_update(table: str, session_key: str, before: UserHistory, user_id: str,
                         now: float) -> Dict[str, Any]:
    """A TransactWriteItems ``Update`` marking an anonymous session's row merged into ``user_id``,
    conditional on the row's ``version`` (an event added to the session meanwhile cancels it)."""
    values: Dict[str, Any] = {
        ":user": {"S": user_id},
        ":now": _n(round(now, 3)),
        ":next": {"N": str((before.version or 0) + 1)},
    }
    if before.version is None:
        condition = (f"attribute_exists({contracts.USERS.partition_key}) AND attribute_not_exists(version) "
                     "AND attribute_not_exists(mergedInto)")
    else:
        condition = "version = :prev AND attribute_not_exists(mergedInto)"
        values[":prev"] = {"N": str(before.version)}
    return {"Update": {
        "TableName": table,
        "Key": {contracts.USERS.partition_key: {"S": session_key}},
        "UpdateExpression": "SET mergedInto = :user, mergedAt = :now, version = :next",
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values,
    }}
