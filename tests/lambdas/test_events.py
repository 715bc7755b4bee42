"""POST /events (Personalize PutEvents): durable log (Firehose -> S3), bounded real-time
history, idempotency on eventId, per-event partial failure, and the next answer reflecting it."""

from __future__ import annotations

import json

import api_support as sup
import pytest
from api_support import call
from botocore.stub import ANY, Stubber
from recsys_lambdas import aws, contracts, events_path, service


def _events(items, start=1_700_000_000, prefix="e"):
    return [{"eventId": f"{prefix}-{n}", "eventType": "click", "itemId": item, "sentAt": start + n}
            for n, item in enumerate(items)]


def _put(user, events, session="s-1", tracking="trk"):
    return call("POST", "/events", {"trackingId": tracking, "userId": user, "sessionId": session, "eventList": events})


def _history(world, user):
    row = world.user_row(user)
    return [v["S"] for v in row.get("recentItems", {}).get("L", [])]


def test_events_are_logged_durably_and_appended_to_the_history(api_world):
    r = _put("ev-user", _events(["i1", "i2", "i3"]))
    assert r.status == 200, r.body
    assert r.body == {"failedEventCount": 0, "eventResults": [
        {"eventId": "e-0", "status": "ACCEPTED"}, {"eventId": "e-1", "status": "ACCEPTED"},
        {"eventId": "e-2", "status": "ACCEPTED"}]}
    assert _history(api_world, "ev-user") == ["i1", "i2", "i3"]
    logged = [row for row in api_world.logged_events() if row["user_id"] == "ev-user"]
    assert [(row["item_id"], row["event_id"], row["event_type"], row["session_id"]) for row in logged] == [
        ("i1", "e-0", "click", "s-1"), ("i2", "e-1", "click", "s-1"), ("i3", "e-2", "click", "s-1")]
    assert logged[0]["timestamp"] == 1_700_000_000
    keys = [o["Key"] for o in api_world.s3.list_objects_v2(Bucket=sup.BUCKET)["Contents"]]
    assert all(k.startswith(contracts.EVENTS_PREFIX) for k in keys)


def test_posting_the_same_events_again_changes_nothing(api_world):
    events = _events(["i1", "i2"], prefix="dup")
    assert _put("dup-user", events).status == 200
    again = _put("dup-user", events)
    assert again.status == 200
    assert [e["status"] for e in again.body["eventResults"]] == ["DUPLICATE", "DUPLICATE"]
    assert _history(api_world, "dup-user") == ["i1", "i2"]
    assert len([r for r in api_world.logged_events() if r["user_id"] == "dup-user"]) == 2


def test_events_without_ids_are_idempotent_too(api_world):
    events = [{"eventType": "view", "itemId": "i9", "sentAt": 1_700_000_100}]
    first = _put("noid-user", events)
    second = _put("noid-user", events)
    assert first.body["eventResults"][0]["status"] == "ACCEPTED"
    assert second.body["eventResults"][0]["status"] == "DUPLICATE"
    assert first.body["eventResults"][0]["eventId"] == second.body["eventResults"][0]["eventId"]
    assert _history(api_world, "noid-user") == ["i9"]


def test_duplicate_ids_within_one_batch_count_once(api_world):
    events = _events(["i1"], prefix="same") * 2
    r = _put("samebatch", events)
    assert [e["status"] for e in r.body["eventResults"]] == ["ACCEPTED", "DUPLICATE"]
    assert _history(api_world, "samebatch") == ["i1"]


def test_history_is_bounded_and_time_ordered(api_world):
    user = "bounded-user"
    n = contracts.MAX_RECENT_ITEMS + 15
    for batch in range(0, n, 10):
        items = [f"b{k}" for k in range(batch, min(n, batch + 10))]
        assert _put(user, _events(items, start=1_700_000_000 + batch, prefix=f"b{batch}")).status == 200
    history = _history(api_world, user)
    assert len(history) == contracts.MAX_RECENT_ITEMS
    assert history[-1] == f"b{n - 1}" and history[0] == f"b{n - contracts.MAX_RECENT_ITEMS}"
    # a late event (older timestamp) lands in time order, not at the end
    _put(user, [{"eventId": "late", "eventType": "click", "itemId": "late-item", "sentAt": 1_700_000_000 + n - 2.5}])
    assert _history(api_world, user)[-3:] == ["late-item", f"b{n - 2}", f"b{n - 1}"]
    assert len(_history(api_world, user)) == contracts.MAX_RECENT_ITEMS
    stamps = [float(v["N"]) for v in api_world.user_row(user)["recentTimestamps"]["L"]]
    assert stamps == sorted(stamps)


def test_anonymous_events_are_kept_under_the_session(api_world):
    r = call("POST", "/events", {"trackingId": "t", "sessionId": "anon-session",
                                 "eventList": _events(["i5"], prefix="anon")})
    assert r.status == 200
    assert _history(api_world, contracts.session_owner("anon-session")) == ["i5"]
    assert _history(api_world, "anon-session") == []


def test_posting_events_changes_the_next_recommendations(api_live):
    user = "realtime-user"
    before = call("POST", "/recommendations", {"userId": user, "numResults": 10}).body["itemList"]
    watched = [e["itemId"] for e in before[:3]]
    assert _put(user, _events(watched, prefix="rt")).status == 200
    after = call("POST", "/recommendations", {"userId": user, "numResults": 10})
    ids = [e["itemId"] for e in after.body["itemList"]]
    assert not set(ids) & set(watched)  # seen items are filtered out
    assert ids != [e["itemId"] for e in before]
    assert api_live.model.requests[-1]["history"] == watched


def test_firehose_partial_failure_is_reported_per_event_and_retry_is_safe(api_world):
    events = _events(["p1", "p2", "p3"], prefix="partial")
    firehose = aws.client("firehose")
    stub = Stubber(firehose)
    # first attempt: record 2 fails; then it keeps failing for all retries
    stub.add_response("put_record_batch", {"FailedPutCount": 1, "RequestResponses": [
        {"RecordId": "r1"}, {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}, {"RecordId": "r3"}]},
        {"DeliveryStreamName": sup.STREAM, "Records": ANY})
    for _ in range(2):
        stub.add_response("put_record_batch", {"FailedPutCount": 1, "RequestResponses": [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}]},
            {"DeliveryStreamName": sup.STREAM, "Records": ANY})
    stub.activate()
    r = _put("partial-user", events)
    stub.deactivate()
    assert r.status == 503, r.body
    assert r.error_type == "ServiceUnavailableException" and r.headers["Retry-After"] == "1"
    assert r.body["failedEventCount"] == 1
    statuses = {e["eventId"]: e for e in r.body["eventResults"]}
    assert statuses["partial-0"]["status"] == "ACCEPTED" and statuses["partial-2"]["status"] == "ACCEPTED"
    assert statuses["partial-1"]["status"] == "FAILED" and "ServiceUnavailableException" in statuses["partial-1"]["errorMessage"]
    assert _history(api_world, "partial-user") == ["p1", "p3"]  # an unlogged event is not in the history
    retry = _put("partial-user", events)  # the client retries the whole batch
    assert retry.status == 200
    assert [e["status"] for e in retry.body["eventResults"]] == ["DUPLICATE", "ACCEPTED", "DUPLICATE"]
    assert _history(api_world, "partial-user") == ["p1", "p2", "p3"]


def test_firehose_down_fails_every_event_and_records_nothing(api_world):
    stub = Stubber(aws.client("firehose"))
    for _ in range(3):
        stub.add_client_error("put_record_batch", service_error_code="ServiceUnavailableException", http_status_code=503)
    stub.activate()
    r = _put("fh-down", _events(["x1", "x2"], prefix="down"))
    assert r.status == 503 and r.body["failedEventCount"] == 2
    assert all(e["status"] == "FAILED" and e["errorCode"] == "EventLogUnavailable" for e in r.body["eventResults"])
    assert _history(api_world, "fh-down") == []


def test_dynamodb_throttling_on_the_history_fails_events_for_retry(api_world, monkeypatch):
    monkeypatch.setattr("recsys_lambdas.feature_store.DYNAMODB_BUDGET_S", 0.1)
    stub = Stubber(aws.client("dynamodb"))
    stub.add_response("batch_get_item", {"Responses": {sup.table(contracts.IDEMPOTENCY): []}})
    stub.add_response("get_item", {})
    for _ in range(100):
        stub.add_client_error("transact_write_items", service_error_code="ProvisionedThroughputExceededException",
                              http_status_code=400)
    stub.activate()
    r = _put("tx-throttled", _events(["t1"], prefix="txt"))
    stub.deactivate()
    assert r.status == 503 and r.body["eventResults"][0]["status"] == "FAILED"
    assert r.body["eventResults"][0]["errorCode"] == "HistoryUnavailable"
    retry = _put("tx-throttled", _events(["t1"], prefix="txt"))
    assert retry.status == 200 and retry.body["eventResults"][0]["status"] == "ACCEPTED"
    assert _history(api_world, "tx-throttled") == ["t1"]


def test_a_concurrent_writer_between_read_and_write_loses_nothing(api_world):
    """Optimistic concurrency: another request changes the history (and accepts one of our
    events) between our read and our transaction. moto is not thread-safe for transactions, so
    the interleaving is injected deterministically at the TransactWriteItems call."""
    user = "concurrent-user"
    assert _put(user, _events(["c0"], prefix="c0")).status == 200
    ours = _events(["c1", "c2"], start=1_700_000_010, prefix="c1")
    state = {"fired": 0}

    def other_writer(**_):
        if state["fired"]:
            return None
        state["fired"] += 1
        # the other request: one new item of its own, plus our second event, both committed
        world_ddb = api_world.ddb
        world_ddb.update_item(
            TableName=sup.table(contracts.USERS), Key={"userId": {"S": user}},
            UpdateExpression="SET recentItems = list_append(recentItems, :i), "
                             "recentTimestamps = list_append(recentTimestamps, :t), version = version + :one",
            ExpressionAttributeValues={":i": {"L": [{"S": "other"}, {"S": "c2"}]},
                                       ":t": {"L": [{"N": "1700000005"}, {"N": "1700000011"}]}, ":one": {"N": "1"}})
        world_ddb.put_item(TableName=sup.table(contracts.IDEMPOTENCY), Item={
            "id": {"S": events_path.idempotency_key("trk", user, "c1-1")}, "expiration": {"N": "9999999999"}})
        return None

    aws.client("dynamodb").meta.events.register_first("before-call.dynamodb.TransactWriteItems", other_writer)
    r = _put(user, ours)
    assert r.status == 200, r.body
    assert [e["status"] for e in r.body["eventResults"]] == ["ACCEPTED", "DUPLICATE"]
    assert _history(api_world, user) == ["c0", "other", "c1", "c2"]


@pytest.mark.parametrize("body,fragment", [
    ({"trackingId": "t", "sessionId": "s", "eventList": []}, "eventList"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i"}]}, "sentAt"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "sentAt": 1}]}, "itemId"),
    ({"trackingId": "t", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": 1}]}, "sessionId"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": "yesterday"}]}, "sentAt"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": 1, "properties": ""}]}, "properties"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": 1}] * 11}, "eventList"),
    ({"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "itemId": "i", "sentAt": 1_700_000_000_000}]}, "sentAt"),
])
def test_bad_events_are_400_naming_the_field(api_world, body, fragment):
    r = call("POST", "/events", body)
    assert r.status == 400, r.body
    assert r.error_type == "InvalidInputException"
    assert fragment in r.body["message"]


def test_idempotency_keys_are_bounded_in_size():
    key = events_path.idempotency_key("t" * 256, "u" * 256, "e" * 256)
    assert len(key) < 100 and key.startswith("putevents#")
    assert key != events_path.idempotency_key("t" * 256, "u" * 255, "e" * 256)
    _ = json  # used by other tests in this module


def test_the_handler_delegates_to_the_event_path_module(api_world, monkeypatch):
    """The event path is its own module (recsys_lambdas.events_path); the handler only shapes."""
    seen = []

    def fake(deps, body):
        seen.append(body["trackingId"])
        return [events_path.EventOutcome("x", status="ACCEPTED")]

    monkeypatch.setattr(events_path, "put_events", fake)
    r = _put("delegate-user", _events(["i1"], prefix="dg"), tracking="trk-delegate")
    assert r.status == 200 and r.body["eventResults"] == [{"eventId": "x", "status": "ACCEPTED"}]
    assert seen == ["trk-delegate"]
    assert not hasattr(service, "put_events")


def test_identical_events_without_ids_in_one_request_are_two_events(api_world):
    """Finding 6: a real repeat (the same item bought twice in one request) is not collapsed."""
    event = {"eventType": "purchase", "itemId": "twice", "sentAt": 1_700_000_200}
    r = _put("repeat-buyer", [event, dict(event)])
    assert r.status == 200, r.body
    ids = [e["eventId"] for e in r.body["eventResults"]]
    assert [e["status"] for e in r.body["eventResults"]] == ["ACCEPTED", "ACCEPTED"] and ids[0] != ids[1]
    assert _history(api_world, "repeat-buyer") == ["twice", "twice"]
    retry = _put("repeat-buyer", [event, dict(event)])
    assert [e["eventId"] for e in retry.body["eventResults"]] == ids  # same request, same ids
    assert [e["status"] for e in retry.body["eventResults"]] == ["DUPLICATE", "DUPLICATE"]


def test_a_retry_after_the_log_was_written_trains_one_interaction(api_world, monkeypatch, tmp_path):
    """Finding 2: the log is at-least-once (Firehose took the rows, then the history write failed,
    the client retried), and training de-duplicates on (owner, eventId), keeping the first row."""
    from botocore.exceptions import ClientError
    from recsys import data

    monkeypatch.setattr("recsys_lambdas.feature_store.DYNAMODB_BUDGET_S", 0.05)
    user = "retried-user"
    same = {"eventType": "purchase", "itemId": "r-same", "sentAt": 1_700_000_300}
    events = [{"eventId": "r-1", "eventType": "click", "itemId": "r-item", "sentAt": 1_700_000_299},
              same, dict(same)]

    def throttled(**_):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                          "TransactWriteItems")

    ddb = aws.client("dynamodb")
    ddb.meta.events.register_first("before-call.dynamodb.TransactWriteItems", throttled, unique_id="throttle")
    first = _put(user, events)
    ddb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="throttle")
    assert first.status == 503 and first.body["failedEventCount"] == 3, first.body
    assert {e["errorCode"] for e in first.body["eventResults"]} == {"HistoryUnavailable"}
    retry = _put(user, events)
    assert retry.status == 200 and [e["status"] for e in retry.body["eventResults"]] == ["ACCEPTED"] * 3
    assert [e["eventId"] for e in retry.body["eventResults"]] == [e["eventId"] for e in first.body["eventResults"]]

    logged = [row for row in api_world.logged_events() if row["user_id"] == user]
    assert len(logged) == 6  # both attempts reached the log through Firehose
    for n, obj in enumerate(api_world.s3.list_objects_v2(Bucket=sup.BUCKET)["Contents"]):
        body = api_world.s3.get_object(Bucket=sup.BUCKET, Key=obj["Key"])["Body"].read()
        (tmp_path / f"part-{n:04d}").write_bytes(body)
    loaded = data.load_events(tmp_path)
    mine = [(i, t) for u, i, t in zip(loaded.user_ids, loaded.item_ids, loaded.timestamps) if u == user]
    assert sorted(mine) == [("r-item", 1_700_000_299.0), ("r-same", 1_700_000_300.0), ("r-same", 1_700_000_300.0)]
    assert loaded.report.duplicates >= 3 and loaded.report.bad_rows == 0
    assert loaded.report.to_json()["duplicates"] == loaded.report.duplicates


def _anonymous(session, events, tracking="trk"):
    return call("POST", "/events", {"trackingId": tracking, "sessionId": session, "eventList": events})


def test_an_anonymous_session_named_like_a_user_leaves_that_user_alone(api_live):
    """Finding 1: sessions and users are separate key spaces."""
    victim = sup.sample_users(api_live.model_paths["batch_dir"])[1]["userId"]
    history_before = _history(api_live, victim)
    before = call("POST", "/recommendations", {"userId": victim, "numResults": 10})
    assert before.status == 200 and history_before
    stranger = [e["itemId"] for e in before.body["itemList"][:3]]
    r = _anonymous(victim, _events(stranger, start=1_900_000_000, prefix="spoof"))
    assert r.status == 200 and [e["status"] for e in r.body["eventResults"]] == ["ACCEPTED"] * 3
    assert _history(api_live, victim) == history_before
    after = call("POST", "/recommendations", {"userId": victim, "numResults": 10})
    assert [e["itemId"] for e in after.body["itemList"]] == [e["itemId"] for e in before.body["itemList"]]
    assert _history(api_live, contracts.session_owner(victim)) == stranger
    logged = [row for row in api_live.logged_events() if row.get("event_id", "").startswith("spoof-")]
    assert {row["user_id"] for row in logged} == {contracts.session_owner(victim)}


def test_a_user_id_in_the_sessions_key_space_is_400(api_world):
    r = _put(contracts.session_owner("x"), _events(["i1"], prefix="reserved"))
    assert r.status == 400 and "userId" in r.body["message"] and "reserved" in r.body["message"]


def test_a_later_event_with_both_ids_merges_the_session_once(api_world, tmp_path):
    from recsys import data

    session, user = "merge-session", "merge-user"
    assert _put(user, _events(["u-old"], start=1_700_000_000, prefix="m-own"), session="other").status == 200
    assert _anonymous(session, _events(["s1", "s2"], start=1_700_000_010, prefix="m-anon")).status == 200
    assert _history(api_world, user) == ["u-old"]

    login = _put(user, _events(["u1"], start=1_700_000_020, prefix="m-login"), session=session)
    assert login.status == 200 and login.body["eventResults"][0]["status"] == "ACCEPTED"
    assert _history(api_world, user) == ["u-old", "s1", "s2", "u1"]
    assert api_world.user_row(contracts.session_owner(session))["mergedInto"] == {"S": user}

    # once: more events with both ids, and a retry of the login request, add no session item again
    assert _put(user, _events(["u2"], start=1_700_000_030, prefix="m-more"), session=session).status == 200
    assert _put(user, _events(["u1"], start=1_700_000_020, prefix="m-login"), session=session).status == 200
    assert _history(api_world, user) == ["u-old", "s1", "s2", "u1", "u2"]
    # from then on, the session's anonymous events are the user's
    later = _anonymous(session, _events(["s3"], start=1_700_000_040, prefix="m-after"))
    assert later.status == 200 and later.body["eventResults"][0]["status"] == "ACCEPTED"
    assert _history(api_world, user) == ["u-old", "s1", "s2", "u1", "u2", "s3"]
    assert _history(api_world, contracts.session_owner(session)) == ["s1", "s2"]

    logged = api_world.logged_events()
    identities = [r for r in logged if r.get("record_type") == contracts.IDENTITY_RECORD_TYPE
                  and r["session_id"] == session]
    assert [(r["user_id"], r["session_owner"]) for r in identities] == [(user, contracts.session_owner(session))]
    assert [r["user_id"] for r in logged if r.get("event_id") == "m-after-0"] == [user]
    # training reads the session's earlier rows as the user's
    for n, obj in enumerate(api_world.s3.list_objects_v2(Bucket=sup.BUCKET)["Contents"]):
        (tmp_path / f"part-{n:04d}").write_bytes(api_world.s3.get_object(Bucket=sup.BUCKET, Key=obj["Key"])["Body"].read())
    loaded = data.load_events(tmp_path)
    mine = sorted(i for u, i in zip(loaded.user_ids, loaded.item_ids) if u == user)
    assert mine == ["s1", "s2", "s3", "u-old", "u1", "u2"]
    assert contracts.session_owner(session) not in set(loaded.user_ids)
    assert loaded.report.merged_sessions >= 1 and loaded.report.bad_rows == 0


def test_an_anonymous_event_racing_the_merge_is_merged_too(api_world):
    """An anonymous event lands in the session between the merge's read and its transaction: the
    session row's version cancels the merge, which re-reads and takes the new item too."""
    session, user = "race-session", "race-user"
    assert _anonymous(session, _events(["r1"], start=1_700_000_000, prefix="race-a")).status == 200
    state = {"fired": 0}

    def anonymous_writer(**_):
        if state["fired"]:
            return None
        state["fired"] += 1
        api_world.ddb.update_item(
            TableName=sup.table(contracts.USERS), Key={"userId": {"S": contracts.session_owner(session)}},
            UpdateExpression="SET recentItems = list_append(recentItems, :i), "
                             "recentTimestamps = list_append(recentTimestamps, :t), version = version + :one",
            ExpressionAttributeValues={":i": {"L": [{"S": "r2"}]}, ":t": {"L": [{"N": "1700000005"}]},
                                       ":one": {"N": "1"}})
        return None

    aws.client("dynamodb").meta.events.register_first("before-call.dynamodb.TransactWriteItems", anonymous_writer)
    r = _put(user, _events(["u1"], start=1_700_000_010, prefix="race-u"), session=session)
    assert r.status == 200, r.body
    assert state["fired"] == 1
    assert _history(api_world, user) == ["r1", "r2", "u1"]


def test_a_sent_at_far_ahead_is_clamped_to_the_receipt_time_and_said_so(api_world):
    """Finding 5: a sentAt in the year 3000 no longer stays the user's "most recent" item."""
    import time as _time

    user = "future-user"
    before = _time.time()
    r = _put(user, [{"eventId": "fut-0", "eventType": "click", "itemId": "from-3000", "sentAt": 32_503_679_999},
                    {"eventId": "fut-1", "eventType": "click", "itemId": "now-ish", "sentAt": before + 60}])
    assert r.status == 200, r.body
    clamped, fine = r.body["eventResults"]
    assert clamped["status"] == "ACCEPTED" and "ahead of the server's clock" in clamped["message"]
    assert "300 s allowed" in clamped["message"] and "message" not in fine  # 60 s ahead is within the skew
    stamps = [float(v["N"]) for v in api_world.user_row(user)["recentTimestamps"]["L"]]
    assert before <= stamps[0] <= _time.time() + 1 and stamps[1] == round(before + 60, 3)
    assert _put(user, _events(["later"], start=int(before) + 120, prefix="fut-later")).status == 200
    assert _history(api_world, user) == ["from-3000", "now-ish", "later"]  # it ages like any event
    row = next(x for x in api_world.logged_events() if x.get("event_id") == "fut-0")
    assert row["client_sent_at"] == 32_503_679_999 and before <= row["timestamp"] <= _time.time() + 1


def test_the_clock_skew_allowance_is_configurable(api_world, monkeypatch):
    import time as _time

    sup.set_env(monkeypatch, **{contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S: "5"})
    r = _put("skew-user", [{"eventId": "skew-0", "eventType": "click", "itemId": "i", "sentAt": _time.time() + 60}])
    assert r.status == 200 and "at most 5 s allowed" in r.body["eventResults"][0]["message"]
    with pytest.raises(ValueError, match=contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S):
        from recsys_lambdas.settings import Settings
        Settings.from_env({contracts.ENV_EVENTS_MAX_CLOCK_SKEW_S: "soon"})


def test_an_event_older_than_a_full_history_is_logged_but_said_not_in_it(api_world):
    """Finding 5: with a full history, a very old event is ACCEPTED for training and the answer
    says it is not in the real-time history."""
    user = "full-user"
    n = contracts.MAX_RECENT_ITEMS
    api_world.ddb.put_item(TableName=sup.table(contracts.USERS), Item={
        "userId": {"S": user}, "version": {"N": "1"},
        "recentItems": {"L": [{"S": f"f{k}"} for k in range(n)]},
        "recentTimestamps": {"L": [{"N": str(1_700_000_000 + k)} for k in range(n)]}})
    r = _put(user, [{"eventId": "old-0", "eventType": "click", "itemId": "ancient", "sentAt": 1_000_000_000},
                    {"eventId": "old-1", "eventType": "click", "itemId": "newest", "sentAt": 1_780_000_000}])
    assert r.status == 200, r.body
    old, new = r.body["eventResults"]
    assert old["status"] == "ACCEPTED" and old["inHistory"] is False
    assert "not in the real-time history" in old["message"]
    assert new == {"eventId": "old-1", "status": "ACCEPTED"}
    history = _history(api_world, user)
    assert "ancient" not in history and history[-1] == "newest" and len(history) == n
    assert [x["item_id"] for x in api_world.logged_events() if x.get("event_id") == "old-0"] == ["ancient"]


@pytest.mark.parametrize("path", ["/events", "/recommendations", "/personalize-ranking"])
@pytest.mark.parametrize("raw", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_deeply_nested_json_is_a_400_with_a_message(api_world, path, raw):
    """Finding 4: the parser's RecursionError is the client's error, not a 500."""
    r = call("POST", path, raw_body=raw)
    assert r.status == 400, r.body
    assert r.error_type == "InvalidInputException" and "nested too deeply" in r.body["message"]


def test_idempotency_table_throttled_is_a_503_with_every_events_result(api_world, monkeypatch):
    """Finding 6: every 503 of PutEvents lists each event's outcome."""
    monkeypatch.setattr("recsys_lambdas.feature_store.DYNAMODB_BUDGET_S", 0.05)
    stub = Stubber(aws.client("dynamodb"))
    for _ in range(50):
        stub.add_client_error("batch_get_item", service_error_code="ProvisionedThroughputExceededException",
                              http_status_code=400)
    stub.activate()
    r = _put("idem-throttled", _events(["a", "b"], prefix="idt"))
    stub.deactivate()
    assert r.status == 503 and r.headers["Retry-After"] == "1", r.body
    assert r.body["failedEventCount"] == 2
    assert [(e["eventId"], e["status"], e["errorCode"]) for e in r.body["eventResults"]] == [
        ("idt-0", "FAILED", "IdempotencyUnavailable"), ("idt-1", "FAILED", "IdempotencyUnavailable")]
    assert not [x for x in api_world.logged_events() if x.get("event_id", "").startswith("idt-")]


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ResourceNotFoundException"])
def test_a_history_read_failing_after_the_log_write_is_a_503_with_results(api_world, monkeypatch, error):
    """The rows reached Firehose, then reading the history failed: the answer must still list
    every event as FAILED (so the client retries and training de-duplicates the logged repeat)."""
    monkeypatch.setattr("recsys_lambdas.feature_store.DYNAMODB_BUDGET_S", 0.05)
    user = f"read-fails-{error[:8]}"

    def failing(**_):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": error, "Message": "no"}}, "GetItem")

    ddb = aws.client("dynamodb")
    ddb.meta.events.register_first("before-call.dynamodb.GetItem", failing, unique_id="fail-get")
    r = _put(user, _events(["h1"], prefix=f"hr-{error[:4]}"))
    ddb.meta.events.unregister("before-call.dynamodb.GetItem", unique_id="fail-get")
    assert r.status == 503, r.body
    assert r.body["eventResults"][0]["status"] == "FAILED" and r.body["eventResults"][0]["errorCode"] == "HistoryUnavailable"
    assert [x["user_id"] for x in api_world.logged_events() if x.get("event_id") == f"hr-{error[:4]}-0"] == [user]
    assert _put(user, _events(["h1"], prefix=f"hr-{error[:4]}")).body["eventResults"][0]["status"] == "ACCEPTED"


def test_metric_attribution_is_kept_in_the_log(api_world):
    """Finding 6: metricAttribution reaches the training log."""
    event = {**_events(["ma"], prefix="attr")[0], "metricAttribution": {"eventAttributionSource": "email-campaign"}}
    assert _put("attr-user", [event]).status == 200
    row = next(x for x in api_world.logged_events() if x.get("event_id") == "attr-0")
    assert row["metric_attribution"] == {"eventAttributionSource": "email-campaign"}


class _ShortContext(sup.LambdaContext):
    def __init__(self, remaining_ms: int) -> None:
        super().__init__()
        import time as _time

        self._until = _time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        import time as _time

        return max(0, int((self._until - _time.monotonic()) * 1000))


def _put_with_context(body, remaining_ms):
    raw = sup.handler_for("/events")(sup.api_event("POST", "/events", body), _ShortContext(remaining_ms))
    return raw["statusCode"], json.loads(raw["body"])


def test_put_events_answers_within_the_lambdas_remaining_time(api_world, monkeypatch):
    """Finding 3: one slow Firehose call and a history that keeps conflicting. The answer (a 503
    with every event's result, so the client retries) comes before the Lambda's time is up,
    instead of after it (where API Gateway answers a bare 502)."""
    import time as _time
    import types

    for name, value in (("DYNAMODB_CALL_MAX_S", 0.2), ("FIREHOSE_CALL_MAX_S", 0.3), ("HISTORY_ATTEMPT_S", 0.7)):
        monkeypatch.setattr(f"recsys_lambdas.settings.{name}", value)
    user = "deadline-user"
    assert _put(user, _events(["d0"], prefix="d0")).status == 200

    # The slow calls advance a clock of the test's own, which the event path reads as its
    # monotonic time: what is measured is the budget logic, not how fast moto runs on a loaded
    # machine (in-process moto calls take no time on that clock).
    now = [1000.0]

    def elapse(seconds: float) -> None:
        now[0] += seconds

    fake_time = types.SimpleNamespace(**{n: getattr(_time, n) for n in dir(_time) if not n.startswith("__")})
    fake_time.monotonic = lambda: now[0]
    fake_time.sleep = elapse
    for module in ("recsys_lambdas.service", "recsys_lambdas.events_path", "recsys_lambdas.events_log",
                   "recsys_lambdas.feature_store",
                   "recsys_lambdas.api.events"):
        monkeypatch.setattr(f"{module}.time", fake_time)

    def slow_firehose(**_):
        elapse(0.5)

    def conflicting_writer(**_):  # another request changes the history each time, slowly
        elapse(0.45)
        api_world.ddb.update_item(TableName=sup.table(contracts.USERS), Key={"userId": {"S": user}},
                                  UpdateExpression="SET version = version + :one",
                                  ExpressionAttributeValues={":one": {"N": "1"}})

    aws.client("firehose").meta.events.register_first("before-call.firehose.PutRecordBatch", slow_firehose)
    aws.client("dynamodb").meta.events.register_first("before-call.dynamodb.TransactWriteItems", conflicting_writer)
    body = {"trackingId": "trk", "userId": user, "sessionId": "s", "eventList": _events(["d1"], prefix="d1")}
    started = now[0]
    status, answer = _put_with_context(body, remaining_ms=2000)
    elapsed = now[0] - started
    assert elapsed > 0.8, answer  # the slow calls did run
    assert elapsed < 2.0, f"answered after {elapsed:.2f} s, past the Lambda's 2 s"
    assert status == 503 and answer["failedEventCount"] == 1, answer
    assert answer["eventResults"][0]["errorCode"] in ("TimeBudgetExhausted", "HistoryConflict")
    assert [x["item_id"] for x in api_world.logged_events() if x.get("event_id") == "d1-0"] == ["d1"]


def test_too_little_time_left_writes_nothing_and_says_so(api_world):
    body = {"trackingId": "trk", "userId": "late-user", "sessionId": "s", "eventList": _events(["l1", "l2"], prefix="late")}
    status, answer = _put_with_context(body, remaining_ms=1500)
    assert status == 503 and answer["failedEventCount"] == 2
    assert {e["errorCode"] for e in answer["eventResults"]} == {"TimeBudgetExhausted"}
    assert "nothing was written" in answer["eventResults"][0]["errorMessage"]
    assert not [x for x in api_world.logged_events() if x.get("event_id", "").startswith("late-")]
    assert _history(api_world, "late-user") == []


def test_the_api_functions_timeout_has_one_source_and_fits_the_events_path():
    """CDK's default Lambda timeout, the local emulator's and the handlers' sizing are one constant;
    the CDK config rejects a timeout too short for PutEvents' slowest path."""
    import copy

    from recsys_infra import config
    from recsys_lambdas import settings
    from recsys_tools.local import gateway

    assert config.LambdaConfig().timeout_s == contracts.API_FUNCTION_TIMEOUT_S
    assert gateway.LambdaFunction("events", handler=None).timeout_s == contracts.API_FUNCTION_TIMEOUT_S
    assert settings.MIN_EVENTS_TIMEOUT_S <= contracts.API_FUNCTION_TIMEOUT_S
    context = config.load_cdk_json_context()
    for name in context[config.ENVIRONMENTS_CONTEXT_KEY]:
        assert config.from_context(context, env=name).lambdas.timeout_s >= settings.MIN_EVENTS_TIMEOUT_S
    raw = copy.deepcopy(context[config.ENVIRONMENTS_CONTEXT_KEY]["dev"])
    raw.setdefault("lambdas", {})["timeoutSeconds"] = 5
    with pytest.raises(config.ConfigError, match="too short for PutEvents"):
        config.parse_environment("dev", raw)
