"""Storage and feature store: S3 buckets, the DynamoDB tables of the contracts, and the Firehose
delivery stream that makes every accepted event durable in S3 for the next training run.

With ``encryption: "kms"`` the data buckets, the tables and the stream are encrypted with the
deployment's data key (``encryption.py``); with ``"aws-managed"`` with S3-managed and AWS
owned/managed keys. The access logs bucket is always SSE-S3: S3 server access logging cannot
deliver to an SSE-KMS bucket.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct
from recsys_lambdas import contracts

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import WRITE, data_key, grant_data_key
from recsys_infra.functions import removal_policy, retained_log_group
from recsys_infra.nag import (
    acknowledge,
    acknowledge_policy,
    checkov_skip,
    finding,
    resource_of,
)
from recsys_infra.shared import ACCESS_LOGS_BUCKET, ARTIFACTS_BUCKET, EVENTS_BUCKET

FIREHOSE_ERRORS_PREFIX = "firehose-errors/"  # outside events/: training never reads failures


class Storage(Construct):
    """Buckets, tables and the event delivery stream.

    Attributes:
        access_logs_bucket: Receives S3 server access logs of the other buckets.
        events_bucket: Raw events (``contracts.EVENTS_PREFIX``) and item catalogues
            (``contracts.ITEMS_PREFIX``): the training input.
        artifacts_bucket: Training output and model artifacts (``contracts.MODELS_PREFIX``).
        tables: Contract logical name -> DynamoDB table.
        delivery_stream: Firehose stream writing JSON Lines under ``events/`` in the events bucket.
        delivery_stream_arn: Its ARN.
        data_key: The customer managed data key (None with ``encryption: "aws-managed"``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        policy = removal_policy(cfg)
        self.data_key = data_key(self, cfg)
        key = self.data_key

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=cfg.bucket_name(ACCESS_LOGS_BUCKET, Aws.ACCOUNT_ID),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=policy,
            auto_delete_objects=False,
        )
        acknowledge(
            resource_of(self.access_logs_bucket),
            "AwsSolutions-S1",
            "This is the server access logs bucket; logging it to itself would loop.",
        )
        checkov_skip(
            self.access_logs_bucket,
            "CKV_AWS_18",
            "This is the target of the other buckets' server access logs; logging it to itself "
            "would log its own log deliveries without end.",
        )
        bucket_encryption: dict[str, Any]
        if key is None:
            bucket_encryption = {"encryption": s3.BucketEncryption.S3_MANAGED}
        else:
            bucket_encryption = {
                "encryption": s3.BucketEncryption.KMS,
                "encryption_key": key,
                "bucket_key_enabled": True,  # one data key per bucket: far fewer KMS calls
            }

        def data_bucket(construct_id: str, purpose: str, prefix: str) -> s3.Bucket:
            return s3.Bucket(
                self,
                construct_id,
                bucket_name=cfg.bucket_name(purpose, Aws.ACCOUNT_ID),
                **bucket_encryption,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                server_access_logs_bucket=self.access_logs_bucket,
                server_access_logs_prefix=prefix,
                lifecycle_rules=[
                    s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)),
                    s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7)),
                ],
                removal_policy=policy,
                auto_delete_objects=False,
            )

        self.events_bucket = data_bucket("Events", EVENTS_BUCKET, "events-bucket/")
        self.artifacts_bucket = data_bucket("Artifacts", ARTIFACTS_BUCKET, "artifacts-bucket/")

        self.tables: dict[str, dynamodb.Table] = {}
        for spec in contracts.ALL_TABLES:
            table = self.tables[spec.logical_name] = dynamodb.Table(
                self,
                _construct_id(spec.logical_name),
                table_name=cfg.table_name(spec),
                partition_key=dynamodb.Attribute(
                    name=spec.partition_key, type=dynamodb.AttributeType.STRING
                ),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED
                if key is None
                else dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=key,
                time_to_live_attribute=spec.ttl_attribute,
                removal_policy=policy,
            )
            if key is None:
                checkov_skip(
                    table,
                    "CKV_AWS_119",
                    f"This environment ({cfg.name}) sets encryption: aws-managed in cdk.json: "
                    "the table is encrypted with the AWS managed DynamoDB key; set "
                    "encryption: kms (prod's default) for the customer managed data key.",
                )

        self.delivery_stream = self._delivery_stream(cfg)
        self.delivery_stream_arn = self.delivery_stream.attr_arn

    def table(self, spec: contracts.TableSpec) -> dynamodb.Table:
        """The table of one contract spec."""
        return self.tables[spec.logical_name]

    def _delivery_stream(self, cfg: EnvironmentConfig) -> firehose.CfnDeliveryStream:
        """Firehose -> events bucket, with a role that may write only its two prefixes."""
        stack = Stack.of(self)
        log_group = retained_log_group(self, "DeliveryLogs", cfg)
        log_stream = logs.LogStream(
            self, "DeliveryLogStream", log_group=log_group, log_stream_name="S3Delivery"
        )
        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"sts:ExternalId": stack.account}},
            ),
            description=f"{cfg.prefix} Firehose delivery of events to S3",
        )
        bucket = self.events_bucket
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                resources=[
                    bucket.arn_for_objects(f"{contracts.EVENTS_PREFIX}*"),
                    bucket.arn_for_objects(f"{FIREHOSE_ERRORS_PREFIX}*"),
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{log_group.log_group_name}:log-stream:{log_stream.log_stream_name}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        grant_data_key(role, cfg, actions=WRITE, via=["s3"], key=self.data_key)
        for prefix in (contracts.EVENTS_PREFIX, FIREHOSE_ERRORS_PREFIX):
            acknowledge_policy(
                role,
                finding("AwsSolutions-IAM5", f"{bucket.bucket_arn}/{prefix}*", stack),
                f"Firehose writes objects with generated names under {prefix} only.",
            )
        stream = firehose.CfnDeliveryStream(
            self,
            "Delivery",
            delivery_stream_name=cfg.delivery_stream_name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            )
            if self.data_key is None
            else firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=self.data_key.key_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=contracts.EVENTS_PREFIX
                + "!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/",
                error_output_prefix=FIREHOSE_ERRORS_PREFIX
                + "!{firehose:error-output-type}/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/",
                # Uncompressed JSON Lines: the training reader takes the files as they are.
                compression_format="UNCOMPRESSED",
                file_extension=".jsonl",
                encryption_configuration=None
                if self.data_key is None
                else firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.data_key.key_arn
                    )
                ),
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=300, size_in_m_bs=64
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        stream.node.add_dependency(role)
        return stream


def _construct_id(logical_name: str) -> str:
    return "".join(part.capitalize() for part in logical_name.split("-")) + "Table"
