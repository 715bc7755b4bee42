"""The events/items loaders: formats, bad rows, thresholds, empty input."""

from __future__ import annotations

import gzip
import json

import pytest
from recsys import batch_contract, data


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_and_jsonl_give_the_same_events(tmp_path):
    csv_file = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu1,a,10\nu1,b,2024-01-01T00:00:00Z\nu2,a,5\n")
    jsonl = write(tmp_path / "e.jsonl", "\n".join(json.dumps(r) for r in [
        {"user_id": "u1", "item_id": "a", "timestamp": 10},
        {"user_id": "u1", "item_id": "b", "timestamp": "2024-01-01T00:00:00Z"},
        {"user_id": "u2", "item_id": "a", "timestamp": 5},
    ]))
    a, b = data.load_events(csv_file), data.load_events(jsonl)
    assert list(a.user_ids) == list(b.user_ids) == ["u1", "u1", "u2"]
    assert list(a.timestamps) == list(b.timestamps) == [10.0, 1704067200.0, 5.0]


def test_gzip_and_directories_are_read(tmp_path):
    d = tmp_path / "channel"
    d.mkdir()
    with gzip.open(d / "part-1.csv.gz", "wt") as f:
        f.write("user_id,item_id,timestamp\nu1,a,1\n")
    write(d / "part-2", '{"user_id": "u2", "item_id": "b", "timestamp": 2}\n')  # Firehose: no extension
    events = data.load_events(d)
    assert sorted(events.user_ids) == ["u1", "u2"]


def test_bad_rows_are_counted_skipped_and_reported(tmp_path):
    rows = ["user_id,item_id,timestamp,weight"] + [f"u{i},i{i % 7},{i},1" for i in range(300)]
    rows += [",i1,5,1", "u1,i1,yesterday,1", "u1,i1,5,-2"]
    events = data.load_events(write(tmp_path / "e.csv", "\n".join(rows)), max_bad_fraction=0.05)
    assert len(events) == 300
    assert events.report.bad_rows == 3
    assert any("line 302: user_id is missing" in e for e in events.report.examples)
    assert any("'yesterday' is neither Unix seconds nor ISO-8601" in e for e in events.report.examples)
    assert any("weight" in e for e in events.report.examples)


def test_too_many_bad_rows_fail_with_a_clear_message(tmp_path):
    rows = ["user_id,item_id,timestamp"] + ["u1,a,1"] * 50 + ["u1,a,never"] * 2
    with pytest.raises(data.DataError, match=r"2 of 52 event rows are bad \(3.8% > the 1.0% threshold\)"):
        data.load_events(write(tmp_path / "e.csv", "\n".join(rows)))


@pytest.mark.parametrize("content, message", [
    ("", "no valid event rows"),
    ("user_id,item_id,timestamp\n", "no valid event rows"),
    ("user,item,time\nu1,a,1\n", r"lacks required column\(s\) \['user_id', 'item_id', 'timestamp'\]"),
    ("{not json\n", "no valid event rows .*invalid JSON"),
])
def test_empty_or_malformed_files_are_clear_errors(tmp_path, content, message):
    with pytest.raises(data.DataError, match=message):
        data.load_events(write(tmp_path / "e.csv", content))


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(data.DataError, match="file not found"):
        data.load_events(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(data.DataError, match="not UTF-8"):
        data.load_events(tmp_path / "bin.csv")


def test_items_loader_keeps_attributes_and_rejects_duplicates(tmp_path):
    f = write(tmp_path / "items.csv", "item_id,title,category,year\na,Alpha,Drama,1999\nb,Beta,,\n" + "a,Again,X,1\n")
    with pytest.raises(data.DataError, match="item_id 'a' appears again"):
        data.load_items(f)
    items = data.load_items(f, max_bad_fraction=0.5)
    assert items.item_ids == ["a", "b"]
    assert items.attributes[0] == {"year": "1999"}
    assert items.categories == ["Drama", ""]


def test_encode_orders_by_time_and_keeps_file_order_on_ties(tmp_path):
    f = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu1,c,5\nu1,a,1\nu1,b,5\nu2,a,1\n")
    seqs = data.encode(data.load_events(f))
    names = [[seqs.item_ids[i] for i in s] for s in seqs.items]
    assert seqs.user_ids == ["u1", "u2"]
    assert names == [["a", "c", "b"], ["a"]]


def test_repeated_user_and_event_id_rows_are_dropped_keeping_the_first(tmp_path):
    d = tmp_path / "log"
    d.mkdir()
    rows = [{"user_id": "u1", "item_id": "a", "timestamp": 1, "event_id": "e1"},
            {"user_id": "u1", "item_id": "b", "timestamp": 2, "event_id": "e2"},
            {"user_id": "u2", "item_id": "a", "timestamp": 3, "event_id": "e1"},  # another owner: kept
            {"user_id": "u1", "item_id": "c", "timestamp": 4},  # no event id: kept
            {"user_id": "u1", "item_id": "c", "timestamp": 4}]
    write(d / "part-1", "\n".join(json.dumps(r) for r in rows))
    retry = [{"user_id": "u1", "item_id": "a-late", "timestamp": 9, "event_id": "e1"}]  # a retried row
    write(d / "part-2", json.dumps(retry[0]))
    events = data.load_events(d)
    assert list(zip(events.user_ids, events.item_ids)) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u1", "c"), ("u1", "c")]
    assert events.report.duplicates == 1 and events.report.bad_rows == 0
    assert events.report.to_json()["duplicates"] == 1


def test_training_logs_how_many_duplicates_it_dropped(tmp_path):
    from recsys import train

    lines = [json.dumps({"user_id": "u1", "item_id": f"i{n}", "timestamp": n, "event_id": f"e{n}"}) for n in range(5)]
    write(tmp_path / "e.jsonl", "\n".join(lines + lines[:2]))
    said = []
    events, _, _, summary = train.load_data(tmp_path / "e.jsonl", log=said.append)
    assert len(events) == 5 and summary["events_report"]["duplicates"] == 2
    assert any("dropped 2 duplicate event(s)" in line for line in said)


def test_identity_records_make_a_sessions_rows_the_users_then_duplicates_drop(tmp_path):
    prefix = batch_contract.SESSION_OWNER_PREFIX
    rows = [{"user_id": prefix + "s1", "item_id": "a", "timestamp": 1, "event_id": "e1"},
            {"user_id": "u1", "item_id": "b", "timestamp": 2, "event_id": "e2"},
            {"record_type": "identity", "user_id": "u1", "session_id": "s1", "session_owner": prefix + "s1",
             "timestamp": 3},
            {"user_id": "u1", "item_id": "a", "timestamp": 1, "event_id": "e1"},  # the same event, re-logged
            {"user_id": prefix + "s2", "item_id": "c", "timestamp": 4, "event_id": "e3"}]  # not merged
    events = data.load_events(write(tmp_path / "log.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert list(zip(events.user_ids, events.item_ids)) == [("u1", "a"), ("u1", "b"), (prefix + "s2", "c")]
    assert events.report.merged_sessions == 1 and events.report.duplicates == 1 and events.report.bad_rows == 0


def test_an_identity_record_without_its_fields_is_a_bad_row(tmp_path):
    rows = [{"user_id": "u1", "item_id": "a", "timestamp": 1}] * 200 + [{"record_type": "identity", "user_id": "u1"}]
    events = data.load_events(write(tmp_path / "log.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert events.report.bad_rows == 1 and "identity record" in events.report.examples[0]
