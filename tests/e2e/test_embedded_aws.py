"""The embedded AWS: moto's server as a child, with the CDK app's tables, bucket and stream."""

from __future__ import annotations

import time

import boto3
import botocore.config
import pytest
from recsys_lambdas import contracts
from recsys_tools.local import aws as local_aws
from recsys_tools.local.ports import bind_listener
from recsys_tools.local.processes import ChildFailed, group_members

from .conftest import listening, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded():
    child, url = local_aws.start_moto(echo=False)
    resources = local_aws.create_resources(url, "recsys-test")
    yield child, resources
    child.stop()


def test_tables_have_the_contract_names_keys_and_ttl(embedded):
    _, res = embedded
    ddb = boto3.client("dynamodb", **local_aws.client_kwargs(res.endpoint_url))
    for spec in contracts.ALL_TABLES:
        name = contracts.table_name("recsys-test", spec)
        assert res.table_names[spec.logical_name] == name
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if spec.ttl_attribute:
            assert ttl["AttributeName"] == spec.ttl_attribute
            assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_firehose_delivers_events_to_the_bucket_under_the_events_prefix(embedded):
    _, res = embedded
    kwargs = local_aws.client_kwargs(res.endpoint_url)
    boto3.client("firehose", **kwargs).put_record_batch(
        DeliveryStreamName=res.delivery_stream,
        Records=[{"Data": b'{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n'}])
    s3 = boto3.client("s3", **kwargs)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=res.bucket, Prefix=contracts.EVENTS_PREFIX)
            .get("Contents", [])]
    assert keys, "nothing delivered"
    body = s3.get_object(Bucket=res.bucket, Key=keys[0])["Body"].read()
    assert b'"item_id": "i1"' in body


def test_upload_and_channel_download_round_trip(embedded, tmp_path):
    _, res = embedded
    src = tmp_path / "events.csv"
    src.write_text("user_id,item_id,timestamp\nu1,i1,1\n")
    uri = local_aws.upload_file(res, src, "events/seed/events.csv")
    assert uri == f"s3://{res.bucket}/events/seed/events.csv"
    dest = tmp_path / "channel"
    assert local_aws.download_prefix(res, "events/seed/", dest) == 1
    assert (dest / "events.csv").read_text() == src.read_text()


def test_transactions_still_roll_back_with_the_cheap_backups(embedded):
    """The embedded AWS backs up only the addressed items (moto deep-copies whole tables, seconds
    per event at demo size): a cancelled transaction must still leave every item as it was."""
    _, res = embedded
    url = res.endpoint_url
    table_name = res.table_names["users"]
    resource = boto3.resource("dynamodb", **local_aws.client_kwargs(url))
    with resource.Table(table_name).batch_writer() as writer:
        for n in range(50):
            writer.put_item(Item={"userId": f"u{n}", "recentItems": [f"i{k}" for k in range(20)],
                                  "version": 1})
    client = boto3.client("dynamodb", **local_aws.client_kwargs(url))

    def update(user: str, expected_version: int) -> dict:
        return {"Update": {
            "TableName": table_name, "Key": {"userId": {"S": user}},
            "UpdateExpression": "SET version = :next, recentItems = :items",
            "ConditionExpression": "version = :prev",
            "ExpressionAttributeValues": {":next": {"N": "2"}, ":prev": {"N": str(expected_version)},
                                          ":items": {"L": [{"S": "new"}]}}}}

    client.transact_write_items(TransactItems=[update("u1", 1)])
    assert client.get_item(TableName=table_name, Key={"userId": {"S": "u1"}})["Item"]["version"] == {"N": "2"}

    # u2 would succeed, u3's condition fails: neither is written
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=[update("u2", 1), update("u3", 7)])
    for user in ("u2", "u3"):
        row = client.get_item(TableName=table_name, Key={"userId": {"S": user}})["Item"]
        assert row["version"] == {"N": "1"} and len(row["recentItems"]["L"]) == 20
    assert client.scan(TableName=table_name, Select="COUNT")["Count"] == 50


def test_concurrent_writers_lose_nothing(embedded):
    """moto applies a transaction's items one by one and rolls back by restoring whole tables, so
    concurrent writers lost updates that DynamoDB would have kept (30 ACCEPTED events, 26 in the
    history). The embedded AWS serialises DynamoDB requests: optimistic writers, each retrying its
    conditional transaction until it succeeds, must all end up in the row."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    _, res = embedded
    users, idem = res.table_names["users"], res.table_names["idempotency"]
    client = boto3.client("dynamodb", **local_aws.client_kwargs(res.endpoint_url),
                          config=botocore.config.Config(max_pool_connections=40))
    user, writers = "concurrent-writers", 30
    start = threading.Barrier(writers)

    def append(n: int) -> int:
        start.wait()
        for attempt in range(1, 500):
            row = client.get_item(TableName=users, Key={"userId": {"S": user}}, ConsistentRead=True).get("Item", {})
            items = row.get("recentItems", {"L": []})["L"]
            version = row.get("version")
            condition, values = "attribute_not_exists(version)", {}
            if version is not None:
                condition, values = "version = :prev", {":prev": version}
            values.update({":items": {"L": [*items, {"S": f"w{n}"}]},
                           ":next": {"N": str(int(version["N"]) + 1 if version else 1)}})
            try:
                client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": users, "Key": {"userId": {"S": user}},
                                "UpdateExpression": "SET recentItems = :items, version = :next",
                                "ConditionExpression": condition, "ExpressionAttributeValues": values}},
                    {"Put": {"TableName": idem, "Item": {"id": {"S": f"cw-{n}"}},
                             "ConditionExpression": "attribute_not_exists(id)"}}])
                return attempt
            except client.exceptions.TransactionCanceledException:
                continue
        raise AssertionError(f"writer {n} never got through")

    with ThreadPoolExecutor(writers) as pool:
        attempts = list(pool.map(append, range(writers)))
    row = client.get_item(TableName=users, Key={"userId": {"S": user}}, ConsistentRead=True)["Item"]
    written = [v["S"] for v in row["recentItems"]["L"]]
    assert sorted(written) == sorted(f"w{n}" for n in range(writers)), f"lost {writers - len(set(written))}"
    assert row["version"] == {"N": str(writers)}
    assert max(attempts) > 1  # they did conflict


def test_health_check_reports_up_then_down(embedded):
    child, resources = embedded  # the last test of the module to use it: it stops it
    url = resources.endpoint_url
    assert local_aws.check(url, resources.table_names["users"])["ok"] is True
    port = int(url.rsplit(":", 1)[1])
    child.stop()
    assert not group_members(child.pid)
    assert wait_until(lambda: not listening(port), 5)
    down = local_aws.check(url, timeout=0.5)
    assert down["ok"] is False and "error" in down


def test_port_in_use_fails_the_start_with_the_port_named():
    holder = bind_listener("127.0.0.1", 0, "test")
    port = holder.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(ChildFailed, match=f"port {port}.*already in use"):
            local_aws.start_moto(port=port, echo=False, timeout=60)
    finally:
        holder.close()
    assert time.monotonic() - started < 60
