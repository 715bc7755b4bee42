"""Faults: the endpoint fails (ModelError, throttling, timeout, missing) or is not configured,
DynamoDB throttles. The API answers from the batch table with ``degraded: true`` and a metric,
or with 503 + Retry-After past the DynamoDB budget; never a traceback."""

from __future__ import annotations

import json
import re
import time

import api_support as sup
import pytest
from api_support import call, set_env
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from recsys_lambdas import aws, contracts, feature_store


def _batch_row(world, user_id):
    for row in sup.read_jsonl(world.model_paths["batch_dir"] / "recommendations.jsonl"):
        if row["userId"] == user_id:
            return row
    raise AssertionError(user_id)


def _stub_endpoint_error(code: str, status: int) -> Stubber:
    stub = Stubber(aws.client("sagemaker-runtime"))
    stub.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status,
                          service_message=f"injected {code}")
    stub.activate()
    return stub


@pytest.mark.parametrize("code,status", [("ModelError", 424), ("ThrottlingException", 400),
                                         ("ServiceUnavailable", 503), ("ModelNotReadyException", 429),
                                         ("ValidationError", 400)])
def test_endpoint_errors_fall_back_to_the_users_batch_row(api_live, code, status, capsys):
    user = sup.sample_users(api_live.model_paths["batch_dir"])[0]
    stub = _stub_endpoint_error(code, status)
    r = call("POST", "/recommendations", {"userId": user["userId"], "numResults": 10})
    stub.assert_no_pending_responses()
    assert r.status == 200, r.body
    assert r.body["degraded"] is True
    # the user's row first, topped up from the popular row; the history is never recommended
    ranked = [e["itemId"] for e in _batch_row(api_live, user["userId"])["items"]]
    ranked += [e["itemId"] for e in _batch_row(api_live, contracts.POPULAR_USER_ID)["items"] if e["itemId"] not in ranked]
    expected = [i for i in ranked if i not in set(user["recentItems"])][:10]
    assert expected[0] in ranked[:len(_batch_row(api_live, user["userId"])["items"])]
    assert [e["itemId"] for e in r.body["itemList"]] == expected
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("DegradedResponses") == [1.0] or m.get("DegradedResponses") == 1.0 for m in metrics)
    assert any("EndpointErrors" in m for m in metrics)


@pytest.mark.parametrize("exc", [ReadTimeoutError(endpoint_url="https://runtime.sagemaker/invocations"),
                                 ConnectTimeoutError(endpoint_url="https://runtime.sagemaker"),
                                 EndpointConnectionError(endpoint_url="https://runtime.sagemaker")])
def test_endpoint_timeouts_fall_back(api_live, exc):
    def boom(**_):
        raise exc

    client = aws.client("sagemaker-runtime")
    client.meta.events.register_first("before-send.sagemaker-runtime.InvokeEndpoint", boom)
    r = call("POST", "/recommendations", {"userId": "cold-timeout", "numResults": 5})
    assert r.status == 200
    assert r.body["degraded"] is True
    popular = [e["itemId"] for e in _batch_row(api_live, contracts.POPULAR_USER_ID)["items"]][:5]
    assert [e["itemId"] for e in r.body["itemList"]] == popular


def test_a_slow_endpoint_is_cut_off_by_the_read_timeout(api_live, monkeypatch):
    """A real socket that accepts and never answers: the read timeout fires and we fall back."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        set_env(monkeypatch, **{contracts.ENV_SAGEMAKER_ENDPOINT_URL: f"http://127.0.0.1:{port}",
                                contracts.ENV_ENDPOINT_TIMEOUT_S: "0.3"})
        started = time.monotonic()
        r = call("POST", "/recommendations", {"userId": "slow", "numResults": 5})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert r.status == 200 and r.body["degraded"] is True
    # botocore's default read timeout is 60 s; ours cut the wait (bound generous for busy CI)
    assert elapsed < 20.0


def test_garbled_endpoint_answer_falls_back(api_live):
    client = aws.client("sagemaker-runtime")
    client.meta.events.register_first(
        "before-send.sagemaker-runtime.InvokeEndpoint",
        lambda request, **_: sup.http_response(request.url, 200, {}, b"<html>oops</html>"))
    r = call("POST", "/recommendations", {"userId": "garbled", "numResults": 3})
    assert r.status == 200 and r.body["degraded"] is True


def test_batch_mode_answers_from_the_table_without_calling_the_endpoint(api_live, monkeypatch):
    user = sup.sample_users(api_live.model_paths["batch_dir"])[1]
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: ""})
    stub = Stubber(aws.client("sagemaker-runtime"))  # no responses queued: any call would fail
    stub.activate()
    r = call("POST", "/recommendations", {"userId": user["userId"], "numResults": 10})
    assert r.status == 200 and r.body["degraded"] is True
    assert r.body["modelVersion"] == _batch_row(api_live, user["userId"])["modelVersion"]
    assert len(r.body["itemList"]) == 10
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: sup.ENDPOINT, contracts.ENV_SERVING_MODE: "batch"})
    r2 = call("POST", "/recommendations", {"userId": user["userId"], "numResults": 10})
    assert r2.body["degraded"] is True
    assert r2.body["itemList"] == r.body["itemList"]
    health = call("GET", "/health")
    assert health.body["servingMode"] == "batch"


def test_degraded_answers_apply_filters_and_the_history(api_live, monkeypatch):
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: ""})
    popular = [e["itemId"] for e in _batch_row(api_live, contracts.POPULAR_USER_ID)["items"]]
    r = call("POST", "/recommendations", {"userId": "fresh", "numResults": 5,
                                         "context": {"recentItems": popular[0]},
                                         "filter": {"excludeItemIds": [popular[1]], "includeCategories": ["Documentary", "Comedy"]}})
    assert r.status == 200
    ids = [e["itemId"] for e in r.body["itemList"]]
    assert popular[0] not in ids and popular[1] not in ids
    cats = {row["itemId"]: row["category"] for row in sup.read_jsonl(api_live.model_paths["batch_dir"] / "items.jsonl")}
    assert {cats[i] for i in ids} <= {"Documentary", "Comedy"}


def test_degraded_similar_items_and_unknown_item(api_live, monkeypatch):
    stub = _stub_endpoint_error("ModelError", 424)
    r = call("GET", "/items/i00013/similar", query={"numResults": "5"})
    assert r.status == 200 and r.body["degraded"] is True
    assert "i00013" not in [e["itemId"] for e in r.body["itemList"]]
    stub.deactivate()
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: ""})
    missing = call("GET", "/items/not-an-item/similar")
    assert missing.status == 404 and "not-an-item" in missing.body["message"]


def test_degraded_ranking_keeps_exactly_the_input(api_live, monkeypatch):
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: ""})
    popular = [e["itemId"] for e in _batch_row(api_live, contracts.POPULAR_USER_ID)["items"]]
    inputs = ["zzz-unknown", popular[5], popular[0]]
    r = call("POST", "/personalize-ranking", {"userId": "rank-degraded", "inputList": inputs})
    assert r.status == 200 and r.body["degraded"] is True
    assert [e["itemId"] for e in r.body["personalizedRanking"]] == [popular[0], popular[5], "zzz-unknown"]


def _items_with_words(world, *words):
    """Independently of the service: items whose title or category has all ``words``, most
    popular first (ties in catalogue order)."""
    items = sup.read_jsonl(world.model_paths["batch_dir"] / "items.jsonl")
    has = [e for e in items
           if set(words) <= set(re.findall(r"[a-z0-9]+", (e["title"] + " " + e["category"]).lower()))]
    return [e["itemId"] for e in sorted(has, key=lambda e: -e["popularity"])]


def test_search_with_the_endpoint_down_matches_title_words_by_popularity(api_live):
    word = "village"
    expected = _items_with_words(api_live, word)
    assert len(expected) > 3  # the synthetic catalogue has several; a real check, not an empty one
    stub = _stub_endpoint_error("ModelError", 424)
    r = call("GET", "/search", query={"q": "Village!", "numResults": "3"})
    stub.assert_no_pending_responses()
    assert r.status == 200, r.body
    assert r.body["degraded"] is True
    assert [e["itemId"] for e in r.body["itemList"]] == expected[:3]
    assert all(e["score"] == 1.0 for e in r.body["itemList"])


def test_degraded_search_puts_items_with_every_word_first(api_live, monkeypatch):
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: ""})  # batch mode: no endpoint at all
    both = _items_with_words(api_live, "distant", "village")
    assert both
    r = call("GET", "/search", query={"q": "distant village", "numResults": "50"})
    assert r.status == 200 and r.body["degraded"] is True
    got = [e["itemId"] for e in r.body["itemList"]]
    assert got[:len(both)] == both
    assert {e["score"] for e in r.body["itemList"][:len(both)]} == {1.0}
    assert all(e["score"] == 0.5 for e in r.body["itemList"][len(both):])  # one word of two
    assert len(got) > len(both)
    nothing = call("GET", "/search", query={"q": "qwertyuiop"})
    assert nothing.status == 200 and nothing.body["itemList"] == [] and nothing.body["degraded"] is True


def test_degraded_search_without_batch_data_is_503(api_live, monkeypatch):
    empty = "recsys-test-empty-search"
    api_live.ddb.create_table(TableName=empty, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}])
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: "", contracts.ENV_BATCH_TABLE: empty})
    r = call("GET", "/search", query={"q": "village"})
    assert r.status == 503 and int(r.headers["Retry-After"]) > 0
    assert "no batch data" in r.body["message"]


def test_no_model_and_no_batch_data_is_503_with_retry_after(api_live, monkeypatch):
    empty = "recsys-test-empty-batch"
    api_live.ddb.create_table(TableName=empty, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}])
    set_env(monkeypatch, **{contracts.ENV_ENDPOINT_NAME: "", contracts.ENV_BATCH_TABLE: empty})
    r = call("POST", "/recommendations", {"userId": "anyone"})
    assert r.status == 503
    assert r.error_type == "ServiceUnavailableException"
    assert int(r.headers["Retry-After"]) > 0
    assert "batch" in r.body["message"]


# --- DynamoDB throttling ---------------------------------------------------------------------


def _throttle(client, times: int, operation: str = "GetItem"):
    """Answer the next ``times`` calls of ``operation`` with a throttling error over the wire, so
    the client's own error parsing and our retry loop both run (Stubber would bypass parsing)."""
    state = {"left": times, "seen": 0}

    def hook(request, **_):
        state["seen"] += 1
        if state["left"] > 0:
            state["left"] -= 1
            body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                               "message": "injected throttle"}).encode()
            return sup.http_response(request.url, 400, {"x-amzn-RequestId": "t"}, body)
        return None

    client.meta.events.register_first(f"before-send.dynamodb.{operation}", hook)
    return state


def test_dynamodb_throttling_is_retried_with_backoff(api_live):
    state = _throttle(aws.client("dynamodb"), times=2)
    r = call("POST", "/recommendations", {"userId": "throttled-then-ok", "numResults": 3})
    assert r.status == 200 and r.body["degraded"] is False
    assert state["seen"] == 3


def test_dynamodb_throttling_past_the_budget_is_503_with_retry_after(api_live, monkeypatch):
    monkeypatch.setattr(feature_store, "DYNAMODB_BUDGET_S", 0.2)
    state = _throttle(aws.client("dynamodb"), times=10_000)
    started = time.monotonic()
    r = call("POST", "/recommendations", {"userId": "always-throttled"})
    assert time.monotonic() - started < 1.0
    assert r.status == 503, r.body
    assert r.error_type == "ServiceUnavailableException"
    assert r.headers["Retry-After"] == "1"
    assert "ProvisionedThroughputExceededException" in r.body["message"]
    assert state["seen"] >= 2


def test_dynamodb_throttling_with_stubber_is_503(api_live):
    """Stubber answers without the retry hooks; our loop still retries and gives up cleanly."""
    stub = Stubber(aws.client("dynamodb"))
    for _ in range(200):
        stub.add_client_error("get_item", service_error_code="ProvisionedThroughputExceededException",
                              http_status_code=400)
    stub.activate()
    r = call("POST", "/personalize-ranking", {"userId": "stubbed", "inputList": ["i00001"]})
    assert r.status == 503 and r.headers["Retry-After"] == "1"


def test_other_dynamodb_errors_are_500_without_details(api_live):
    stub = Stubber(aws.client("dynamodb"))
    stub.add_client_error("get_item", service_error_code="AccessDeniedException", http_status_code=400)
    stub.activate()
    r = call("POST", "/recommendations", {"userId": "denied"})
    assert r.status == 500 and r.error_type == "InternalFailure"
    assert "AccessDenied" not in r.body["message"]
