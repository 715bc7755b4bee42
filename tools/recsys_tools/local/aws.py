"""The embedded AWS: moto's server as a child process, with the resources of the CDK app.

Tables come from ``recsys_lambdas.contracts.ALL_TABLES`` (the one home of names and keys, which
the CDK app reads too); the events bucket gets a Firehose delivery stream writing JSON Lines under
``contracts.EVENTS_PREFIX``, as in AWS.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from recsys_tools.local.processes import Child, python_child_env

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_PREFIX = "recsys-local"
# Never real credentials: every client of the local stack talks to moto only.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass(frozen=True)
class LocalResources:
    """What the stack created in the embedded AWS."""

    endpoint_url: str
    prefix: str
    table_names: dict[str, str] = field(default_factory=dict)  # logical name -> physical name
    bucket: str = ""
    delivery_stream: str = ""
    region: str = REGION


def client_kwargs(endpoint_url: str) -> dict[str, Any]:
    """Keyword arguments for ``boto3.client``/``resource`` that reach the embedded AWS only."""
    return {
        "endpoint_url": endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }


def spawn_moto(host: str = "127.0.0.1", port: int = 0, echo: bool = True) -> Child:
    """Start moto's server as a child process group (returns at once; see :func:`wait_moto`)."""
    return Child(
        "aws",
        [sys.executable, "-m", "recsys_tools.local.motoserver", "--host", host, "--port", str(port)],
        env=python_child_env(FAKE_CREDENTIALS),
        echo=echo,
    ).start()


def wait_moto(child: Child, host: str = "127.0.0.1", timeout: float = 120.0) -> str:
    """Wait until the moto child serves; returns its URL (``http://host:port``).

    Raises:
        ChildFailed: moto did not start (exited, e.g. on a taken port, or timed out).
    """
    ready = child.wait_ready(timeout)
    bound = int(dict(part.split("=", 1) for part in ready.split())["port"])
    return f"http://{host}:{bound}"


def start_moto(host: str = "127.0.0.1", port: int = 0, echo: bool = True,
               timeout: float = 120.0) -> tuple[Child, str]:
    """Start moto's server as a child process group and wait until it serves.

    Returns:
        the child and the endpoint URL (``http://host:port``).

    Raises:
        ChildFailed: moto did not start (the message carries its last output).
    """
    child = spawn_moto(host, port, echo)
    return child, wait_moto(child, host, timeout)


def create_resources(endpoint_url: str, prefix: str = DEFAULT_PREFIX) -> LocalResources:
    """Create the tables, the events bucket and the events delivery stream in moto.

    Args:
        endpoint_url: moto's URL.
        prefix: deployment prefix of physical names (``contracts.table_name``).
    """
    import boto3
    from recsys_lambdas import contracts

    kwargs = client_kwargs(endpoint_url)
    dynamodb = boto3.client("dynamodb", **kwargs)
    table_names: dict[str, str] = {}
    for spec in contracts.ALL_TABLES:
        name = contracts.table_name(prefix, spec)
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        table_names[spec.logical_name] = name
    for name in table_names.values():
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1})

    bucket = f"{prefix}-events-{ACCOUNT_ID}"
    boto3.client("s3", **kwargs).create_bucket(Bucket=bucket)
    stream = f"{prefix}-events"
    boto3.client("firehose", **kwargs).create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": contracts.EVENTS_PREFIX,
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )
    return LocalResources(endpoint_url=endpoint_url, prefix=prefix, table_names=table_names,
                          bucket=bucket, delivery_stream=stream)


def upload_file(resources: LocalResources, path: Path, key: str) -> str:
    """Upload one file to the events bucket; returns its ``s3://`` URI."""
    import boto3

    boto3.client("s3", **client_kwargs(resources.endpoint_url)).upload_file(
        str(path), resources.bucket, key)
    return f"s3://{resources.bucket}/{key}"


def download_prefix(resources: LocalResources, prefix: str, dest: Path) -> int:
    """Copy every object under ``prefix`` into ``dest`` (as SageMaker fills a channel).

    Returns:
        the number of files copied.
    """
    import boto3

    s3 = boto3.client("s3", **client_kwargs(resources.endpoint_url))
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=resources.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):].lstrip("/")
            if not relative or relative.endswith("/"):
                continue
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(resources.bucket, obj["Key"], str(target))
            count += 1
    return count


def check(endpoint_url: str, table_name: Optional[str] = None, timeout: float = 2.0) -> dict[str, Any]:
    """A health part for the embedded AWS: reachable, and the table (if given) is ACTIVE."""
    import boto3
    from botocore.config import Config

    try:
        client = boto3.client(
            "dynamodb", config=Config(connect_timeout=timeout, read_timeout=timeout,
                                      retries={"max_attempts": 1}),
            **client_kwargs(endpoint_url))
        if table_name:
            status = client.describe_table(TableName=table_name)["Table"]["TableStatus"]
            return {"ok": status == "ACTIVE", "url": endpoint_url, "table": table_name, "status": status}
        client.list_tables(Limit=1)
        return {"ok": True, "url": endpoint_url}
    except Exception as exc:  # any failure is "down", reported, never raised
        return {"ok": False, "url": endpoint_url, "error": f"{type(exc).__name__}: {exc}"}
