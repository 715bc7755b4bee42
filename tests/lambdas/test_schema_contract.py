"""The interactions schema (recsys.schemas) against the API: the OpenAPI document's PutEvents
fields and the rows the event log writes for training."""

from __future__ import annotations

import json
import math
from pathlib import Path

from recsys import data, schemas
from recsys_lambdas import events_log

OPENAPI = Path(__file__).resolve().parents[2] / "lambdas" / "recsys_lambdas" / "openapi.json"
JSON_TYPES = {"string": ("string",), "float": ("number",), "timestamp": ("number", "string")}


def _components() -> dict:
    return json.loads(OPENAPI.read_text())["components"]["schemas"]


def _property(components: dict, field: str) -> dict:
    owner, name = field.split(".")
    prop = components[owner]["properties"][name]
    while "$ref" in prop:
        prop = components[prop["$ref"].rsplit("/", 1)[1]]
    return prop


def test_every_api_field_of_the_schema_is_in_the_openapi_document_with_its_type():
    components = _components()
    fields = [c for c in schemas.INTERACTIONS.columns if c.api_field]
    assert {c.name for c in fields} >= {"user_id", "item_id", "timestamp", "event_type", "event_value"}
    for col in fields:
        prop = _property(components, col.api_field)
        assert prop.get("type") in JSON_TYPES[col.type], f"{col.api_field} is {prop.get('type')}, {col.name} {col.type}"


def test_every_putevents_field_is_either_a_schema_column_or_listed_as_logged_not_loaded():
    components = _components()
    given = {f"Event.{k}" for k in components["Event"]["properties"]}
    given |= {f"PutEventsRequest.{k}" for k in components["PutEventsRequest"]["properties"] if k != "eventList"}
    covered = {c.api_field for c in schemas.INTERACTIONS.columns if c.api_field} | set(schemas.LOGGED_NOT_LOADED)
    assert given == covered, (f"fields without a decision: {sorted(given - covered)}; "
                              f"stale entries: {sorted(covered - given)}")


def test_the_event_log_row_loads_with_its_event_value_and_type(tmp_path):
    event = {"itemId": "i1", "eventType": "purchase", "sentAt": 1700000000.5, "eventId": "e1",
             "eventValue": 12.5, "properties": '{"a": 1}'}
    rows = [events_log.log_record(event, user_id="u1", session_id="s1", tracking_id="t", received_at=1700000001.0),
            events_log.log_record({**{k: v for k, v in event.items() if k != "eventValue"}, "eventId": "e2"},
                                  user_id="u1", session_id="s1", tracking_id="t", received_at=1700000002.0)]
    for row in rows:
        unknown = set(row) - set(schemas.INTERACTIONS.names)
        assert unknown <= {"tracking_id", "properties", "recommendation_id", "impression",
                           "metric_attribution", "client_sent_at"}, unknown
    (tmp_path / "log").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = data.load_events(tmp_path / "log")
    assert list(loaded.event_types) == ["purchase", "purchase"]
    assert loaded.event_values[0] == 12.5 and math.isnan(loaded.event_values[1])
