"""The Lambda builds endpoint requests as plain dicts (the Lambda package does not ship the ML
core): every one of them must pass recsys.protocol.parse_request, and every answer shape the
protocol defines must map to the right API outcome."""

from __future__ import annotations

import json

import pytest
from recsys import protocol
from recsys_lambdas import endpoint_client as ec
from recsys_lambdas.errors import InvalidInput, NotImplementedByModel, ResourceNotFound

FILTERS = {"excludeItemIds": ["a", "b"], "includeCategories": ["Comedy"], "excludeCategories": []}
LONG_HISTORY = [f"i{n}" for n in range(ec.MAX_HISTORY + 50)]

BUILT = [
    ec.recommend_request([], 10),
    ec.recommend_request(["i1", "i2"], 25, FILTERS, {"DEVICE": "web"}),
    ec.recommend_request(LONG_HISTORY, ec.MAX_K),
    ec.similar_request("i1", 7, FILTERS),
    ec.similar_request("i1", 1),
    ec.rank_request(["i1"], ["i2", "i3"]),
    ec.rank_request(LONG_HISTORY, ["i2"]),
    ec.search_request("star wars", 10, ["i1"], FILTERS),
    ec.popular_request(5, FILTERS),
]


@pytest.mark.parametrize("request_body", BUILT, ids=[b["action"] for b in BUILT])
def test_every_built_request_passes_the_protocol(request_body):
    parsed = protocol.parse_request(json.loads(json.dumps(request_body)))
    assert parsed.action == request_body["action"]
    assert len(parsed.history) <= protocol.MAX_HISTORY
    if "k" in request_body:
        assert parsed.k == request_body["k"]


def test_limits_mirror_the_protocol():
    assert ec.MAX_HISTORY == protocol.MAX_HISTORY
    assert ec.MAX_K == protocol.MAX_K
    assert ec.FILTER_KEYS == protocol.FILTER_KEYS
    assert ec.recommend_request(LONG_HISTORY, 1)["history"][-1] == LONG_HISTORY[-1]  # keeps the newest


def test_service_requests_pass_the_protocol(api_live):
    """The requests the handlers actually sent during a few calls, checked the same way."""
    from api_support import call

    call("POST", "/recommendations", {"userId": "p", "numResults": 3, "filter": {"excludeCategories": ["Comedy"]},
                                      "context": {"recentItems": "i00001", "DEVICE": "tv"}})
    call("POST", "/recommendations", {"itemId": "i00002", "numResults": 3})
    call("POST", "/personalize-ranking", {"userId": "p", "inputList": ["i00001", "i00003"]})
    call("GET", "/search", query={"q": "the", "userId": "p"})
    assert len(api_live.model.requests) == 4
    for sent in api_live.model.requests:
        protocol.parse_request(sent)


def test_answers_map_to_outcomes():
    ok = ec.parse_answer(b'{"items": [{"itemId": "a", "score": 0.5}], "modelVersion": "v1"}', "recommend")
    assert ok.items == [("a", 0.5)] and ok.model_version == "v1"
    with pytest.raises(ResourceNotFound, match="zz"):
        ec.parse_answer(json.dumps(protocol.error_response(protocol.ItemNotFound("item 'zz' unknown"))).encode(), "similar")
    with pytest.raises(InvalidInput, match="k must"):
        ec.parse_answer(json.dumps(protocol.error_response(protocol.InvalidRequest("k must be..."))).encode(), "recommend")
    with pytest.raises(NotImplementedByModel):
        ec.parse_answer(b'{"error": {"type": "InvalidRequest", "message": "this model has no text index"}}', "search")
    for garbage in (b"not json", b"[]", b'{"nothing": 1}', b'{"items": [{"score": 1}]}'):
        with pytest.raises(ec.EndpointUnavailable):
            ec.parse_answer(garbage, "recommend")
    inf = ec.parse_answer(b'{"items": [{"itemId": "a", "score": Infinity}]}', "recommend")
    assert inf.items == [("a", 0.0)]


def test_the_user_id_reaches_the_model_for_its_user_attributes():
    """recommend, rank and search carry ``userId`` (a model trained with a users file reads the
    user's attributes by it); without one the key is absent, as before."""
    with_user = [ec.recommend_request(["i1"], 5, user_id="u1"), ec.rank_request(["i1"], ["i2"], user_id="u1"),
                 ec.search_request("star", 5, user_id="u1")]
    for body in with_user:
        assert protocol.parse_request(json.loads(json.dumps(body))).user_id == "u1"
    assert "userId" not in ec.recommend_request(["i1"], 5) and "userId" not in ec.rank_request([], ["i2"])
