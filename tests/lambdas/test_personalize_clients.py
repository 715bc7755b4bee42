"""boto3's own personalize-runtime and personalize-events clients, unmodified, against the
handlers (in-process: a before-send hook turns the signed HTTP request into an API Gateway proxy
event and the handler's answer into the HTTP response botocore parses)."""

from __future__ import annotations

import time

import boto3
import pytest
from api_support import PersonalizeBridge
from botocore.exceptions import ClientError

URL = "https://api.recsys.local"


@pytest.fixture
def runtime(api_live):
    client = boto3.client("personalize-runtime", region_name="us-east-1", endpoint_url=URL)
    return PersonalizeBridge().attach(client)


@pytest.fixture
def events_client(api_live):
    client = boto3.client("personalize-events", region_name="us-east-1", endpoint_url=URL)
    return PersonalizeBridge().attach(client)


def test_get_recommendations_parses(runtime):
    out = runtime.get_recommendations(campaignArn="arn:aws:personalize:us-east-1:123456789012:campaign/demo",
                                      userId="boto-user", numResults=10)
    assert len(out["itemList"]) == 10
    assert all(set(e) == {"itemId", "score"} for e in out["itemList"])
    assert out["recommendationId"].startswith("RID-")
    assert "modelVersion" not in out  # our extensions are ignored by botocore, not an error


def test_related_items_and_metadata_parse(runtime):
    out = runtime.get_recommendations(campaignArn="arn:aws:personalize:us-east-1:1:campaign/x", itemId="i00013",
                                      numResults=5, metadataColumns={"ITEMS": ["title"]})
    assert len(out["itemList"]) == 5
    assert all("title" in e["metadata"] for e in out["itemList"])


def test_get_personalized_ranking_parses(runtime):
    inputs = ["i00001", "i00002", "i00003"]
    out = runtime.get_personalized_ranking(campaignArn="arn:aws:personalize:us-east-1:1:campaign/x",
                                           userId="boto-user", inputList=inputs,
                                           context={"DEVICE": "web"})
    assert sorted(e["itemId"] for e in out["personalizedRanking"]) == sorted(inputs)


def test_put_events_then_recommendations_reflect_them(runtime, events_client, api_live):
    first = runtime.get_recommendations(campaignArn="arn:aws:personalize:us-east-1:1:campaign/x", userId="boto-ev", numResults=5)
    seen = [e["itemId"] for e in first["itemList"][:2]]
    now = time.time()
    out = events_client.put_events(trackingId="trk-1", userId="boto-ev", sessionId="sess-1", eventList=[
        {"eventId": f"boto-{n}", "eventType": "click", "itemId": item, "sentAt": now + n,
         "properties": '{"device": "web"}'} for n, item in enumerate(seen)])
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    after = runtime.get_recommendations(campaignArn="arn:aws:personalize:us-east-1:1:campaign/x", userId="boto-ev", numResults=5)
    assert not set(seen) & {e["itemId"] for e in after["itemList"]}
    # retried by the SDK or the app: harmless
    events_client.put_events(trackingId="trk-1", userId="boto-ev", sessionId="sess-1", eventList=[
        {"eventId": f"boto-{n}", "eventType": "click", "itemId": item, "sentAt": now + n} for n, item in enumerate(seen)])
    row = api_live.user_row("boto-ev")
    assert [v["S"] for v in row["recentItems"]["L"]] == seen


def test_bad_requests_surface_as_client_errors_with_codes(runtime, events_client):
    with pytest.raises(ClientError) as exc:
        runtime.get_recommendations(userId="u", numResults=0)
    assert exc.value.response["Error"]["Code"] == "InvalidInputException"
    assert "numResults" in exc.value.response["Error"]["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(runtime.exceptions.ResourceNotFoundException) as missing:
        runtime.get_recommendations(itemId="no-such-item")
    assert "no-such-item" in str(missing.value)
    with pytest.raises(events_client.exceptions.InvalidInputException):
        events_client.put_events(trackingId="t", sessionId="s",
                                 eventList=[{"eventType": "click", "sentAt": time.time()}])  # no itemId


def test_signing_for_api_gateway_with_one_hook(api_live):
    """The deployed API uses IAM auth for execute-api; docs/API.md's hook re-targets the signature."""
    seen = {}

    def sign_for_api_gateway(request, **_):
        request.context.setdefault("signing", {})["signing_name"] = "execute-api"

    def capture(request, **_):
        seen["auth"] = request.headers.get("Authorization", b"")

    client = boto3.client("personalize-runtime", region_name="us-east-1", endpoint_url=URL,
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    client.meta.events.register("before-sign.personalize-runtime", sign_for_api_gateway)
    client.meta.events.register("before-send", capture)
    PersonalizeBridge().attach(client)
    out = client.get_recommendations(userId="signed", numResults=2)
    assert len(out["itemList"]) == 2
    auth = seen["auth"].decode() if isinstance(seen["auth"], bytes) else seen["auth"]
    assert "/us-east-1/execute-api/aws4_request" in auth
