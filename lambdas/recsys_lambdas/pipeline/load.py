"""Load the pipeline's batch output into the DynamoDB feature store.

``batch/users.jsonl`` -> users table (merged with the real-time history the events API keeps),
``batch/items.jsonl`` -> items table, ``batch/recommendations.jsonl`` -> batch-recommendations
table (including the popular-items row, ``userId == contracts.POPULAR_USER_ID``).

:func:`load_records` is the one loader: the Lambda handler streams the files from the job's
``output.tar.gz`` in S3, the local stack passes local files.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from recsys_lambdas import contracts
from recsys_lambdas.pipeline import artifacts
from recsys_lambdas.pipeline.artifacts import ArtifactError

# records key (batch/<name>.jsonl) -> contract table
TABLE_FOR_RECORDS = {
    "users": contracts.USERS,
    "items": contracts.ITEMS,
    "recommendations": contracts.BATCH_RECOMMENDATIONS,
}
ENV_TABLES = {
    "users": contracts.ENV_USERS_TABLE,
    "items": contracts.ENV_ITEMS_TABLE,
    "recommendations": contracts.ENV_BATCH_TABLE,
}
_BATCH_TTL_ATTRIBUTE = contracts.BATCH_RECOMMENDATIONS.ttl_attribute or "expiresAt"
_USER_TTL_ATTRIBUTE = contracts.USERS.ttl_attribute or "expiresAt"
BATCH_GET_SIZE = 100  # DynamoDB BatchGetItem limit
MAX_CONFLICT_RETRIES = 5


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ArtifactError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ArtifactError(f"{where}: expected a finite number, got {value!r}")
    # str() keeps the float's shortest repr; DynamoDB rejects Decimal(float) noise beyond 38 digits
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _string(record: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ArtifactError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def item_row(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An items-table row from a ``batch/items.jsonl`` record (extra scalar fields kept)."""
    row: dict[str, Any] = {contracts.ITEMS.partition_key: _string(record, "itemId", where)}
    row["title"] = _string(record, "title", where, required=False)
    row["category"] = _string(record, "category", where, required=False)
    for key in ("popularity", "trend"):
        row[key] = _decimal(record.get(key, 0), f"{where}.{key}")
    for key, value in record.items():
        if key in row or value is None:
            continue
        if isinstance(value, str) and value:
            row[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = _decimal(value, f"{where}.{key}")
    return row


def recommendation_row(record: Mapping[str, Any], where: str, expires_at: int) -> dict[str, Any]:
    """A batch-recommendations row from a ``batch/recommendations.jsonl`` record."""
    items = record.get("items")
    if not isinstance(items, list):
        raise ArtifactError(f"{where}: 'items' must be a list, got {items!r}")
    entries = []
    for i, entry in enumerate(items):
        if not isinstance(entry, Mapping):
            raise ArtifactError(f"{where}.items[{i}]: expected {{itemId, score}}, got {entry!r}")
        entries.append(
            {
                "itemId": _string(entry, "itemId", f"{where}.items[{i}]"),
                "score": _decimal(entry.get("score", 0), f"{where}.items[{i}].score"),
            }
        )
    return {
        contracts.BATCH_RECOMMENDATIONS.partition_key: _string(record, "userId", where),
        "items": entries,
        "modelVersion": _string(record, "modelVersion", where, required=False) or "batch",
        _BATCH_TTL_ATTRIBUTE: expires_at,
    }


def user_history(record: Mapping[str, Any], where: str) -> tuple[str, list[tuple[str, float]]]:
    """``(userId, [(itemId, timestamp), ...])`` from a ``batch/users.jsonl`` record."""
    user_id = _string(record, "userId", where)
    items = record.get("recentItems")
    stamps = record.get("recentTimestamps")
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise ArtifactError(f"{where}: 'recentItems' must be a list of item ids")
    if stamps is None:
        stamps = [0.0] * len(items)
    if not isinstance(stamps, list) or len(stamps) != len(items):
        raise ArtifactError(
            f"{where}: 'recentTimestamps' must be a list as long as 'recentItems' ({len(items)})"
        )
    return user_id, [
        (item, float(_decimal(ts, f"{where}.recentTimestamps"))) for item, ts in zip(items, stamps)
    ]


def merge_history(
    stored: Sequence[tuple[str, float]], batch: Sequence[tuple[str, float]], limit: int
) -> list[tuple[str, float]]:
    """Union of two histories ordered by time, duplicates (same item, same time) once, newest
    ``limit`` kept. The stored history may hold events newer than the training data."""
    seen = set()
    merged = []
    for pair in sorted([*batch, *stored], key=lambda p: p[1]):  # stable: batch first on ties
        if pair not in seen:
            seen.add(pair)
            merged.append(pair)
    return merged[-limit:]


def _stored_histories(table: Any, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Current rows of ``user_ids`` (consistent reads, 100 per call, unprocessed keys retried)."""
    key = contracts.USERS.partition_key
    # The resource's client (de)serialises Python values, like the Table API.
    client = table.meta.client
    out: dict[str, dict[str, Any]] = {}
    pending = {table.name: {"Keys": [{key: u} for u in user_ids], "ConsistentRead": True}}
    for attempt in range(10):
        resp = client.batch_get_item(RequestItems=pending)
        for row in resp.get("Responses", {}).get(table.name, []):
            out[row[key]] = row
        pending = resp.get("UnprocessedKeys") or {}
        if not pending:
            return out
        time.sleep(min(0.05 * 2**attempt, 1.0))
    raise RuntimeError(f"DynamoDB table {table.name}: BatchGetItem kept returning unprocessed keys")


def _history_of(row: Optional[dict[str, Any]]) -> tuple[list[tuple[str, float]], Optional[int]]:
    if not row:
        return [], None
    items = [str(i) for i in row.get("recentItems") or []]
    stamps = [float(t) for t in row.get("recentTimestamps") or []]
    if len(stamps) != len(items):  # rows from older writers may lack timestamps
        stamps = [0.0] * len(items)
    version = int(row["version"]) if "version" in row else None
    return list(zip(items, stamps)), version


def _write_history(
    table: Any,
    user_id: str,
    history: list[tuple[str, float]],
    version: Optional[int],
    now: float,
) -> bool:
    """Conditional write (same optimistic ``version`` protocol as the events API); False on conflict."""
    values: dict[str, Any] = {
        ":items": [item for item, _ in history],
        ":ts": [Decimal(repr(ts)) for _, ts in history],
        ":now": Decimal(str(round(now, 3))),
        ":exp": int(now) + contracts.USER_TTL_DAYS * 86400,
        ":next": (version or 0) + 1,
    }
    if version is None:
        condition = "attribute_not_exists(version)"
    else:
        condition = "version = :prev"
        values[":prev"] = version
    try:
        table.update_item(
            Key={contracts.USERS.partition_key: user_id},
            UpdateExpression=(
                "SET recentItems = :items, recentTimestamps = :ts, updatedAt = :now, "
                f"{_USER_TTL_ATTRIBUTE} = :exp, version = :next"
            ),
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise


def _load_users(table: Any, records: Iterable[Mapping[str, Any]], now: float, where: str) -> int:
    count = 0
    chunk: dict[str, list[tuple[str, float]]] = {}

    def flush() -> None:
        stored = _stored_histories(table, list(chunk))
        for user_id, batch in chunk.items():
            row = stored.get(user_id)
            for _ in range(MAX_CONFLICT_RETRIES):
                history, version = _history_of(row)
                merged = merge_history(history, batch, contracts.MAX_RECENT_ITEMS)
                if _write_history(table, user_id, merged, version, now):
                    break
                # The events API changed this user meanwhile: re-read and merge again.
                row = _stored_histories(table, [user_id]).get(user_id)
            else:
                raise RuntimeError(f"user {user_id!r}: history kept changing during the load")
        chunk.clear()

    for index, record in enumerate(records):
        user_id, batch = user_history(record, f"{where}[{index}]")
        chunk[user_id] = batch  # a repeated user id: the later record wins
        count += 1
        if len(chunk) >= BATCH_GET_SIZE:
            flush()
    if chunk:
        flush()
    return count


def _put_all(
    table: Any,
    records: Iterable[Mapping[str, Any]],
    to_row: Callable[[Mapping[str, Any], str], dict[str, Any]],
    where: str,
    key: str,
) -> int:
    count = 0
    # The key comes from the contract: ``table.key_schema`` would cost a DescribeTable call,
    # which the function's role (item actions only) is not allowed.
    with table.batch_writer(overwrite_by_pkeys=[key]) as writer:
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise ArtifactError(f"{where}[{index}]: not a JSON object")
            writer.put_item(Item=to_row(record, f"{where}[{index}]"))
            count += 1
    return count


def load_records(
    dynamodb_resource: Any,
    table_names: Mapping[str, str],
    records: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    now: Optional[float] = None,
) -> dict[str, int]:
    """Write batch records into the feature store tables.

    Args:
        dynamodb_resource: ``boto3.resource("dynamodb")`` (moto, the local stack or AWS).
        table_names: Physical table names keyed like ``records`` (``users``, ``items``,
            ``recommendations``); the contract names (``batch-recommendations``) work too.
        records: ``{"users": [...], "items": [...], "recommendations": [...]}``, the parsed
            ``batch/*.jsonl`` files; any subset, each an iterable (streamed, not held).
        now: Unix time for ``updatedAt`` and TTLs (default: the clock).

    Returns:
        How many records were written per key, e.g. ``{"users": 900, "items": 1700, ...}``.

    Raises:
        ArtifactError: A record is malformed (the message names the file and index) or a key
            of ``records`` is unknown.
        KeyError: No table name was given for a key of ``records``.
    """
    now = time.time() if now is None else float(now)
    counts: dict[str, int] = {}
    for name, rows in records.items():
        if name not in TABLE_FOR_RECORDS:
            raise ArtifactError(
                f"unknown batch file {name!r}; expected one of {sorted(TABLE_FOR_RECORDS)}"
            )
        spec = TABLE_FOR_RECORDS[name]
        physical = table_names.get(name) or table_names.get(spec.logical_name)
        if not physical:
            raise KeyError(
                f"no table name given for {name!r} (key {name!r} or {spec.logical_name!r})"
            )
        table = dynamodb_resource.Table(physical)
        where = f"{contracts.BATCH_OUTPUT_DIR}/{name}.jsonl"
        if name == "users":
            counts[name] = _load_users(table, rows, now, where)
        elif name == "items":
            counts[name] = _put_all(table, rows, item_row, where, spec.partition_key)
        else:
            expires = int(now) + contracts.BATCH_TTL_DAYS * 86400
            counts[name] = _put_all(
                table,
                rows,
                functools.partial(recommendation_row, expires_at=expires),
                where,
                spec.partition_key,
            )
    return counts


def table_names_from_env(env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``{"users": ..., "items": ..., "recommendations": ...}`` from the Lambda's environment."""
    env = os.environ if env is None else env
    missing = [var for var in ENV_TABLES.values() if not env.get(var)]
    if missing:
        raise RuntimeError(f"missing environment variable(s) {', '.join(missing)}")
    return {name: env[var] for name, var in ENV_TABLES.items()}


def load_from_s3(
    s3: Any, dynamodb_resource: Any, table_names: Mapping[str, str], output_data_url: str
) -> dict[str, int]:
    """Stream ``batch/*.jsonl`` out of a job's ``output.tar.gz`` into the tables."""
    counts: dict[str, int] = {}
    for name, rows in artifacts.iter_batch_files(s3, output_data_url):
        counts.update(load_records(dynamodb_resource, table_names, {name: rows}))
    return counts


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Step Functions task: ``{"outputDataUrl": "s3://.../output.tar.gz"}`` -> counts."""
    import boto3

    if not isinstance(event, Mapping) or not event.get("outputDataUrl"):
        raise ValueError("load input needs outputDataUrl (job 2's output.tar.gz URI)")
    counts = load_from_s3(
        boto3.client("s3"),
        boto3.resource("dynamodb"),
        table_names_from_env(),
        str(event["outputDataUrl"]),
    )
    return {"counts": counts, "outputDataUrl": event["outputDataUrl"]}
