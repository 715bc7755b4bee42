"""The training pipeline's two roles: the SageMaker training jobs' role and the CloudFormation
service role the promote step updates the serving stack with. Each role's cdk-nag
acknowledgements sit beside the grants they excuse."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct
from recsys_lambdas import contracts

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import ATTACH, WRITE, grant_data_key
from recsys_infra.images import grant_image_pull
from recsys_infra.nag import acknowledge_policy, finding
from recsys_infra.serving import VARIANT_INSTANCE_COUNT

SCALABLE_TARGETS = "arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/*"



def grant_job_runtime(
    role: iam.IRole, stack: Stack, image_uri: str, jobs: str, job_prefix: str
) -> str:
    """What a SageMaker job's role needs to run its container: pull the image, write the job's
    logs (``/aws/sagemaker/<jobs>``, streams of jobs named ``<job_prefix>...``) and put metrics
    in that namespace only. Returns the log streams' ARN pattern (for its acknowledgement)."""
    grant_image_pull(role, image_uri)
    log_group_arn = stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"/aws/sagemaker/{jobs}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    log_streams = f"{log_group_arn}:log-stream:{job_prefix}*"
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group_arn, log_streams],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": f"/aws/sagemaker/{jobs}"}},
        )
    )
    return log_streams


def training_role(
    scope: Construct,
    cfg: EnvironmentConfig,
    *,
    image_uri: str,
    events_bucket: s3.IBucket,
    artifacts_bucket: s3.IBucket,
) -> iam.Role:
    """The role both training jobs run with: read the inputs, write under models/, pull the
    image, write the jobs' logs and metrics. Each job grants it its ``code`` channel
    (``SourceAsset.grant_channel_read``)."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "TrainingRole",
        assumed_by=iam.ServicePrincipal(
            "sagemaker.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ),
        description=f"{cfg.prefix} SageMaker training jobs",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[
                events_bucket.arn_for_objects(f"{contracts.EVENTS_PREFIX}*"),
                events_bucket.arn_for_objects(f"{contracts.ITEMS_PREFIX}*"),
                events_bucket.arn_for_objects(f"{contracts.DELETIONS_PREFIX}*"),
                events_bucket.arn_for_objects(f"{contracts.USERS_PREFIX}*"),
                artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*"),
            ],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"],
            resources=[artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")],
        )
    )
    for bucket, prefixes in (
        (
            events_bucket,
            [
                contracts.EVENTS_PREFIX,
                contracts.ITEMS_PREFIX,
                contracts.DELETIONS_PREFIX,
                contracts.USERS_PREFIX,
            ],
        ),
        (artifacts_bucket, [contracts.MODELS_PREFIX]),
    ):
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
            )
        )
    log_streams = grant_job_runtime(role, stack, image_uri, "TrainingJobs", f"{cfg.prefix}-")

    # Inputs and models in the data-key-encrypted buckets; the training volumes' grant.
    grant_data_key(role, cfg, actions=WRITE, via=["s3"])
    grant_data_key(role, cfg, actions=ATTACH, via=["sagemaker", "ec2"])
    acknowledge_policy(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
        "permissions; PutMetricData is limited to SageMaker's namespace by a condition.",
    )
    for bucket, prefix, why in (
        (events_bucket, contracts.EVENTS_PREFIX, "reads the event log Firehose writes"),
        (events_bucket, contracts.ITEMS_PREFIX, "reads the item catalogue files"),
        (events_bucket, contracts.DELETIONS_PREFIX, "reads the deletion records (DELETE /users)"),
        (events_bucket, contracts.USERS_PREFIX, "reads the user metadata files (optional)"),
        (artifacts_bucket, contracts.MODELS_PREFIX, "writes its model and reads job 1's"),
    ):
        acknowledge_policy(
            role,
            finding("AwsSolutions-IAM5", bucket.arn_for_objects(f"{prefix}*"), stack),
            f"Training {why}; object names are generated, access is limited to {prefix}.",
        )
    acknowledge_policy(
        role,
        finding("AwsSolutions-IAM5", log_streams, stack),
        "SageMaker names a training job's log streams <job name>/algo-N-<time>; the jobs of "
        "this deployment start with its prefix.",
    )
    return role


def serving_deploy_role(
    scope: Construct, cfg: EnvironmentConfig, *, serving_stack_name: str, model_role_arn: str
) -> iam.Role:
    """The CloudFormation service role the promote step updates the serving stack with.

    The promote Lambda may only pass this role; the role may only do what a model change
    of the serving stack makes CloudFormation do.
    """
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "ServingDeployRole",
        assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
        description=f"{cfg.prefix}: CloudFormation updates of {serving_stack_name} on promotion",
    )

    def arn(resource: str, name: str) -> str:
        return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    endpoint = arn("endpoint", cfg.endpoint_name.lower())
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "sagemaker:CreateModel",
                "sagemaker:DescribeModel",
                "sagemaker:DeleteModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            resources=[arn("model", "*"), arn("endpoint-config", "*")],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
                # Application Auto Scaling's prerequisite for RegisterScalableTarget on a
                # variant: the caller itself may resize it.
                "sagemaker:UpdateEndpointWeightsAndCapacities",
            ],
            resources=[endpoint],
        )
    )
    # ...and may manage the target-tracking alarms the scaling policy creates (named
    # TargetTracking-endpoint/<endpoint>/variant/<variant>-AlarmHigh/Low-<id>).
    tracking_alarms = stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"TargetTracking-endpoint/{cfg.endpoint_name}/*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
            resources=[tracking_alarms],
        )
    )
    acknowledge_policy(
        role,
        finding("AwsSolutions-IAM5", tracking_alarms, stack),
        "Application Auto Scaling names its target-tracking alarms with a generated suffix; "
        "the prefix names this endpoint only.",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[model_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
    )
    # First promotion creates the autoscaling target and policy (condition HasModel flips).
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
                "cloudwatch:DescribeAlarms",
            ],
            resources=["*"],
        )
    )
    # As far as Application Auto Scaling allows: a scalable target's ARN ends in an id the
    # service generates, so the write actions are scoped to SageMaker variant instance counts by
    # the service's own condition keys.
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
            ],
            resources=[SCALABLE_TARGETS.format(partition=stack.partition, region=stack.region,
                                               account=stack.account)],
            conditions={
                "StringEquals": {
                    "application-autoscaling:service-namespace": "sagemaker",
                    "application-autoscaling:scalable-dimension": VARIANT_INSTANCE_COUNT,
                }
            },
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
                "sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
            ],
            conditions={
                "StringLike": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                }
            },
        )
    )
    # The CDK bootstrap version parameter (default qualifier) is re-resolved on every update.
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["ssm:GetParameters"],
            resources=[
                stack.format_arn(
                    service="ssm",
                    resource="parameter",
                    resource_name="cdk-bootstrap/hnb659fds/version",
                )
            ],
        )
    )

    # The endpoint config's KmsKeyId (encryption: kms): CreateEndpoint/UpdateEndpoint as
    # this role attach the data key to the instances' volumes.
    grant_data_key(role, cfg, actions=ATTACH, via=["sagemaker"])
    acknowledge_policy(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "Application Auto Scaling's Describe APIs and cloudwatch:DescribeAlarms have no "
        "resource-level permissions.",
    )
    acknowledge_policy(
        role,
        finding(
            "AwsSolutions-IAM5",
            SCALABLE_TARGETS.format(
                partition=stack.partition, region=stack.region, account=stack.account
            ),
            stack,
        ),
        "A scalable target's ARN ends in an id Application Auto Scaling generates; the writes "
        "are limited to SageMaker variant instance counts by the service's condition keys.",
    )
    for resource in ("model", "endpoint-config"):
        acknowledge_policy(
            role,
            finding("AwsSolutions-IAM5", arn(resource, "*"), stack),
            f"CloudFormation generates a new {resource} name on each promotion "
            "(replacement); the endpoint itself is scoped by name.",
        )
    return role
