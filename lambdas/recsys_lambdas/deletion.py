"""The right to be forgotten: ``DELETE /users/{userId}`` (Personalize's data deletion, per user).

One request, in this order:

1. the deletion record ``contracts.deletion_key(userId)`` in the events bucket, ``{"userId",
   "deletedAt"}`` (S3 PutObject; a later deletion of the same user overwrites it with the later
   time). Training reads these as its ``deletions`` channel and drops the user's logged rows
   received up to ``deletedAt`` (also the rows of anonymous sessions merged into the user), so the
   next model has nothing of the user. It is written first: when it fails, nothing was deleted
   and the client retries.
2. the user's users-table row (real-time history) and batch-recommendations row (DeleteItem
   each): the next GetRecommendations reads the user as new (no history, the popular answer).

The user's idempotency records are kept until their TTL (``settings.IDEMPOTENCY_TTL_DAYS``): they
are what makes a retry of a PutEvents sent before the deletion a DUPLICATE rather than putting the
forgotten events back into the history (and the log). They hold hashed keys, the event ids and the
owner; their table is not indexed by user, so they could not be found "at once" anyway.

Deleting an unknown user is not an error: the answer says what was there (idempotent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict

from botocore.exceptions import BotoCoreError, ClientError

from recsys_lambdas import contracts, feature_store
from recsys_lambdas.errors import InvalidInput, ServiceUnavailable
from recsys_lambdas.service import Deps


@dataclass(frozen=True)
class Deletion:
    """What ``DELETE /users/{userId}`` removed."""

    user_id: str
    deleted_at: float
    history_items: int  # events that were in the real-time history (0: no row)
    batch_recommendations: bool  # whether a precomputed row was there
    record_key: str  # the deletion record's S3 key

    def to_json(self) -> Dict[str, Any]:
        return {"userId": self.user_id, "deletedAt": self.deleted_at,
                "deleted": {"historyItems": self.history_items,
                            "batchRecommendations": self.batch_recommendations},
                "deletionRecord": self.record_key}


def check_user_id(user_id: str) -> None:
    """Reject ids that name no user: the anonymous sessions' and the batch table's reserved rows.

    Raises:
        InvalidInput: the id is reserved (its rows are not a user's).
    """
    if (user_id.startswith((contracts.SESSION_OWNER_PREFIX, contracts.SEARCH_ROW_PREFIX))
            or user_id == contracts.POPULAR_USER_ID):
        raise InvalidInput(f"path parameter userId {user_id[:64]!r} is reserved (not a user's id)")


def forget_user(deps: Deps, user_id: str) -> Deletion:
    """Record the deletion durably, then delete the user's history and batch row.

    Raises:
        InvalidInput: a reserved id (:func:`check_user_id`).
        ServiceUnavailable: S3 or DynamoDB failed; the request is safe to retry.
    """
    check_user_id(user_id)
    settings = deps.settings
    settings.require("users_table", "batch_table", "events_bucket")
    now = round(deps.clock(), 3)
    key = contracts.deletion_key(user_id)
    body = json.dumps({"userId": user_id, "deletedAt": now}, separators=(",", ":")).encode("utf-8")
    try:
        deps.s3.put_object(Bucket=settings.events_bucket, Key=key, Body=body,
                           ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:  # nothing was deleted yet
        raise ServiceUnavailable(f"the deletion could not be recorded ({type(exc).__name__}); "
                                 "nothing was deleted, retry the request", retry_after_s=1) from exc

    def delete(table: str, spec: contracts.TableSpec) -> Dict[str, Any]:
        resp = feature_store.with_backoff(
            lambda: deps.ddb.delete_item(TableName=table, Key={spec.partition_key: {"S": user_id}},
                                         ReturnValues="ALL_OLD"),
            what=f"DynamoDB table {table}", sleep=deps.sleep)
        return resp.get("Attributes") or {}

    history = feature_store.history_from_item(delete(settings.users_table, contracts.USERS))
    batch_row = delete(settings.batch_table, contracts.BATCH_RECOMMENDATIONS)
    deps.metric("UsersDeleted")
    return Deletion(user_id=user_id, deleted_at=now, history_items=len(history.items),
                    batch_recommendations=bool(batch_row), record_key=key)
