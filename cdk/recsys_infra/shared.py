"""References to the storage stack's resources by name, for the other stacks.

Every shared resource has a fixed name derived from the config, so the serving, API and training
stacks address them without CloudFormation exports (an export pins the exporting stack: it could
no longer change the resource, and the serving stack's promotion updates must not depend on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct
from recsys_lambdas import contracts

from recsys_infra.config import EnvironmentConfig

EVENTS_BUCKET = "events"
ARTIFACTS_BUCKET = "artifacts"
ACCESS_LOGS_BUCKET = "access-logs"


@dataclass(frozen=True)
class SharedResources:
    """The storage stack's resources as seen from another stack."""

    events_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    tables: dict[str, dynamodb.ITable]
    alarm_topic: sns.ITopic
    delivery_stream_name: str
    delivery_stream_arn: str


def shared_resources(scope: Construct, cfg: EnvironmentConfig) -> SharedResources:
    """Import the shared resources into ``scope``'s stack by their configured names."""
    stack = Stack.of(scope)
    holder = Construct(scope, "Shared")
    return SharedResources(
        events_bucket=s3.Bucket.from_bucket_name(
            holder, "EventsBucket", cfg.bucket_name(EVENTS_BUCKET, Aws.ACCOUNT_ID)
        ),
        artifacts_bucket=s3.Bucket.from_bucket_name(
            holder, "ArtifactsBucket", cfg.bucket_name(ARTIFACTS_BUCKET, Aws.ACCOUNT_ID)
        ),
        tables={
            spec.logical_name: dynamodb.Table.from_table_name(
                holder, f"{spec.logical_name}-table", cfg.table_name(spec)
            )
            for spec in contracts.ALL_TABLES
        },
        alarm_topic=sns.Topic.from_topic_arn(
            holder,
            "AlarmTopic",
            stack.format_arn(service="sns", resource=cfg.alarm_topic_name),
        ),
        delivery_stream_name=cfg.delivery_stream_name,
        delivery_stream_arn=stack.format_arn(
            service="firehose", resource="deliverystream", resource_name=cfg.delivery_stream_name
        ),
    )
