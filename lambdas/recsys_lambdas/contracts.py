"""One home for the names and keys shared by the CDK app, the Lambdas, the pipeline and the
local stack: DynamoDB tables, environment variables, S3 layout and limits.

Pure Python, no third-party imports: the CDK app (``recsys_infra``) and the local stack import it
to create the same tables the handlers read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import List, Optional

# --- DynamoDB -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table as both the CDK app and the local stack create it."""

    logical_name: str  # suffix of the physical name and CDK construct id
    partition_key: str
    ttl_attribute: Optional[str] = None
    description: str = ""


USERS = TableSpec(
    "users",
    partition_key="userId",
    ttl_attribute="expiresAt",
    description=(
        "Real-time user context: 'recentItems' (list of item ids, oldest first, at most "
        "MAX_RECENT_ITEMS), 'recentTimestamps' (Unix seconds, same order), 'updatedAt', 'version'. "
        "Anonymous sessions have their own rows, keyed SESSION_OWNER_PREFIX + sessionId; once a "
        "PutEvents with both ids merged one into a user, its row has 'mergedInto' (the userId)."
    ),
)
ITEMS = TableSpec(
    "items",
    partition_key="itemId",
    description="Item features: 'title', 'category', 'popularity', 'trend' written by the pipeline.",
)
BATCH_RECOMMENDATIONS = TableSpec(
    "batch-recommendations",
    partition_key="userId",
    ttl_attribute="expiresAt",
    description=(
        "Precomputed recommendations: 'items' (list of {itemId, score}), 'modelVersion'. "
        "The row with userId == POPULAR_USER_ID holds the popular-items fallback; rows with "
        "userId == SEARCH_ROW_PREFIX + word hold degraded search's index (the most popular items "
        "whose title or category has the word)."
    ),
)
IDEMPOTENCY = TableSpec(
    "idempotency",
    partition_key="id",
    ttl_attribute="expiration",
    description="Powertools for AWS Lambda idempotency records (event ids already accepted).",
)
ALL_TABLES = (USERS, ITEMS, BATCH_RECOMMENDATIONS, IDEMPOTENCY)

POPULAR_USER_ID = "__popular__"
# Anonymous sessions (PutEvents without userId) live in their own key space: the users table's
# row, the idempotency keys and the event log's user_id are SESSION_OWNER_PREFIX + sessionId, so a
# session named like a user never touches that user. A userId with this prefix is rejected.
SESSION_OWNER_PREFIX = "__session__:"
# An event-log record (record_type == IDENTITY_RECORD_TYPE) saying that the rows logged under
# session_owner belong to user_id from now on; training reads them as that user's.
IDENTITY_RECORD_TYPE = "identity"
SEARCH_ROW_PREFIX = "__search__:"
SEARCH_ROW_ITEMS = 100  # items per word row, most popular first
MAX_SEARCH_WORDS = 8  # words of a query that degraded search looks up
MAX_RECENT_ITEMS = 200
USER_TTL_DAYS = 400
BATCH_TTL_DAYS = 14

# --- Environment variables the handlers read ----------------------------------------------

ENV_USERS_TABLE = "USERS_TABLE"
ENV_ITEMS_TABLE = "ITEMS_TABLE"
ENV_BATCH_TABLE = "BATCH_RECOMMENDATIONS_TABLE"
ENV_IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
ENV_ENDPOINT_NAME = "ENDPOINT_NAME"  # empty in batch mode: no endpoint is deployed
ENV_EVENTS_STREAM = "EVENTS_DELIVERY_STREAM"  # Firehose delivery stream -> events bucket
ENV_EVENTS_BUCKET = "EVENTS_BUCKET"  # DELETE /users/{userId} records the deletion there
ENV_SERVING_MODE = "SERVING_MODE"  # "realtime" | "batch"
ENV_EVENTS_MAX_CLOCK_SKEW_S = "EVENTS_MAX_CLOCK_SKEW_SECONDS"  # PutEvents: how far sentAt may be ahead
ENV_ENDPOINT_TIMEOUT_S = "ENDPOINT_TIMEOUT_SECONDS"
ENV_AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"  # set by the local stack (moto server)
ENV_SAGEMAKER_ENDPOINT_URL = "SAGEMAKER_RUNTIME_ENDPOINT_URL"  # set by the local stack

SERVING_MODES = ("realtime", "batch")

# The API Lambdas' timeout: the CDK config's default (lambdas.timeoutSeconds) and what the
# handlers' budgets are sized for (recsys_lambdas.settings); at run time the handlers read the
# time actually left from the Lambda context.
API_FUNCTION_TIMEOUT_S = 10

# --- S3 layout ----------------------------------------------------------------------------

EVENTS_PREFIX = "events/"  # Firehose writes JSON Lines here; training reads it
ITEMS_PREFIX = "items/"
USERS_PREFIX = "users/"  # user metadata (recsys.schemas.USERS): the optional "users" channel
# The pipeline writes this marker before the jobs so users/ is never empty (SageMaker fails a job
# whose S3Prefix channel has no object); the jobs read a channel holding only markers (names
# starting with "_") as absent.
USERS_MARKER = USERS_PREFIX + "_marker.json"
MODELS_PREFIX = "models/"
# DELETE /users/{userId} writes one JSON object per deleted user here ({"userId", "deletedAt"},
# key: deletion_key); training reads the prefix as its optional "deletions" channel and drops the
# user's rows logged up to deletedAt. The pipeline (and the local runner) write DELETIONS_MARKER
# first, so the prefix is never empty: SageMaker fails a job whose S3Prefix channel has no object.
DELETIONS_PREFIX = "deletions/"
DELETIONS_MARKER = DELETIONS_PREFIX + "_marker.json"
# The pipeline's PurgeDeletedUsers step writes, for each deletion record it has removed from the
# raw log, a purge record under the same name here ({"deletedAt", "purgedAt"}): a deletion is
# purged once, and again only when a later DELETE rewrites its record.
PURGES_PREFIX = "purges/"

# --- Training job contract ----------------------------------------------------------------

TRAINING_CHANNEL_EVENTS = "events"
TRAINING_CHANNEL_ITEMS = "items"
TRAINING_CHANNEL_DELETIONS = "deletions"  # optional: deletion records (DELETIONS_PREFIX)
TRAINING_CHANNEL_USERS = "users"  # optional: user metadata (USERS_PREFIX), carried into the model
TRAINING_CHANNEL_RETRIEVAL = "retrieval"  # job 1's model.tar.gz, input of job 2
BATCH_OUTPUT_DIR = "batch"  # under SM_OUTPUT_DATA_DIR: users.jsonl, items.jsonl, recommendations.jsonl
METRIC_LINE_FORMAT = "METRIC {name}={value:.6f}"  # SageMaker metric regex: "METRIC name=([0-9.]+)"


def session_owner(session_id: str) -> str:
    """The owner key of an anonymous session's history, idempotency records and log rows."""
    return SESSION_OWNER_PREFIX + session_id


def deletion_key(user_id: str) -> str:
    """The S3 key of a user's deletion record (a hash: user ids stay out of key listings)."""
    return DELETIONS_PREFIX + hashlib.sha256(user_id.encode("utf-8")).hexdigest() + ".json"


def purge_key(deletion_record_key: str) -> str:
    """The S3 key of the purge record for the deletion record at ``deletion_record_key``."""
    return PURGES_PREFIX + deletion_record_key[len(DELETIONS_PREFIX):]


def table_name(prefix: str, spec: TableSpec) -> str:
    """The physical table name for a deployment prefix (e.g. ``recsys-dev-users``)."""
    return f"{prefix}-{spec.logical_name}"


# --- Degraded search ----------------------------------------------------------------------

# The same words as recsys.text.tokenize, which writes the rows (tests/test_contract_mirror.py).
_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")
_WORD = re.compile(r"[^\W_]+")


def search_tokens(text: str) -> List[str]:
    """The distinct words of ``text`` in order: accents and case folded, apostrophes joined."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return list(dict.fromkeys(_WORD.findall(_APOSTROPHES.sub("", folded))))
