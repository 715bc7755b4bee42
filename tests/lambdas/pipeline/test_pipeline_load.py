"""Loading the batch output into the feature store tables (moto DynamoDB and S3)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from pipeline_support import jsonl, manifest, put_training_output
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import load
from recsys_lambdas.pipeline.artifacts import ArtifactError

NOW = 1_800_000_000.0
USERS = [
    {"userId": "u1", "recentItems": ["a", "b"], "recentTimestamps": [100, 200]},
    {"userId": "u2", "recentItems": ["c"], "recentTimestamps": [150]},
]
ITEMS = [
    {"itemId": "a", "title": "Alpha", "category": "x", "popularity": 0.5, "trend": 1.25},
    {
        "itemId": "b",
        "title": "Beta",
        "category": "y",
        "popularity": 0.25,
        "trend": 0.0,
        "brand": "acme",
    },
]
RECS = [
    {
        "userId": "u1",
        "items": [{"itemId": "c", "score": 0.9}, {"itemId": "a", "score": 0.1}],
        "modelVersion": "v7",
    },
    {
        "userId": contracts.POPULAR_USER_ID,
        "items": [{"itemId": "a", "score": 1.0}],
        "modelVersion": "v7",
    },
]


def get(ddb, table, key, value):
    return ddb.Table(table).get_item(Key={key: value}).get("Item")


def test_load_records_writes_all_three_tables(pipeline_aws):
    ddb, tables = pipeline_aws["dynamodb"], pipeline_aws["tables"]
    counts = load.load_records(
        ddb, tables, {"users": USERS, "items": ITEMS, "recommendations": RECS}, now=NOW
    )
    assert counts == {"users": 2, "items": 2, "recommendations": 2}

    u1 = get(ddb, tables["users"], "userId", "u1")
    assert u1["recentItems"] == ["a", "b"]
    assert u1["recentTimestamps"] == [Decimal(100), Decimal(200)]
    assert u1["expiresAt"] == int(NOW) + contracts.USER_TTL_DAYS * 86400
    assert u1["version"] == 1

    b = get(ddb, tables["items"], "itemId", "b")
    assert (b["title"], b["category"], b["popularity"], b["brand"]) == (
        "Beta",
        "y",
        Decimal("0.25"),
        "acme",
    )

    popular = get(ddb, tables["recommendations"], "userId", contracts.POPULAR_USER_ID)
    assert popular["items"] == [{"itemId": "a", "score": Decimal("1.0")}]
    assert popular["modelVersion"] == "v7"
    assert popular["expiresAt"] == int(NOW) + contracts.BATCH_TTL_DAYS * 86400


def test_contract_table_names_are_accepted_too(pipeline_aws):
    names = {"batch-recommendations": pipeline_aws["tables"]["recommendations"]}
    assert load.load_records(
        pipeline_aws["dynamodb"], names, {"recommendations": RECS}, now=NOW
    ) == {"recommendations": 2}


def test_user_history_merges_with_newer_real_time_events(pipeline_aws):
    """Events the API recorded after the training data was cut must survive the load."""
    ddb, tables = pipeline_aws["dynamodb"], pipeline_aws["tables"]
    ddb.Table(tables["users"]).put_item(
        Item={
            "userId": "u1",
            "recentItems": ["b", "z"],
            "recentTimestamps": [Decimal(200), Decimal(900)],
            "version": 4,
        }
    )
    load.load_records(ddb, tables, {"users": USERS[:1]}, now=NOW)
    u1 = get(ddb, tables["users"], "userId", "u1")
    assert u1["recentItems"] == ["a", "b", "z"]  # (b, 200) once; z from the real-time path kept
    assert u1["recentTimestamps"] == [Decimal(100), Decimal(200), Decimal(900)]
    assert u1["version"] == 5  # the events API's optimistic-concurrency counter advances


def test_history_is_bounded(pipeline_aws):
    ddb, tables = pipeline_aws["dynamodb"], pipeline_aws["tables"]
    n = contracts.MAX_RECENT_ITEMS + 50
    record = {
        "userId": "long",
        "recentItems": [f"i{i}" for i in range(n)],
        "recentTimestamps": list(range(n)),
    }
    load.load_records(ddb, tables, {"users": [record]}, now=NOW)
    row = get(ddb, tables["users"], "userId", "long")
    assert len(row["recentItems"]) == contracts.MAX_RECENT_ITEMS
    assert row["recentItems"][-1] == f"i{n - 1}"


def test_concurrent_history_change_is_merged_not_overwritten(pipeline_aws, monkeypatch):
    """If the events API writes between our read and our write, the conditional write fails and
    the loader re-reads and merges again."""
    ddb, tables = pipeline_aws["dynamodb"], pipeline_aws["tables"]
    table = ddb.Table(tables["users"])
    real_write = load._write_history
    calls = []

    def racing_write(tbl, user_id, history, version, now):
        if not calls:  # the events API sneaks in once
            table.put_item(
                Item={
                    "userId": user_id,
                    "recentItems": ["late"],
                    "recentTimestamps": [Decimal(5000)],
                    "version": 1,
                }
            )
        calls.append(version)
        return real_write(tbl, user_id, history, version, now)

    monkeypatch.setattr(load, "_write_history", racing_write)
    load.load_records(ddb, tables, {"users": USERS[:1]}, now=NOW)
    assert calls == [None, 1]
    assert get(ddb, tables["users"], "userId", "u1")["recentItems"] == ["a", "b", "late"]


@pytest.mark.parametrize(
    ("name", "record", "message"),
    [
        (
            "users",
            {"userId": "", "recentItems": []},
            r"batch/users.jsonl\[0\]: 'userId' must be a non-empty string",
        ),
        (
            "users",
            {"userId": "u", "recentItems": ["a"], "recentTimestamps": [1, 2]},
            "as long as 'recentItems'",
        ),
        (
            "items",
            {"itemId": "a", "popularity": "high"},
            r"batch/items.jsonl\[0\].popularity: expected a number",
        ),
        (
            "recommendations",
            {"userId": "u", "items": [{"itemId": "a", "score": float("nan")}]},
            "finite number",
        ),
        ("recommendations", {"userId": "u", "items": "a,b"}, "'items' must be a list"),
        ("bogus", {}, "unknown batch file 'bogus'"),
    ],
)
def test_bad_records_are_named(pipeline_aws, name, record, message):
    with pytest.raises(ArtifactError, match=message):
        load.load_records(
            pipeline_aws["dynamodb"], pipeline_aws["tables"], {name: [record]}, now=NOW
        )


def test_handler_streams_the_batch_files_out_of_output_tar_gz(pipeline_aws, monkeypatch):
    s3, ddb, tables = pipeline_aws["s3"], pipeline_aws["dynamodb"], pipeline_aws["tables"]
    url = put_training_output(
        s3,
        "job-1",
        {
            "manifest.json": json.dumps(manifest(0.1)),
            "batch/users.jsonl": jsonl(USERS),
            "batch/items.jsonl": jsonl(ITEMS) + "\n",
            "batch/recommendations.jsonl": jsonl(RECS),
        },
    )
    monkeypatch.setenv(contracts.ENV_USERS_TABLE, tables["users"])
    monkeypatch.setenv(contracts.ENV_ITEMS_TABLE, tables["items"])
    monkeypatch.setenv(contracts.ENV_BATCH_TABLE, tables["recommendations"])
    output = url.replace("model.tar.gz", "output.tar.gz")
    out = load.handler({"outputDataUrl": output})
    assert out["counts"] == {"users": 2, "items": 2, "recommendations": 2}
    assert get(ddb, tables["recommendations"], "userId", "u1")["items"][0]["itemId"] == "c"
    assert get(ddb, tables["users"], "userId", "u2")["expiresAt"] > time.time()


def test_missing_batch_file_fails_after_loading_the_others(pipeline_aws):
    s3 = pipeline_aws["s3"]
    url = put_training_output(
        s3, "job-2", {"batch/users.jsonl": jsonl(USERS), "batch/items.jsonl": jsonl(ITEMS)}
    )
    with pytest.raises(ArtifactError, match=r"lacks batch/recommendations\.jsonl"):
        load.load_from_s3(
            s3,
            pipeline_aws["dynamodb"],
            pipeline_aws["tables"],
            url.replace("model.tar.gz", "output.tar.gz"),
        )


def test_bad_json_line_is_named(pipeline_aws):
    s3 = pipeline_aws["s3"]
    url = put_training_output(s3, "job-3", {"batch/items.jsonl": jsonl(ITEMS) + "{oops\n"})
    with pytest.raises(ArtifactError, match=r"output.tar.gz:batch/items.jsonl line 3: not JSON"):
        load.load_from_s3(
            s3,
            pipeline_aws["dynamodb"],
            pipeline_aws["tables"],
            url.replace("model.tar.gz", "output.tar.gz"),
        )


def test_missing_table_env_is_named(monkeypatch):
    for var in load.ENV_TABLES.values():
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="USERS_TABLE"):
        load.table_names_from_env()


def test_real_training_output_loads(pipeline_aws, batch_output_dir):
    """The files the project's training code writes (tests/conftest.py trains a small model)."""
    batch = batch_output_dir / contracts.BATCH_OUTPUT_DIR
    records = {
        name: [
            json.loads(line)
            for line in (batch / f"{name}.jsonl").read_text().splitlines()
            if line.strip()
        ]
        for name in ("users", "items", "recommendations")
    }
    counts = load.load_records(pipeline_aws["dynamodb"], pipeline_aws["tables"], records, now=NOW)
    assert counts == {name: len(rows) for name, rows in records.items()}
    popular = get(
        pipeline_aws["dynamodb"],
        pipeline_aws["tables"]["recommendations"],
        "userId",
        contracts.POPULAR_USER_ID,
    )
    assert popular and len(popular["items"]) > 0
