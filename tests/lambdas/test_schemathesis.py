"""Schemathesis over the OpenAPI document against the handlers in-process (moto + the real
model), all checks: no server error, every answer conforms to the document, invalid data is
rejected and valid data accepted. A bounded number of examples keeps it fast; the reliability
suite runs it longer over HTTP against the local stack."""

from __future__ import annotations

import api_support as sup
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from recsys_lambdas.validation import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.update(base_url="http://api.local")


@pytest.fixture
def wsgi(api_live):
    return sup.wsgi_app


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_conforms_to_its_document(case, wsgi):
    case.call_and_validate(app=wsgi)
