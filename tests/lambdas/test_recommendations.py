"""The recommendation routes against moto, with the endpoint answered by the project's real
inference code (sagemaker/inference.py on a model trained once per session)."""

from __future__ import annotations

import json

import api_support as sup
import pytest
from api_support import call
from recsys_lambdas import contracts


def _known_user(world) -> dict:
    return sup.sample_users(world.model_paths["batch_dir"])[0]


def test_cold_user_gets_ten_scored_items_from_the_model(api_live):
    r = call("POST", "/recommendations", {"userId": "never-seen-before", "numResults": 10})
    assert r.status == 200, r.body
    assert len(r.body["itemList"]) == 10
    assert all(isinstance(e["score"], float) for e in r.body["itemList"])
    assert r.body["degraded"] is False
    assert r.body["recommendationId"].startswith("RID-")
    assert r.body["modelVersion"] == api_live.model.model.model_version
    assert api_live.model.requests[-1]["action"] == "recommend"
    assert api_live.model.requests[-1]["history"] == []


def test_default_num_results_is_personalize_default(api_live):
    r = call("POST", "/recommendations", {"userId": "u-default"})
    assert r.status == 200
    assert len(r.body["itemList"]) == 25


def test_known_user_history_is_read_and_seen_items_are_not_recommended(api_live):
    user = _known_user(api_live)
    r = call("POST", "/recommendations", {"userId": user["userId"], "numResults": 20})
    assert r.status == 200
    sent = api_live.model.requests[-1]
    assert sent["history"] == user["recentItems"]
    assert not {e["itemId"] for e in r.body["itemList"]} & set(user["recentItems"])


def test_context_recent_items_are_merged_into_the_history(api_live):
    r = call("POST", "/recommendations",
             {"userId": "ctx-user", "numResults": 5, "context": {"recentItems": '["i00010","i00011"]', "DEVICE": "mobile"}})
    assert r.status == 200
    sent = api_live.model.requests[-1]
    assert sent["history"] == ["i00010", "i00011"]
    assert sent["context"] == {"DEVICE": "mobile"}
    assert not {"i00010", "i00011"} & {e["itemId"] for e in r.body["itemList"]}
    r2 = call("POST", "/recommendations", {"userId": "ctx-user", "numResults": 5, "context": {"recentItems": "i00010, i00011"}})
    assert api_live.model.requests[-1]["history"] == ["i00010", "i00011"]
    assert r2.status == 200
    # not a JSON array of strings: read as comma-separated rather than rejected (the schema allows it)
    r3 = call("POST", "/recommendations", {"userId": "ctx-user", "numResults": 5, "context": {"recentItems": "[i00010"}})
    assert r3.status == 200 and api_live.model.requests[-1]["history"] == ["[i00010"]


def test_filter_extension_excludes_items_and_categories(api_live):
    first = call("POST", "/recommendations", {"userId": "f-user", "numResults": 10}).body["itemList"]
    banned = [e["itemId"] for e in first[:3]]
    r = call("POST", "/recommendations",
             {"userId": "f-user", "numResults": 10, "filter": {"excludeItemIds": banned, "includeCategories": ["Documentary"]}})
    assert r.status == 200
    ids = [e["itemId"] for e in r.body["itemList"]]
    assert not set(ids) & set(banned)
    cats = {api_live.model.model.item_info(i)["category"] for i in ids}
    assert cats <= {"Documentary"}


def test_named_filter_by_arn_with_filter_values(api_live, monkeypatch):
    from api_support import set_env

    set_env(monkeypatch, NAMED_FILTERS=json.dumps({"by-category": {"includeCategories": ["$CATS"]}}))
    api_live.model.attach(api_live.handler_client("sagemaker-runtime"))
    arn = "arn:aws:personalize:us-east-1:123456789012:filter/by-category"
    r = call("POST", "/recommendations", {"userId": "nf", "numResults": 10, "filterArn": arn,
                                         "filterValues": {"CATS": '"Documentary","Comedy"'}})
    assert r.status == 200, r.body
    assert api_live.model.requests[-1]["filters"]["includeCategories"] == ["Comedy", "Documentary"]
    missing = call("POST", "/recommendations", {"userId": "nf", "filterArn": arn.replace("by-category", "nope")})
    assert missing.status == 404 and "nope" in missing.body["message"]
    no_values = call("POST", "/recommendations", {"userId": "nf", "filterArn": arn})
    assert no_values.status == 400 and "filterValues.CATS" in no_values.body["message"]


def test_related_items_by_item_id_exclude_the_item(api_live):
    r = call("POST", "/recommendations", {"itemId": "i00013", "numResults": 10})
    assert r.status == 200
    ids = [e["itemId"] for e in r.body["itemList"]]
    assert len(ids) == 10 and "i00013" not in ids
    assert api_live.model.requests[-1]["action"] == "similar"


def test_similar_items_route_excludes_the_item_itself(api_live):
    r = call("GET", "/items/i00013/similar", query={"numResults": "7"})
    assert r.status == 200
    ids = [e["itemId"] for e in r.body["itemList"]]
    assert len(ids) == 7 and "i00013" not in ids
    assert r.body["degraded"] is False


def test_unknown_item_is_404_with_message(api_live):
    r = call("GET", "/items/no-such-item/similar")
    assert r.status == 404
    assert r.error_type == "ResourceNotFoundException"
    assert "no-such-item" in r.body["message"]
    r2 = call("POST", "/recommendations", {"itemId": "no-such-item"})
    assert r2.status == 404 and "no-such-item" in r2.body["message"]


def test_item_ids_with_unusual_characters_still_route(api_live):
    r = call("GET", "/items/a%23b%22c/similar")
    assert r.status == 404
    assert "a#b\"c" in r.body["message"]


def test_personalized_ranking_returns_exactly_the_input_items(api_live):
    user = _known_user(api_live)
    inputs = ["i00001", "i00002", "i00204", "unknown-item", "i00030"]
    r = call("POST", "/personalize-ranking", {"userId": user["userId"], "inputList": inputs,
                                             "campaignArn": "arn:aws:personalize:us-east-1:1:campaign/x"})
    assert r.status == 200, r.body
    ranked = [e["itemId"] for e in r.body["personalizedRanking"]]
    assert sorted(ranked) == sorted(inputs)
    scores = [e["score"] for e in r.body["personalizedRanking"]]
    assert scores == sorted(scores, reverse=True)
    assert r.body["degraded"] is False
    assert api_live.model.requests[-1]["itemIds"] == inputs


def test_ranking_rejects_duplicate_inputs(api_live):
    r = call("POST", "/personalize-ranking", {"userId": "u", "inputList": ["i00001", "i00002", "i00001"]})
    assert r.status == 400
    assert "body.inputList must contain unique items" in r.body["message"]


def test_metadata_columns_return_titles(api_live):
    r = call("POST", "/recommendations", {"userId": "meta", "numResults": 3, "metadataColumns": {"ITEMS": ["title", "category"]}})
    assert r.status == 200
    for entry in r.body["itemList"]:
        info = api_live.model.model.item_info(entry["itemId"])
        assert entry["metadata"] == {"title": info["title"], "category": info["category"]}


def test_search_finds_a_title_and_personalises(api_live):
    title = api_live.model.model.item_info("i00001")["title"]
    r = call("GET", "/search", query={"q": title, "numResults": "5"})
    assert r.status == 200, r.body
    assert "i00001" in [e["itemId"] for e in r.body["itemList"]]
    user = _known_user(api_live)
    r2 = call("GET", "/search", query={"q": title, "userId": user["userId"], "numResults": "5"})
    assert r2.status == 200
    assert api_live.model.requests[-1]["history"] == user["recentItems"]


@pytest.mark.parametrize("query,fragment", [({"q": ""}, "q"), ({"q": "x" * 300}, "q"), ({}, "q is required"),
                                            ({"q": "a", "numResults": "abc"}, "numResults")])
def test_search_bad_query_is_400(api_live, query, fragment):
    r = call("GET", "/search", query=query)
    assert r.status == 400, r.body
    assert fragment in r.body["message"]


def test_health_and_openapi(api_env):
    from recsys_lambdas.validation import openapi_document

    h = call("GET", "/health")
    assert h.status == 200 and h.body == {"status": "ok", "servingMode": "realtime", "endpointConfigured": True}
    doc = call("GET", "/openapi.json")
    assert doc.status == 200 and doc.body == openapi_document()


def test_popular_row_constant_is_never_a_user_answer(api_live):
    # a client asking for the popular pseudo-user gets the model's answer for it, not a crash
    r = call("POST", "/recommendations", {"userId": contracts.POPULAR_USER_ID, "numResults": 5})
    assert r.status == 200 and len(r.body["itemList"]) == 5
    assert sup.table(contracts.USERS)
