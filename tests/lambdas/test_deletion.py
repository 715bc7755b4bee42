"""DELETE /users/{userId} (the right to be forgotten): the history and batch row go at once, a
retried old PutEvents does not bring them back, the deletion is recorded for training, and the
next answer is a new user's."""

from __future__ import annotations

import json

import api_support as sup
from api_support import call
from botocore.stub import Stubber
from recsys_lambdas import aws, contracts


def _events(items, start=1_700_000_000, prefix="del"):
    return [{"eventId": f"{prefix}-{n}", "eventType": "click", "itemId": item, "sentAt": start + n}
            for n, item in enumerate(items)]


def _put(user, events, session="del-session"):
    return call("POST", "/events", {"trackingId": "trk", "userId": user, "sessionId": session,
                                    "eventList": events})


def _batch_row(world, user):
    return world.ddb.get_item(TableName=sup.table(contracts.BATCH_RECOMMENDATIONS),
                              Key={"userId": {"S": user}}, ConsistentRead=True).get("Item")


def _items(answer):
    return [e["itemId"] for e in answer.body["itemList"]]


def test_delete_forgets_the_history_and_batch_row_and_records_the_deletion(api_live):
    user = sup.sample_users(api_live.model_paths["batch_dir"])[2]["userId"]
    assert _batch_row(api_live, user) is not None
    before = call("POST", "/recommendations", {"userId": user, "numResults": 10})
    events = _events(_items(before)[:3])
    assert _put(user, events).status == 200
    assert len(api_live.user_row(user)["recentItems"]["L"]) >= 3

    r = call("DELETE", f"/users/{user}")
    assert r.status == 200, r.body
    assert r.body["userId"] == user and r.body["deleted"]["batchRecommendations"] is True
    assert r.body["deleted"]["historyItems"] >= 3
    assert api_live.user_row(user) == {} and _batch_row(api_live, user) is None
    record = json.loads(api_live.s3.get_object(Bucket=sup.BUCKET, Key=contracts.deletion_key(user))["Body"].read())
    assert record == {"userId": user, "deletedAt": r.body["deletedAt"]}
    assert r.body["deletionRecord"] == contracts.deletion_key(user)

    # a retry of the PutEvents sent before the deletion is a duplicate: the history stays empty
    retry = _put(user, events)
    assert [e["status"] for e in retry.body["eventResults"]] == ["DUPLICATE"] * 3
    assert api_live.user_row(user) == {}

    # the next answer is the one a never-seen user gets
    after = call("POST", "/recommendations", {"userId": user, "numResults": 10})
    stranger = call("POST", "/recommendations", {"userId": "never-seen-user", "numResults": 10})
    assert after.status == stranger.status == 200
    assert _items(after) == _items(stranger) and _items(after) != _items(before)
    assert after.body["modelVersion"] == stranger.body["modelVersion"]

    # new activity after the deletion is recorded as a new user's
    fresh = _put(user, _events(["x-new"], start=1_800_000_000, prefix="del-new"))
    assert [e["status"] for e in fresh.body["eventResults"]] == ["ACCEPTED"]
    assert [v["S"] for v in api_live.user_row(user)["recentItems"]["L"]] == ["x-new"]


def test_deleting_an_unknown_user_is_idempotent(api_world):
    for _ in range(2):
        r = call("DELETE", "/users/nobody-here")
        assert r.status == 200, r.body
        assert r.body["deleted"] == {"historyItems": 0, "batchRecommendations": False}
    keys = [o["Key"] for o in api_world.s3.list_objects_v2(Bucket=sup.BUCKET,
                                                           Prefix=contracts.DELETIONS_PREFIX)["Contents"]]
    assert keys.count(contracts.deletion_key("nobody-here")) == 1


def test_a_user_id_with_slashes_and_spaces_is_one_user(api_world):
    user = "a b/c"
    assert _put(user, _events(["i1"], prefix="slash")).status == 200
    r = call("DELETE", "/users/a%20b%2Fc", path_parameters={"userId": user})
    assert r.status == 200, r.body
    assert r.body["userId"] == user and r.body["deleted"]["historyItems"] == 1
    assert api_world.user_row(user) == {}


def test_reserved_and_overlong_ids_are_400_and_delete_nothing(api_world):
    popular = {"userId": {"S": contracts.POPULAR_USER_ID}, "items": {"L": []}}
    api_world.ddb.put_item(TableName=sup.table(contracts.BATCH_RECOMMENDATIONS), Item=popular)
    for user in (contracts.POPULAR_USER_ID, contracts.session_owner("s"), contracts.SEARCH_ROW_PREFIX + "x",
                 "u" * 257):
        r = call("DELETE", f"/users/{user}")
        assert r.status == 400, (user, r.body)
        assert r.headers["X-Amzn-ErrorType"] == "InvalidInputException"
        assert "userId" in r.body["message"]
    assert _batch_row(api_world, contracts.POPULAR_USER_ID) is not None


def test_when_the_deletion_cannot_be_recorded_nothing_is_deleted(api_world):
    user = "del-s3-down"
    assert _put(user, _events(["i1"], prefix="s3down")).status == 200
    s3 = aws.client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("put_object", service_error_code="ServiceUnavailable", http_status_code=503)
        r = call("DELETE", f"/users/{user}")
    assert r.status == 503 and "nothing was deleted" in r.body["message"]
    assert r.headers["Retry-After"] == "1"
    assert api_world.user_row(user) != {}


def test_other_methods_on_a_user_are_405(api_world):
    r = call("GET", "/users/someone")
    assert r.status == 405 and r.headers["Allow"] == "DELETE"
