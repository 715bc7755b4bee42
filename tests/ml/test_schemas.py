"""The dataset schemas (recsys.schemas) as the loaders use them: Personalize headers in any case,
aliases, the column map, EVENT_VALUE parsing and the users loader."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from recsys import data


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


PERSONALIZE_HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"


@pytest.mark.parametrize("header", [
    PERSONALIZE_HEADER,
    "user_id,item_id,timestamp,event_type,event_value",
    "User_Id,Item_ID,TimeStamp,Event_Type,Event_Value",
    "userId,itemId,sentAt,eventType,eventValue",
    " USER_ID , ITEM_ID ,TIMESTAMP,EVENT-TYPE,EVENT VALUE",
])
def test_personalize_snake_and_api_headers_load_the_same_events(tmp_path, header):
    f = write(tmp_path / "i.csv", header + "\nu1,a,10,view,\nu1,b,20,purchase,19.5\nu2,a,5,cart,2\n")
    events = data.load_events(f)
    assert list(events.user_ids) == ["u1", "u1", "u2"]
    assert list(events.item_ids) == ["a", "b", "a"]
    assert list(events.timestamps) == [10.0, 20.0, 5.0]
    assert list(events.event_types) == ["view", "purchase", "cart"]
    assert math.isnan(events.event_values[0])
    assert list(events.event_values[1:]) == [19.5, 2.0]
    assert events.event_values.dtype == np.float64


def test_json_lines_with_personalize_keys_are_mapped_per_row(tmp_path):
    rows = [{"USER_ID": "u1", "ITEM_ID": "a", "TIMESTAMP": 1, "EVENT_VALUE": 3},
            {"user_id": "u2", "item_id": "b", "timestamp": 2},
            {"userId": "u3", "itemId": "c", "sentAt": 3, "eventValue": None, "eventType": "view"}]
    events = data.load_events(write(tmp_path / "i.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert list(events.user_ids) == ["u1", "u2", "u3"]
    assert list(events.event_types) == ["", "", "view"]
    assert events.event_values[0] == 3.0 and np.isnan(events.event_values[1:]).all()


def test_events_without_event_value_are_all_nan(tmp_path):
    events = data.load_events(write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu1,a,1\nu2,b,2\n"))
    assert events.event_values.shape == (2,) and np.isnan(events.event_values).all()


@pytest.mark.parametrize("bad", ["abc", "inf", "nan", "1,5"])
def test_an_event_value_that_is_not_a_finite_number_is_a_bad_row(tmp_path, bad):
    rows = [PERSONALIZE_HEADER] + [f"u{i},i{i},{i},view,1" for i in range(200)]
    rows.append(f'u1,i1,5,view,"{bad}"')
    events = data.load_events(write(tmp_path / "e.csv", "\n".join(rows)))
    assert len(events) == 200 and events.report.bad_rows == 1
    assert events.report.examples == [f"e.csv line 202: event_value {bad!r} is not a finite number"]


def test_a_boolean_event_value_in_json_is_a_bad_row(tmp_path):
    rows = [{"user_id": "u", "item_id": "a", "timestamp": 1, "event_value": True}]
    with pytest.raises(data.DataError, match="event_value True is not a finite number"):
        data.load_events(write(tmp_path / "e.jsonl", json.dumps(rows[0])))


def test_event_values_stay_aligned_after_duplicates_and_deletions(tmp_path):
    f = write(tmp_path / "e.csv", "user_id,item_id,timestamp,event_id,event_value\n"
              "u1,a,1,e1,1\nu1,a,1,e1,99\ngone,b,2,e2,5\nu2,c,3,e3,7\n")
    events = data.load_events(f, deletions={"gone": 10.0})
    assert list(events.user_ids) == ["u1", "u2"]
    assert list(events.event_values) == [1.0, 7.0]
    assert events.report.duplicates == 1 and events.report.deleted_rows == 1
