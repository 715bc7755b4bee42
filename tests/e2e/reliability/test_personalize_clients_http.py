"""boto3's own Personalize clients, unmodified, against the local stack over HTTP."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.e2e
CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/local"


def client(service, url):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def test_runtime_and_events_clients_work_unmodified(reliability_stack):
    url = reliability_stack["url"]
    runtime, events = client("personalize-runtime", url), client("personalize-events", url)
    cold = runtime.get_recommendations(campaignArn=CAMPAIGN, userId="boto-http-user", numResults=10)
    items = [e["itemId"] for e in cold["itemList"]]
    assert len(items) == 10 and all("score" in e for e in cold["itemList"]) and cold["recommendationId"]
    related = runtime.get_recommendations(campaignArn=CAMPAIGN, itemId=items[0], numResults=5)
    assert items[0] not in [e["itemId"] for e in related["itemList"]]
    now = dt.datetime.now(dt.timezone.utc)
    events.put_events(trackingId="t", userId="boto-http-user", sessionId="s", eventList=[
        {"eventId": f"boto-http-{i}", "eventType": "click", "itemId": item, "sentAt": now}
        for i, item in enumerate(items[:3])])
    after = runtime.get_recommendations(campaignArn=CAMPAIGN, userId="boto-http-user", numResults=10)
    assert not set(items[:3]) & {e["itemId"] for e in after["itemList"]}  # seen items are filtered out
    ranking = runtime.get_personalized_ranking(campaignArn=CAMPAIGN, userId="boto-http-user", inputList=items[3:8])
    assert sorted(e["itemId"] for e in ranking["personalizedRanking"]) == sorted(items[3:8])


def test_a_bad_request_is_a_client_error_with_a_meaningful_code(reliability_stack):
    runtime = client("personalize-runtime", reliability_stack["url"])
    with pytest.raises(ClientError) as err:
        runtime.get_recommendations(campaignArn=CAMPAIGN, itemId="no-such-item-anywhere", numResults=5)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
