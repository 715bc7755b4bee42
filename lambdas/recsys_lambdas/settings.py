"""The handlers' configuration, read from the environment variables named in
:mod:`recsys_lambdas.contracts`, and the timeouts that keep every call inside the Lambda budget.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from recsys_lambdas import contracts

# The API Lambdas run with a ``contracts.API_FUNCTION_TIMEOUT_S`` (10 s) timeout behind API
# Gateway's 29 s integration limit. The worst case of one request is one endpoint call (connect +
# read, no retry: we fall back instead) plus a few DynamoDB calls, each bounded by
# ``DYNAMODB_BUDGET_S`` including backoff. PutEvents also takes its deadline from the Lambda
# context's remaining time: no step starts that could not finish before it (see the *_CALL_MAX_S
# and reserves below), so a slow dependency ends in a 503 with per-event results, never in a
# Lambda timeout (API Gateway's bare 502) after the log was written.
DEFAULT_ENDPOINT_TIMEOUT_S = 2.0
ENDPOINT_CONNECT_TIMEOUT_S = 0.5
DYNAMODB_CONNECT_TIMEOUT_S = 0.5
DYNAMODB_READ_TIMEOUT_S = 1.0
DYNAMODB_BUDGET_S = 1.5  # total time spent retrying throttled DynamoDB calls before a 503
FIREHOSE_CONNECT_TIMEOUT_S = 0.5
FIREHOSE_READ_TIMEOUT_S = 2.0
FIREHOSE_BUDGET_S = 4.0  # no new PutRecordBatch round starts after this
DYNAMODB_CALL_MAX_S = DYNAMODB_CONNECT_TIMEOUT_S + DYNAMODB_READ_TIMEOUT_S  # one call in flight
FIREHOSE_CALL_MAX_S = FIREHOSE_CONNECT_TIMEOUT_S + FIREHOSE_READ_TIMEOUT_S
# PutEvents, against the Lambda context's deadline: the time kept to shape and send the answer,
# and the time one history attempt (a read and a transaction) needs after the log write.
ANSWER_RESERVE_S = 0.3
HISTORY_ATTEMPT_S = 2 * DYNAMODB_CALL_MAX_S
# The shortest Lambda timeout with which PutEvents can record an event when every dependency is
# slow: the idempotency read, one Firehose call, one history attempt and the answer. The CDK
# config rejects a lambdas.timeoutSeconds below it.
MIN_EVENTS_TIMEOUT_S = DYNAMODB_CALL_MAX_S + FIREHOSE_CALL_MAX_S + HISTORY_ATTEMPT_S + ANSWER_RESERVE_S
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_NUM_RESULTS = 25  # Amazon Personalize's default
IDEMPOTENCY_TTL_DAYS = 30  # a retried event older than this is accepted again
# A PutEvents sentAt more than this ahead of the receipt time is clamped to the receipt time
# (a client clock far ahead would otherwise pin the item as the "most recent" for ever).
DEFAULT_MAX_CLOCK_SKEW_S = 300.0

ENV_NAMED_FILTERS = "NAMED_FILTERS"  # JSON: {name: filter}; see named_filters()


@dataclass(frozen=True)
class Settings:
    """What the handlers need to know about their deployment."""

    users_table: str
    items_table: str
    batch_table: str
    idempotency_table: str
    endpoint_name: str
    events_stream: str
    serving_mode: str
    endpoint_timeout_s: float
    aws_endpoint_url: Optional[str]
    sagemaker_endpoint_url: Optional[str]
    named_filters: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    events_bucket: str = ""  # DELETE /users/{userId}: where the deletion record goes

    @property
    def realtime(self) -> bool:
        """True when a SageMaker endpoint should answer (else: batch recommendations only)."""
        return self.serving_mode == "realtime" and bool(self.endpoint_name)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: a variable has a value the handlers cannot use, named in the message.
        """
        env = os.environ if env is None else env
        mode = env.get(contracts.ENV_SERVING_MODE, "") or "realtime"
        if mode not in contracts.SERVING_MODES:
            raise ValueError(f"{contracts.ENV_SERVING_MODE} must be one of {contracts.SERVING_MODES}, got {mode!r}")
        raw_timeout = env.get(contracts.ENV_ENDPOINT_TIMEOUT_S, "") or str(DEFAULT_ENDPOINT_TIMEOUT_S)
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise ValueError(f"{contracts.ENV_ENDPOINT_TIMEOUT_S} must be a number of seconds, got {raw_timeout!r}") from None
        if not 0 < timeout <= 20:
            raise ValueError(f"{contracts.ENV_ENDPOINT_TIMEOUT_S} must be in (0, 20] seconds, got {timeout}")
        raw_skew = env.get(contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S, "") or str(DEFAULT_MAX_CLOCK_SKEW_S)
        try:
            skew = float(raw_skew)
        except ValueError:
            raise ValueError(f"{contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S} must be a number of seconds, got {raw_skew!r}") from None
        if not 0 <= skew <= 86400:
            raise ValueError(f"{contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S} must be in [0, 86400] seconds, got {skew}")
        return cls(
            users_table=env.get(contracts.ENV_USERS_TABLE, ""),
            items_table=env.get(contracts.ENV_ITEMS_TABLE, ""),
            batch_table=env.get(contracts.ENV_BATCH_TABLE, ""),
            idempotency_table=env.get(contracts.ENV_IDEMPOTENCY_TABLE, ""),
            endpoint_name=env.get(contracts.ENV_ENDPOINT_NAME, ""),
            events_stream=env.get(contracts.ENV_EVENTS_STREAM, ""),
            serving_mode=mode,
            endpoint_timeout_s=timeout,
            aws_endpoint_url=env.get(contracts.ENV_AWS_ENDPOINT_URL) or None,
            sagemaker_endpoint_url=env.get(contracts.ENV_SAGEMAKER_ENDPOINT_URL) or None,
            named_filters=named_filters(env.get(ENV_NAMED_FILTERS, "")),
            max_clock_skew_s=skew,
            events_bucket=env.get(contracts.ENV_EVENTS_BUCKET, ""),
        )

    def require(self, *names: str) -> None:
        """Fail clearly when a setting a route needs is empty (a deployment error, not the client's)."""
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            raise RuntimeError(f"missing configuration: {', '.join(missing)} (set the environment variables)")


def named_filters(raw: str) -> Dict[str, Dict[str, Any]]:
    """Parse the named filters: ``{"name": {"excludeItemIds": [...], "includeCategories": [...],
    "excludeCategories": [...]}}``. A string value ``"$NAME"`` in a list is replaced by the
    request's ``filterValues[NAME]`` (a comma-separated or Personalize-style ``"\\"a\\",\\"b\\""`` list).

    A request selects one with ``filterArn`` ending in ``filter/<name>``.
    """
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV_NAMED_FILTERS} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError(f"{ENV_NAMED_FILTERS} must be a JSON object of filter objects")
    return parsed
