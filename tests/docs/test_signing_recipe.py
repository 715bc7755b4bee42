"""The one SigV4 recipe the documents give for calling the deployed API with boto3's own
Personalize clients: a public ``before-sign`` event hook that makes them sign for
``execute-api``. The recipe is read from the documents themselves and run on real boto3
clients; the signed request is captured before it is sent (no network)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse

REPO = Path(__file__).resolve().parents[2]
RECIPE_DOCS = ["docs/MIGRATE.md", "docs/API.md", "docs/DEPLOY.md"]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
REGION = "eu-west-1"


def recipe(doc: str) -> str:
    """The python block of ``doc`` that registers a ``before-sign`` hook."""
    text = (REPO / doc).read_text(encoding="utf-8")
    blocks = [b for b in PYTHON_BLOCK.findall(text) if "before-sign" in b]
    assert len(blocks) == 1, f"{doc}: expected one python block with the before-sign hook"
    return blocks[0]


class _Raw:
    """The body of a canned HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def _clients(captured: list):
    """boto3's personalize-runtime and personalize-events clients pointed at an API Gateway URL,
    answering every request with a canned 200 after recording its signed headers."""

    def capture(request, **_):
        captured.append(dict(request.headers))
        body = b'{"itemList": []}' if "recommendations" in request.url else b"{}"
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw(body))

    made = []
    for service in ("personalize-runtime", "personalize-events"):
        client = boto3.client(
            service,
            region_name=REGION,
            endpoint_url=f"https://abc123.execute-api.{REGION}.amazonaws.com/v1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
        )
        client.meta.events.register("before-send", capture)
        made.append(client)
    return made


def _calls(runtime, events) -> None:
    runtime.get_recommendations(campaignArn="arn:aws:personalize:eu-west-1:1:campaign/x", userId="u1")
    events.put_events(trackingId="t", userId="u1", sessionId="s1",
                      eventList=[{"eventType": "click", "itemId": "i1", "sentAt": time.time()}])


def _scopes(captured: list) -> list[str]:
    scopes = []
    for headers in captured:
        auth = headers["Authorization"]
        auth = auth.decode() if isinstance(auth, bytes) else auth
        scopes.append(re.search(r"Credential=[^/]+/\d{8}/([^,]+),", auth).group(1))
    return scopes


def test_the_documents_give_one_recipe():
    recipes = {doc: recipe(doc) for doc in RECIPE_DOCS}
    assert len(set(recipes.values())) == 1, recipes


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_sets_the_private_signing_name(doc):
    assert "_request_signer" not in doc.read_text(encoding="utf-8")


def test_without_the_hook_the_clients_sign_for_personalize():
    captured: list = []
    _calls(*_clients(captured))
    assert _scopes(captured) == [f"{REGION}/personalize/aws4_request"] * 2


def test_the_recipe_makes_both_clients_sign_for_execute_api():
    captured: list = []
    runtime, events = _clients(captured)
    exec(recipe("docs/MIGRATE.md"), {"runtime": runtime, "events": events})
    _calls(runtime, events)
    assert _scopes(captured) == [f"{REGION}/execute-api/aws4_request"] * 2
