"""One Lambda function with its own role, log group and the Powertools layer.

Every function in the app is built here so each gets the same guarantees: its own IAM role with
nothing attached but its log group (callers add exactly the grants it needs), a log group with a
retention period, X-Ray tracing, bounded memory and timeout, and the code asset of ``lambdas/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from recsys_infra.config import REPO_ROOT, EnvironmentConfig
from recsys_infra.nag import (
    LOG_GROUP_KMS_SKIP,
    acknowledge,
    acknowledge_policy,
    checkov_skip,
    resource_of,
)

LAMBDAS_DIR = REPO_ROOT / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_11  # matches the Powertools layer below (python311)
POWERTOOLS_LAYER_ARN = "arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:{version}"
_ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache"]


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the app's functions."""

    name: str  # logical name, e.g. "recommendations" or "pipeline-gate"
    handler: str  # import path, e.g. "recsys_lambdas.api.meta.handler"
    description: str
    timeout_s: int
    memory_mb: int
    reserved_concurrency: Optional[int] = None


def removal_policy(cfg: EnvironmentConfig) -> RemovalPolicy:
    """RETAIN keeps data (and logs) when a stack is deleted; DESTROY is for throwaway dev stacks."""
    return RemovalPolicy.DESTROY if cfg.removal_policy == "destroy" else RemovalPolicy.RETAIN


def _layer_arn(cfg: EnvironmentConfig) -> str:
    return POWERTOOLS_LAYER_ARN.format(
        region=cfg.region, version=cfg.lambdas.powertools_layer_version
    )


class RecsysFunction(Construct):
    """A Python Lambda function, least privilege by construction.

    Attributes:
        function: The Lambda function.
        role: Its own role; grant it exactly what the function touches.
        log_group: Its log group (retention from the config).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        spec: FunctionSpec,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = retained_log_group(self, "Logs", cfg)
        # A role without the AWSLambdaBasicExecutionRole managed policy: that policy lets a
        # function write to any log group in the account; this one may write to its own only.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{cfg.prefix} {spec.name} Lambda function",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        env = {
            "POWERTOOLS_SERVICE_NAME": f"{cfg.prefix}-{spec.name}",
            "POWERTOOLS_METRICS_NAMESPACE": "Recsys",
            "LOG_LEVEL": "INFO",
            **environment,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            handler=spec.handler,
            code=lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=_ASSET_EXCLUDES),
            description=spec.description,
            timeout=Duration.seconds(spec.timeout_s),
            memory_size=spec.memory_mb,
            reserved_concurrent_executions=spec.reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=env,
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", _layer_arn(cfg))
            ],
        )
        # Tracing.ACTIVE adds xray:PutTraceSegments/PutTelemetryRecords on "*" to the role.
        acknowledge_policy(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            (
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
                "permissions; '*' is what AWS requires for active tracing."
            ),
        )
        acknowledge(
            resource_of(self.function),
            "AwsSolutions-L1",
            (
                "Python 3.11 is pinned on purpose: it matches the Powertools public layer "
                "(python311) and stays close to the SageMaker container's Python."
            ),
        )
        for check_id, comment in _FUNCTION_SKIPS:
            checkov_skip(self.function, check_id, comment)
        if spec.reserved_concurrency is None:
            checkov_skip(
                self.function,
                "CKV_AWS_115",
                "No reserved concurrency: the pipeline steps run once per training run, and "
                "lambdas.reservedConcurrency is null in this environment's cdk.json (a new "
                "account's quota cannot reserve); the account's concurrency limit still bounds it.",
            )


_FUNCTION_SKIPS = (
    (
        "CKV_AWS_116",
        "Invoked synchronously only (API Gateway proxy integration, Step Functions "
        "LambdaInvoke): a dead-letter queue applies to asynchronous invocations; failures reach "
        "the caller, the 5xx/Errors alarms and the pipeline's failure state.",
    ),
    (
        "CKV_AWS_117",
        "The function reaches only AWS APIs (DynamoDB, Firehose, S3, SageMaker Runtime, "
        "CloudFormation) over TLS with IAM-signed requests and no private network resource; "
        "a VPC would add NAT or endpoints and cold-start cost without narrowing access.",
    ),
    (
        "CKV_AWS_173",
        "The environment holds only resource names, modes and timeouts, never a secret; Lambda "
        "encrypts it at rest with its service key, and KmsKeyArn needs a key ARN the other "
        "stacks do not share (they address the data key by alias).",
    ),
)


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(cfg: EnvironmentConfig) -> logs.RetentionDays:
    """The configured log retention as CloudWatch's enum."""
    days = cfg.lambdas.log_retention_days
    if days not in _RETENTION:
        raise ValueError(
            f"lambdas.logRetentionDays: {days} is not one of CloudWatch's {sorted(_RETENTION)}"
        )
    return _RETENTION[days]


def retained_log_group(
    scope: Construct, construct_id: str, cfg: EnvironmentConfig, log_group_name: Optional[str] = None
) -> logs.LogGroup:
    """A log group with the configured retention and removal policy, created by CDK (also for
    the names a service would otherwise create itself, without retention)."""
    group = logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        retention=log_retention(cfg),
        removal_policy=removal_policy(cfg),
    )
    checkov_skip(group, "CKV_AWS_158", LOG_GROUP_KMS_SKIP)
    return group
