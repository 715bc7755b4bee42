"""The event path (Amazon Personalize PutEvents): whose history an event belongs to, its id, the
durable log (:mod:`recsys_lambdas.events_log`, Firehose) and the real-time history with its
idempotency records (:mod:`recsys_lambdas.feature_store`, one DynamoDB transaction per attempt).

Takes the same :class:`~recsys_lambdas.service.Deps` as the recommendation routes; the handler in
:mod:`recsys_lambdas.api.events` only parses, validates and shapes the answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, NoReturn, Optional, Tuple

from botocore.exceptions import BotoCoreError, ClientError

from recsys_lambdas import contracts, events_log, feature_store
from recsys_lambdas import settings as limits
from recsys_lambdas.errors import InvalidInput, ServiceUnavailable
from recsys_lambdas.service import Deps
from recsys_lambdas.settings import IDEMPOTENCY_TTL_DAYS

MAX_HISTORY_TX_ATTEMPTS = 5


@dataclass
class EventOutcome:
    """One event's answer: its id, its status and what the server did beyond the status."""

    event_id: str
    status: str = "PENDING"  # ACCEPTED | DUPLICATE | FAILED
    error_code: str = ""
    error_message: str = ""
    in_history: bool = True  # False: logged for training, but older than the real-time history
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"eventId": self.event_id, "status": self.status}
        if self.status == "FAILED":
            out["errorCode"] = self.error_code
            out["errorMessage"] = self.error_message
        if self.status == "ACCEPTED" and not self.in_history:
            out["inHistory"] = False
        if self.notes and self.status != "DUPLICATE":
            out["message"] = "; ".join(self.notes)
        return out


def derived_event_id(tracking_id: str, owner: str, session_id: str, position: int,
                     event: Dict[str, Any]) -> str:
    """A stable id for an event sent without ``eventId``: a hash of its content *and* its
    position in ``eventList``.

    A retry of the same request yields the same ids (so it is idempotent and training drops the
    logged repeat), while two identical events in one request (a real repeat purchase) are two
    events.
    """
    canonical = json.dumps([tracking_id, owner, session_id, position, event], sort_keys=True,
                           separators=(",", ":"))
    return "h-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def idempotency_key(tracking_id: str, owner: str, event_id: str) -> str:
    """Key of an accepted event in the idempotency table (hashed: the parts can be 256 chars each)."""
    digest = hashlib.sha256("\x00".join((tracking_id, owner, event_id)).encode("utf-8")).hexdigest()
    return f"putevents#{digest}"


def put_events(deps: Deps, request: Dict[str, Any]) -> List[EventOutcome]:
    """PutEvents: make each event durable (Firehose), then add it to the owner's recent history
    and mark it accepted in one DynamoDB transaction.

    Owners: with ``userId`` the events are the user's; without, they belong to the anonymous
    session, whose key space is apart from users' (``contracts.session_owner``), until a request
    with both ids merges the session into the user: its history joins the user's (once, in the
    same transaction as that request's events), an identity record in the log tells training the
    session's rows are the user's, and later session-only events go to the user.

    Guarantees: an event is reported ACCEPTED only after both the log and the history hold it;
    a retried request (same eventIds, or the same events without ids) adds nothing twice to the
    history (the log is at-least-once: rows carry ``event_id`` for training to de-duplicate).

    Raises:
        InvalidInput: ``userId`` uses the anonymous sessions' reserved prefix.
        ServiceUnavailable: one or more events FAILED; the body lists every event's outcome and
            retrying the same request is safe.
    """
    settings = deps.settings
    settings.require("users_table", "idempotency_table", "events_stream")
    tracking_id = request["trackingId"]
    session_id = request["sessionId"]
    user_id: str = request.get("userId") or ""
    if user_id.startswith(contracts.SESSION_OWNER_PREFIX):
        raise InvalidInput(f"body.userId must not start with {contracts.SESSION_OWNER_PREFIX!r} "
                           "(reserved for anonymous sessions)")
    session_key = contracts.session_owner(session_id)
    identity = user_id or session_key  # who sent it: event ids and idempotency keys
    events: List[Dict[str, Any]] = []
    for position, raw in enumerate(request["eventList"]):
        event = dict(raw)
        event.setdefault("eventId", derived_event_id(tracking_id, identity, session_id, position, raw))
        events.append(event)
    outcomes = [EventOutcome(e["eventId"]) for e in events]

    first_pos: Dict[str, int] = {}
    for pos, event in enumerate(events):
        if event["eventId"] in first_pos:
            outcomes[pos].status = "DUPLICATE"
        else:
            first_pos[event["eventId"]] = pos
    keys = {pos: idempotency_key(tracking_id, identity, events[pos]["eventId"]) for pos in first_pos.values()}
    table, users = settings.idempotency_table, settings.users_table
    # the time left once this read, a Firehose call and a history attempt are accounted for
    spare = deps.remaining_s() - limits.DYNAMODB_CALL_MAX_S - limits.FIREHOSE_CALL_MAX_S - limits.HISTORY_ATTEMPT_S
    if spare <= 0:
        _fail(outcomes, list(first_pos.values()), "TimeBudgetExhausted",
              f"{max(0.0, deps.remaining_s()):.1f} s left of the request's time: too little to record "
              "an event; nothing was written, retry the request")
        _unavailable(deps, outcomes)
    try:  # one round trip: the events accepted before, and the session's row (consistent)
        found = feature_store.batch_get(
            deps.ddb, {table: [{"id": {"S": key}} for key in keys.values()],
                       users: [{contracts.USERS.partition_key: {"S": session_key}}]},
            projection={table: "id", users: f"{contracts.USERS.partition_key}, {feature_store.HISTORY_PROJECTION}"},
            consistent=(users,), budget_s=min(limits.DYNAMODB_BUDGET_S, spare))
    except ServiceUnavailable as exc:
        # nothing was written: every event (but in-request repeats) failed and can be retried
        _fail(outcomes, list(first_pos.values()), "IdempotencyUnavailable", exc.message)
        _unavailable(deps, outcomes)
    done = {row["id"]["S"] for row in found[table]}
    session = feature_store.history_from_item(found[users][0] if found[users] else {})
    todo = []
    for pos, key in keys.items():
        if key in done:
            outcomes[pos].status = "DUPLICATE"
        else:
            todo.append(pos)
    if todo:
        now = deps.clock()
        owner = user_id or session.merged_into or session_key
        merge = bool(user_id) and session.exists and session.merged_into is None
        sent_at = {p: _clamp_sent_at(events[p], outcomes[p], now, settings.max_clock_skew_s) for p in todo}
        rows = [events_log.log_record(events[p], user_id=owner, session_id=session_id,
                                      tracking_id=tracking_id, received_at=now, client_sent_at=sent_at[p])
                for p in todo]
        if merge:
            rows.append(events_log.identity_record(user_id=user_id, session_id=session_id,
                                                   session_owner=session_key, tracking_id=tracking_id,
                                                   received_at=now))
        # no Firehose round starts that would leave too little time for the history write
        stop_at = deps.deadline - limits.FIREHOSE_CALL_MAX_S - limits.HISTORY_ATTEMPT_S
        errors = events_log.put_records(deps.firehose, settings.events_stream, rows, sleep=deps.sleep,
                                        stop_at=stop_at)
        if merge and errors.pop():
            merge = False  # the log could not say so yet: merge on a later request
        durable = []
        for pos, error in zip(todo, errors):
            if error:
                outcomes[pos].status = "FAILED"
                outcomes[pos].error_code = "EventLogUnavailable"
                outcomes[pos].error_message = f"not written to the event log: {error}"[:500]
            else:
                durable.append(pos)
        if durable:
            owners = _Owners(user_id=user_id, session_key=session_key, session=session if merge or not user_id else None)
            _record_history(deps, owners, tracking_id, events, outcomes, durable, keys, now)
            if owners.merged:
                deps.metric("SessionsMerged")
                deps.notes["merged_session"] = session_id
    accepted = sum(o.status == "ACCEPTED" for o in outcomes)
    failed = sum(o.status == "FAILED" for o in outcomes)
    deps.metric("EventsAccepted", accepted)
    deps.metric("EventsDuplicate", sum(o.status == "DUPLICATE" for o in outcomes))
    if failed:
        _unavailable(deps, outcomes)
    return outcomes


def _unavailable(deps: Deps, outcomes: List[EventOutcome]) -> NoReturn:
    """The 503 of a PutEvents with FAILED events, always with every event's result."""
    failed = sum(o.status == "FAILED" for o in outcomes)
    deps.metric("EventsFailed", failed)
    raise ServiceUnavailable(
        f"{failed} of {len(outcomes)} events were not recorded; retry the request (it is idempotent)",
        retry_after_s=1,
        extra={"eventResults": [o.to_json() for o in outcomes], "failedEventCount": failed})


def _clamp_sent_at(event: Dict[str, Any], outcome: EventOutcome, now: float, skew_s: float) -> Any:
    """Clamp a ``sentAt`` more than ``skew_s`` ahead of the receipt time ``now`` to ``now`` (said
    in the event's answer); return the client's value when it was clamped, else None."""
    sent = float(event["sentAt"])
    if sent <= now + skew_s:
        return None
    event["sentAt"] = round(now, 3)
    outcome.notes.append(
        f"sentAt {sent:.3f} is {sent - now:.0f} s ahead of the server's clock "
        f"(at most {skew_s:.0f} s allowed): recorded at the receipt time {now:.3f}")
    return sent


@dataclass
class _Owners:
    """Whose history a request writes, re-resolved on every transaction attempt.

    ``session`` is the session row as last read: for an anonymous request, its history (or the
    pointer to the user it was merged into); for a request with both ids, the session to merge
    (None: nothing to merge).
    """

    user_id: str
    session_key: str
    session: Optional[feature_store.UserHistory]
    merged: bool = False


def _read_owner(deps: Deps, owners: _Owners, attempt: int
                ) -> Tuple[Optional[feature_store.UserHistory], str, feature_store.UserHistory]:
    """The session row (re-read after a conflict), whose history to write, and that history."""
    users = deps.settings.users_table
    budget = max(0.0, min(limits.DYNAMODB_BUDGET_S, deps.remaining_s() - limits.HISTORY_ATTEMPT_S))
    session = owners.session
    if attempt > 1 and session is not None:
        session = feature_store.get_history(deps.ddb, users, owners.session_key, consistent=True, budget_s=budget)
    # anonymous: the session's own row, unless it was merged into a user (then the user's)
    owner = owners.user_id or (session.merged_into if session else None) or owners.session_key
    if owner == owners.session_key and session is not None:
        return session, owner, session
    return session, owner, feature_store.get_history(deps.ddb, users, owner, consistent=True, budget_s=budget)


def _record_history(deps: Deps, owners: _Owners, tracking_id: str, events: List[Dict[str, Any]],
                    outcomes: List[EventOutcome], positions: List[int], keys: Dict[int, str],
                    now: float) -> None:
    """One TransactWriteItems per attempt: the merged history (conditional on its version), an
    idempotency record per event (conditional on not existing) and, when a session is merged,
    the session row's mark (conditional on its version). All or nothing, so an event is in the
    history iff it is marked accepted, and a session's events join a user's history once."""
    settings = deps.settings
    pending = list(positions)
    expiration = str(int(now) + IDEMPOTENCY_TTL_DAYS * 86400)
    deadline = time.monotonic() + 3.0
    attempt = 0
    while pending:
        attempt += 1
        if deps.remaining_s() < limits.HISTORY_ATTEMPT_S:
            _fail(outcomes, pending, "TimeBudgetExhausted",
                  "no time left to write the history (the event log may hold the event: retry the request, "
                  "training keeps one copy)")
            return
        try:
            session, owner, before = _read_owner(deps, owners, attempt)
        except ServiceUnavailable as exc:  # the log holds the events: the client must be told to retry
            _fail(outcomes, pending, "HistoryUnavailable", exc.message)
            return
        except (ClientError, BotoCoreError) as exc:
            _fail(outcomes, pending, "HistoryUnavailable", f"reading the history failed: {type(exc).__name__}")
            return
        merging = bool(owners.user_id) and session is not None and session.merged_into is None
        # millisecond resolution: DynamoDB numbers cannot hold a positive value below 1e-130
        # (a schema-valid sentAt such as 5e-324 made every later read of the history fail)
        new = [(events[p]["itemId"], round(float(events[p]["sentAt"]), 3)) for p in pending]
        if merging and session is not None:
            new = list(zip(session.items, session.timestamps)) + new
        items, stamps = feature_store.merge_history(before.items, before.timestamps, new)
        offset = len(new) - len(pending)  # the merged session's pairs come first
        too_old = [pending[n - offset] for n in feature_store.dropped_from_history(before.timestamps, new)
                   if n >= offset]
        tx = [feature_store.history_update(settings.users_table, owner, before, items, stamps, now)]
        for p in pending:
            tx.append({"Put": {
                "TableName": settings.idempotency_table,
                "Item": {"id": {"S": keys[p]}, "expiration": {"N": expiration},
                         "eventId": {"S": events[p]["eventId"]}, "userId": {"S": owner},
                         "trackingId": {"S": tracking_id}},
                "ConditionExpression": "attribute_not_exists(id)"}})
        if merging and session is not None:
            tx.append(feature_store.session_merge_update(settings.users_table, owners.session_key, session,
                                                         owners.user_id, now))

        def write(items: List[Dict[str, Any]] = tx) -> Any:
            return deps.ddb.transact_write_items(TransactItems=items)

        try:
            feature_store.with_backoff(
                write, what=f"DynamoDB table {settings.users_table}", sleep=deps.sleep,
                budget_s=max(0.0, min(limits.DYNAMODB_BUDGET_S, deps.remaining_s() - limits.DYNAMODB_CALL_MAX_S)))
            for p in pending:
                outcomes[p].status = "ACCEPTED"
            for p in too_old:
                outcomes[p].in_history = False
                outcomes[p].notes.append(
                    f"older than the owner's newest {contracts.MAX_RECENT_ITEMS} events: logged for "
                    "training, not in the real-time history")
            owners.merged = merging
            return
        except ServiceUnavailable as exc:
            _fail(outcomes, pending, "HistoryUnavailable", exc.message)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                _fail(outcomes, pending, "HistoryUnavailable", str(exc))
                return
            reasons = exc.response.get("CancellationReasons") or []
            # an idempotency record that now exists: a concurrent request accepted that event
            for p, reason in zip(pending, reasons[1:1 + len(pending)]):
                if reason.get("Code") == "ConditionalCheckFailed":
                    outcomes[p].status = "DUPLICATE"
            pending = [p for p in pending if outcomes[p].status != "DUPLICATE"]
            if attempt >= MAX_HISTORY_TX_ATTEMPTS or time.monotonic() > deadline:
                _fail(outcomes, pending, "HistoryConflict", "the user's history kept changing; retry")
                return
            deps.sleep(0.01 * attempt)
        except BotoCoreError as exc:
            _fail(outcomes, pending, "HistoryUnavailable", str(exc))
            return


def _fail(outcomes: List[EventOutcome], positions: List[int], code: str, message: str) -> None:
    for p in positions:
        outcomes[p].status = "FAILED"
        outcomes[p].error_code = code
        outcomes[p].error_message = message[:500]
