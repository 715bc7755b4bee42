"""Bad input gets a 4xx with a JSON message naming the problem, and the error type header AWS
SDKs read; never a 5xx. No model needed: validation happens before any AWS call."""

from __future__ import annotations

import json

import pytest
from api_support import call
from recsys_lambdas.settings import MAX_BODY_BYTES


@pytest.mark.parametrize("path,raw,fragment", [
    ("/recommendations", "{not json", "not valid JSON"),
    ("/recommendations", "", "body is required"),
    ("/recommendations", "[1, 2]", "must be object"),
    ("/recommendations", '{"userId": NaN}', "not valid JSON"),
    ("/recommendations", '{"userId": "\\ud800"}', "surrogate"),
    ("/personalize-ranking", "null", "must be object"),
    ("/events", "\"just a string\"", "must be object"),
])
def test_malformed_bodies(api_world, path, raw, fragment):
    r = call("POST", path, raw_body=raw)
    assert r.status == 400, r.body
    assert r.error_type == "InvalidInputException"
    assert fragment in r.body["message"]


@pytest.mark.parametrize("body,fragment", [
    ({}, "one of userId, itemId"),
    ({"numResults": 5}, "one of userId, itemId"),
    ({"userId": 42}, "body.userId must be string"),
    ({"userId": ""}, "body.userId"),
    ({"userId": "u" * 257}, "body.userId"),
    ({"userId": "u", "numResults": 0}, "body.numResults must be bigger than or equal to 1"),
    ({"userId": "u", "numResults": -1}, "body.numResults"),
    ({"userId": "u", "numResults": 501}, "body.numResults must be smaller than or equal to 500"),
    ({"userId": "u", "numResults": 10**30}, "body.numResults"),
    ({"userId": "u", "numResults": "10"}, "body.numResults must be integer"),
    ({"userId": "u", "numResults": True}, "body.numResults must be integer"),
    ({"userId": "u", "context": {"recentItems": ["i1"]}}, "body.context"),
    ({"userId": "u", "context": {"k": "x" * 1001}}, "body.context.k"),
    ({"userId": "u", "filter": {"excludeItemIds": "i1"}}, "body.filter.excludeItemIds must be array"),
    ({"userId": "u", "filter": {"colour": ["red"]}}, "body.filter has unknown field(s) colour"),
    ({"userId": "u", "filterArn": "not-an-arn"}, "body.filterArn"),
    ({"userId": "u", "surprise": 1}, "unknown field(s) surprise"),
])
def test_get_recommendations_bad_fields(api_world, body, fragment):
    r = call("POST", "/recommendations", body)
    assert r.status == 400, r.body
    assert r.error_type == "InvalidInputException"
    assert fragment in r.body["message"], r.body["message"]


@pytest.mark.parametrize("body,fragment", [
    ({"userId": "u"}, "inputList"),
    ({"inputList": ["a"]}, "userId"),
    ({"userId": "u", "inputList": []}, "body.inputList must contain at least 1 items"),
    ({"userId": "u", "inputList": [1]}, "body.inputList[0] must be string"),
    ({"userId": "u", "inputList": ["i"] * 501}, "body.inputList"),
])
def test_ranking_bad_fields(api_world, body, fragment):
    r = call("POST", "/personalize-ranking", body)
    assert r.status == 400
    assert fragment in r.body["message"], r.body["message"]


@pytest.mark.parametrize("query,fragment", [
    ({"numResults": "0"}, "numResults"), ({"numResults": "-1"}, "numResults"),
    ({"numResults": "9999"}, "numResults"), ({"numResults": "ten"}, "numResults must be an integer"),
])
def test_similar_bad_query(api_world, query, fragment):
    r = call("GET", "/items/i1/similar", query=query)
    assert r.status == 400
    assert fragment in r.body["message"]


def test_oversize_body_is_413(api_world):
    r = call("POST", "/recommendations", raw_body=json.dumps({"userId": "u", "pad": "x" * MAX_BODY_BYTES}))
    assert r.status == 413
    assert r.error_type == "PayloadTooLargeException"
    assert str(MAX_BODY_BYTES) in r.body["message"]


def test_base64_bodies_are_decoded(api_world):
    r = call("POST", "/recommendations", {"userId": 5}, base64_body=True)
    assert r.status == 400 and "body.userId must be string" in r.body["message"]


def test_wrong_method_is_405_with_allow(api_world):
    r = call("GET", "/recommendations")
    assert r.status == 405
    assert r.headers["Allow"] == "POST"
    assert r.error_type == "MethodNotAllowedException"


def test_unknown_path_is_404(api_world):
    r = call("POST", "/nothing-here", {"x": 1})
    assert r.status == 404 and "no route" in r.body["message"]


def test_unexpected_fault_is_a_500_without_internals(api_world, monkeypatch):
    from recsys_lambdas import service

    def explode(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "get_recommendations", explode)
    r = call("POST", "/recommendations", {"userId": "u"})
    assert r.status == 500 and r.error_type == "InternalFailure"
    assert "secret" not in r.body["message"]
