"""The dataset schemas (recsys.schemas) as the loaders use them: Personalize headers in any case,
aliases, the column map, EVENT_VALUE parsing and the users loader."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from recsys import data, schemas


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


# --- aliases of items and the priority of the canonical spelling ---------------------------------


def test_personalize_items_header_maps_item_id_and_category_l1_keeps_the_rest_as_attributes(tmp_path):
    f = write(tmp_path / "items.csv", "ITEM_ID,CATEGORY_L1,PRICE,BRAND\na,shoes,3.5,acme\nb,hats,,\n")
    items = data.load_items(f)
    assert items.item_ids == ["a", "b"]
    assert items.categories == ["shoes", "hats"]
    assert items.titles == ["a", "b"]  # no title column: the id
    assert items.attributes == [{"PRICE": "3.5", "BRAND": "acme"}, {}]


def test_the_canonical_spelling_wins_over_an_alias_which_stays_an_attribute(tmp_path):
    f = write(tmp_path / "items.csv", "item_id,CATEGORY_L1,category\na,shoes,footwear\n")
    items = data.load_items(f)
    assert items.categories == ["footwear"]
    assert items.attributes == [{"CATEGORY_L1": "shoes"}]


def test_a_header_that_only_almost_matches_is_not_taken(tmp_path):
    with pytest.raises(data.DataError, match=r"lacks required column\(s\) \['user_id'\]"):
        data.load_events(write(tmp_path / "e.csv", "user,ITEM_ID,TIMESTAMP\nu1,a,1\n"))


# --- the column map --------------------------------------------------------------------------------


def test_parse_column_map_accepts_short_canonical_and_alias_names():
    assert schemas.parse_column_map("user=customer_id, item=sku ,timestamp=ts,EVENT_VALUE=amount") == {
        "user_id": "customer_id", "item_id": "sku", "timestamp": "ts", "event_value": "amount"}
    assert schemas.parse_column_map("") == {} and schemas.parse_column_map(None) == {}
    assert schemas.parse_column_map("category=dept") == {"category": "dept"}


@pytest.mark.parametrize("text, message", [
    ("user", "is not column=source_column"),
    ("user=", "has an empty side"),
    ("shoe_size=size", "unknown column 'shoe_size'; known: "),
    ("user=a,user_id=b", "user_id is mapped twice"),
])
def test_a_bad_column_map_is_a_one_line_error(text, message):
    with pytest.raises(ValueError, match=message):
        schemas.parse_column_map(text)


def test_a_column_map_loads_csv_and_json_lines_with_other_names(tmp_path):
    mapping = schemas.parse_column_map("user=customer_id,item=sku,timestamp=ts,event_type=action,event_value=amount")
    f = write(tmp_path / "orders.csv", "customer_id,sku,ts,action,amount,store\nc1,s1,10,buy,9.5,x\nc2,s2,11,view,,y\n")
    events = data.load_events(f, column_map=mapping)
    assert list(events.user_ids) == ["c1", "c2"] and list(events.item_ids) == ["s1", "s2"]
    assert list(events.event_types) == ["buy", "view"] and events.event_values[0] == 9.5
    rows = [{"customer_id": "c1", "sku": "s1", "ts": "2024-01-01T00:00:00Z", "amount": 2}]
    jl = data.load_events(write(tmp_path / "orders.jsonl", json.dumps(rows[0])), column_map=mapping)
    assert list(jl.user_ids) == ["c1"] and list(jl.timestamps) == [1704067200.0] and jl.event_values[0] == 2.0
    with pytest.raises(data.DataError, match=r"lacks required column\(s\) \['user_id', 'item_id', 'timestamp'\]"):
        data.load_events(f)  # without the map


def test_one_column_map_serves_every_dataset_and_mapped_names_are_case_insensitive(tmp_path):
    mapping = schemas.parse_column_map("user=customer_id,item=sku,title=name")
    items = data.load_items(write(tmp_path / "i.csv", "SKU,Name,colour\ns1,Boot,red\n"), column_map=mapping)
    assert items.item_ids == ["s1"] and items.titles == ["Boot"] and items.attributes == [{"colour": "red"}]
    users = data.load_users(write(tmp_path / "u.csv", "customer_id,tier\nc1,gold\n"), column_map=mapping)
    assert users.user_ids == ["c1"] and users.attributes == [{"tier": "gold"}]


def test_a_mapped_column_and_a_column_spelled_like_its_target_clash(tmp_path):
    f = write(tmp_path / "e.csv", "user_id,customer_id,item_id,timestamp\nu,c,a,1\n")
    with pytest.raises(data.DataError, match="columns 'customer_id' and 'user_id' both give user_id"):
        data.load_events(f, column_map={"user_id": "customer_id"})


def test_the_column_map_hyperparameter_reaches_the_loaders(tmp_path):
    from recsys import train

    ev = write(tmp_path / "e.csv", "customer_id,sku,ts\nc1,s1,1\nc1,s2,2\nc2,s1,3\n")
    it = write(tmp_path / "i.csv", "sku,label\ns1,One\ns2,Two\n")
    _, kparams = train.split_hyperparameters({"column_map": "user=customer_id,item=sku,timestamp=ts,title=label"})
    events, items, seqs, _ = train.load_data(ev, it, column_map=kparams.column_map, log=lambda m: None)
    assert items is not None and items.titles == ["One", "Two"]
    assert seqs.user_ids == ["c1", "c2"] and len(events) == 3
    with pytest.raises(ValueError, match="unknown column 'usr'"):
        train.load_data(ev, it, column_map="usr=customer_id", log=lambda m: None)


# --- users -----------------------------------------------------------------------------------------


def test_users_load_with_personalize_names_and_keep_their_attributes(tmp_path):
    f = write(tmp_path / "users.csv", "USER_ID,AGE,MEMBERSHIP\nu1,31,gold\nu2,,silver\nu1,40,basic\n,5,x\n")
    with pytest.raises(data.DataError, match=r"2 of 4 user rows are bad .*user_id 'u1' appears again"):
        data.load_users(f)
    users = data.load_users(f, max_bad_fraction=0.5)
    assert users.user_ids == ["u1", "u2"]
    assert users.attributes == [{"AGE": "31", "MEMBERSHIP": "gold"}, {"MEMBERSHIP": "silver"}]
    assert users.report.bad_rows == 2 and "user_id is missing" in users.report.examples[1]


def test_users_from_json_lines_and_without_a_user_id_column(tmp_path):
    jl = write(tmp_path / "u.jsonl", '{"userId": "u1", "age": 30}\n{"USER_ID": "u2", "tags": "a|b"}\n')
    users = data.load_users(jl)
    assert users.user_ids == ["u1", "u2"] and users.attributes == [{"age": "30"}, {"tags": "a|b"}]
    with pytest.raises(data.DataError, match=r"lacks required column\(s\) \['user_id'\]"):
        data.load_users(write(tmp_path / "bad.csv", "customer,age\nc,1\n"))


def test_canonical_writers_round_trip_through_the_loaders(tmp_path):
    ev = data.load_events(write(tmp_path / "e.csv", PERSONALIZE_HEADER + "\nu1,a,10,view,\nu1,b,20.5,cart,3.25\n"))
    out = data.write_events(ev, tmp_path / "out" / "events.csv")
    assert out.read_text().splitlines() == ["user_id,item_id,timestamp,event_type,event_value",
                                            "u1,a,10,view,", "u1,b,20.5,cart,3.25"]
    again = data.load_events(out)
    assert list(again.timestamps) == [10.0, 20.5] and again.event_values[1] == 3.25
    us = data.load_users(write(tmp_path / "u.csv", "USER_ID,AGE,TIER\nu1,3,\nu2,,gold\n"))
    back = data.load_users(data.write_users(us, tmp_path / "out" / "users.csv"))
    assert back.user_ids == us.user_ids and back.attributes == us.attributes
    it = data.load_items(write(tmp_path / "i.csv", "ITEM_ID,TITLE,CATEGORY,PRICE\na,Alpha,x,1\nb,,y,\n"))
    back_items = data.load_items(data.write_items(it, tmp_path / "out" / "items.csv"))
    assert (back_items.item_ids, back_items.titles, back_items.categories, back_items.attributes) == \
        (["a", "b"], ["Alpha", "b"], ["x", "y"], [{"PRICE": "1"}, {}])


# --- the documentation's tables ---------------------------------------------------------------------


@pytest.mark.parametrize("schema", schemas.SCHEMAS, ids=lambda s: s.name)
def test_the_bring_your_data_tables_in_ml_md_are_the_schemas(schema):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ML.md").read_text(encoding="utf-8")
    assert "## Bring your data" in doc
    start = doc.index(f"<!-- schema:{schema.name} ")
    body = doc[doc.index("-->", start) + 3: doc.index(f"<!-- /schema:{schema.name} -->")].strip()
    assert body == schemas.markdown_table(schema), (
        f"docs/ML.md's {schema.name} table differs from recsys.schemas.{schema.name.upper()}: "
        "paste schemas.markdown_table() there")


def test_every_schema_column_is_typed_described_and_its_aliases_unique():
    for schema in schemas.SCHEMAS:
        seen = {}
        for col in schema.columns:
            assert col.type in ("string", "float", "timestamp") and col.description
            for name in (col.name, *col.aliases):
                key = schemas.normalize(name)
                assert seen.setdefault(key, col.name) == col.name, f"{schema.name}: {name} names two columns"


def test_json_lines_mixing_canonical_and_aliased_rows_map_every_row(tmp_path):
    rows = [{"user_id": "u1", "item_id": "a", "timestamp": 1, "tracking_id": "t"},  # the log's own rows
            {"user_id": "u2", "userId": "ignored", "item_id": "b", "timestamp": 2},  # userId left unused here
            {"userId": "u3", "item_id": "c", "timestamp": 3, "tracking_id": "t"},  # ... and taken here
            {"USER_ID": "u4", "ITEM_ID": "d", "TIMESTAMP": 4, "EVENT_VALUE": "1.5"}]
    events = data.load_events(write(tmp_path / "mixed.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert list(events.user_ids) == ["u1", "u2", "u3", "u4"] and events.report.bad_rows == 0
    assert list(events.item_ids) == ["a", "b", "c", "d"] and events.event_values[3] == 1.5
    mapped = data.load_events(write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in [
        {"user_id": "u1", "item_id": "a", "timestamp": 1}, {"customer": "c9", "item_id": "b", "timestamp": 2}])),
        column_map={"user_id": "customer"})
    assert list(mapped.user_ids) == ["u1", "c9"]
