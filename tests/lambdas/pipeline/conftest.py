"""Fixtures for the training pipeline's Lambda steps: moto S3, DynamoDB and CloudFormation, with
the tables created from the same contracts the CDK app uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pipeline_support import BUCKET, DEPLOY_ROLE, PREFIX, REGION, STACK
from recsys_lambdas import contracts


@pytest.fixture
def pipeline_aws(monkeypatch) -> Iterator[dict[str, Any]]:
    """moto-backed clients plus the artifacts bucket and the feature store tables."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    # The environment the deployed functions have (names as the tests use them): how the IAM check
    # (tests/infra/test_iam_policies.py) maps the names in recorded calls to deployed resources.
    for var, value in {
        "ARTIFACTS_BUCKET": BUCKET,
        "SERVING_STACK_NAME": STACK,
        "SERVING_DEPLOY_ROLE_ARN": DEPLOY_ROLE,
        contracts.ENV_USERS_TABLE: contracts.table_name(PREFIX, contracts.USERS),
        contracts.ENV_ITEMS_TABLE: contracts.table_name(PREFIX, contracts.ITEMS),
        contracts.ENV_BATCH_TABLE: contracts.table_name(PREFIX, contracts.BATCH_RECOMMENDATIONS),
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        ddb = boto3.resource("dynamodb", region_name=REGION)
        names = {}
        for spec in contracts.ALL_TABLES:
            name = contracts.table_name(PREFIX, spec)
            ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            names[spec.logical_name] = name
        yield {
            "s3": s3,
            "dynamodb": ddb,
            "cfn": boto3.client("cloudformation", region_name=REGION),
            "bucket": BUCKET,
            "tables": {
                "users": names[contracts.USERS.logical_name],
                "items": names[contracts.ITEMS.logical_name],
                "recommendations": names[contracts.BATCH_RECOMMENDATIONS.logical_name],
            },
        }
