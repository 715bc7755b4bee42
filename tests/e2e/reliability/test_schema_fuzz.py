"""Schemathesis against the running local stack, with every check enabled: no server error,
every status code, header and body conforms to the document, invalid requests are rejected (4xx)
and valid ones accepted.

The requests go over loopback HTTP through the API Gateway emulator, the real Lambda handlers,
DynamoDB on the embedded moto and the SageMaker endpoint emulator serving the trained model.
``make test`` tries a few examples per operation; ``make fuzz`` tries 500.

The schema is loaded at collection time from the package's document (schemathesis 4's
fixture-based lazy loader fails under pytest 9: ``Function`` has no ``_nodeid``), and the first
test proves the stack serves exactly that document at ``GET /openapi.json``.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from recsys_lambdas.validation import openapi_document

from .conftest import FIGURES, FUZZ

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=30)
schema.config.generation.update(max_examples=FUZZ["examples"])

TALLY: Counter = Counter()

# The methods the local API Gateway emulator dispatches (schemathesis also sends TRACE and QUERY).
EMULATOR_DISPATCHED_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "QUERY"}


@pytest.fixture(scope="module")
def http_session():
    with requests.Session() as session:
        yield session


STARTED: list = []  # when the first example was sent (the stack's start-up is not counted)


def record(outcome) -> None:
    if not STARTED:
        STARTED.append(time.monotonic())
    TALLY[str(outcome)] += 1
    FIGURES["schema_fuzz"] = {
        "max_examples_per_operation": FUZZ["examples"], "operations": len(DOCUMENT["paths"]),
        "requests_checked": sum(v for k, v in TALLY.items() if k.isdigit()),
        "by_status": dict(sorted(TALLY.items())), "seconds": round(time.monotonic() - STARTED[0], 1)}


def test_the_stack_serves_the_fuzzed_document(reliability_stack, http_session):
    resp = http_session.get(reliability_stack["url"] + "/openapi.json", timeout=30)
    assert resp.status_code == 200
    assert resp.json() == DOCUMENT


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case, reliability_stack, http_session):
    if case.method.upper() not in EMULATOR_DISPATCHED_METHODS:
        record(f"skipped {case.method.upper()}")
        return
    response = case.call_and_validate(base_url=reliability_stack["url"], session=http_session)
    record(response.status_code)


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_an_undeclared_method_is_a_json_405(method, reliability_stack, http_session):
    resp = http_session.request(method, reliability_stack["url"] + "/health", timeout=30)
    assert resp.status_code == 405
    assert resp.headers.get("Allow")
    assert "message" in resp.json()

