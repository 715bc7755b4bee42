"""The durable event log: JSON Lines records to a Firehose delivery stream (S3 under
``contracts.EVENTS_PREFIX``), in the events contract training reads (``user_id``, ``item_id``,
``timestamp``, ``event_type``, ``session_id``, plus ``event_id`` so training can drop the
duplicates an at-least-once log may hold). Rows of anonymous sessions have ``user_id`` =
``contracts.session_owner(sessionId)``; an identity record (``record_type: "identity"``) marks the
moment a session was merged into a user.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from recsys_lambdas import contracts
from recsys_lambdas.settings import FIREHOSE_BUDGET_S

MAX_ATTEMPTS = 3  # per record, for records Firehose reports as failed
BACKOFF_S = 0.05


def log_record(event: Dict[str, Any], *, user_id: str, session_id: str, tracking_id: str,
               received_at: float, client_sent_at: Optional[float] = None) -> Dict[str, Any]:
    """One training-log row for a validated PutEvents event (``client_sent_at``: the client's
    ``sentAt`` when the server clamped it to the receipt time)."""
    row: Dict[str, Any] = {
        "user_id": user_id,
        "item_id": event["itemId"],
        "timestamp": event["sentAt"],
        "event_type": event["eventType"],
        "session_id": session_id,
        "event_id": event["eventId"],
        "tracking_id": tracking_id,
        "received_at": round(received_at, 3),
    }
    if client_sent_at is not None:
        row["client_sent_at"] = client_sent_at
    for src, dst in (("eventValue", "event_value"), ("recommendationId", "recommendation_id"),
                     ("impression", "impression"), ("properties", "properties"),
                     ("metricAttribution", "metric_attribution")):
        if src in event:
            row[dst] = event[src]
    return row


def identity_record(*, user_id: str, session_id: str, session_owner: str, tracking_id: str,
                    received_at: float) -> Dict[str, Any]:
    """The log record saying that an anonymous session's rows (logged under ``session_owner``)
    are ``user_id``'s from now on: training attributes every row of that owner to the user."""
    return {
        "record_type": contracts.IDENTITY_RECORD_TYPE,
        "user_id": user_id,
        "session_id": session_id,
        "session_owner": session_owner,
        "tracking_id": tracking_id,
        "timestamp": round(received_at, 3),
        "received_at": round(received_at, 3),
    }


def put_records(firehose: Any, stream: str, rows: Sequence[Dict[str, Any]],
                sleep: Callable[[float], None] = time.sleep,
                stop_at: Optional[float] = None) -> List[str]:
    """Write ``rows`` durably; return one error string per row (``""`` for a durable row).

    Firehose acknowledges each record separately: records it reports as failed are retried (up
    to ``MAX_ATTEMPTS`` rounds, none started after ``FIREHOSE_BUDGET_S``), the rest are not sent
    twice. A whole-call failure marks every pending row failed with the error code. No round
    starts after ``stop_at`` (a ``time.monotonic()`` value, e.g. from the Lambda's deadline); rows
    never sent are ``TimeBudgetExhausted``.
    """
    errors = ["TimeBudgetExhausted: no time left to write the event log"] * len(rows)
    pending = list(range(len(rows)))
    deadline = time.monotonic() + FIREHOSE_BUDGET_S
    if stop_at is not None:
        deadline = min(deadline, stop_at)
        if time.monotonic() >= deadline:
            return errors
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            pause = random.uniform(0, BACKOFF_S * (2 ** attempt))
            if time.monotonic() + pause >= deadline:
                break
            sleep(pause)
        try:
            resp = firehose.put_record_batch(
                DeliveryStreamName=stream,
                Records=[{"Data": (json.dumps(rows[i], separators=(",", ":")) + "\n").encode("utf-8")}
                         for i in pending])
        except (ClientError, BotoCoreError) as exc:
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            for i in pending:
                errors[i] = code
            continue
        still: List[int] = []
        for i, result in zip(pending, resp.get("RequestResponses", [])):
            if result.get("ErrorCode"):
                errors[i] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".strip(": ")
                still.append(i)
            else:
                errors[i] = ""
        pending = still
        if not pending:
            break
    return errors
