"""The training pipeline's Lambda steps (log purge of deleted users, evaluation gate, batch load,
promotion) and exactly the grants each needs; each function's cdk-nag acknowledgements sit beside its grants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import artifacts, gate, promote, purge

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import READ, WRITE, grant_data_key
from recsys_infra.functions import FunctionSpec, RecsysFunction
from recsys_infra.nag import acknowledge_policy, finding

PIPELINE_LAMBDA_TIMEOUT_S = 900  # loading a large catalogue into DynamoDB takes minutes


def pipeline_functions(
    scope: Construct,
    cfg: EnvironmentConfig,
    *,
    artifacts_bucket: s3.IBucket,
    events_bucket: s3.IBucket,
    tables: Mapping[str, dynamodb.ITable],
    serving_stack_name: str,
    deploy_role: Optional[iam.IRole],
) -> dict[str, RecsysFunction]:
    """``purge``, ``gate``, ``load`` and ``promote`` -> function construct, each with its own role."""
    stack = Stack.of(scope)
    bucket_env = {gate.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name}
    table_env = {
        contracts.ENV_USERS_TABLE: tables[contracts.USERS.logical_name].table_name,
        contracts.ENV_ITEMS_TABLE: tables[contracts.ITEMS.logical_name].table_name,
        contracts.ENV_BATCH_TABLE: tables[contracts.BATCH_RECOMMENDATIONS.logical_name].table_name,
    }

    def make(name: str, handler: str, description: str, env: dict, memory: int) -> RecsysFunction:
        return RecsysFunction(
            scope,
            f"{name.capitalize()}Function",
            cfg=cfg,
            spec=FunctionSpec(
                name=f"pipeline-{name}",
                handler=handler,
                description=f"{cfg.prefix} training pipeline: {description}",
                timeout_s=PIPELINE_LAMBDA_TIMEOUT_S,
                memory_mb=memory,
            ),
            environment=env,
        )

    functions = {
        "purge": make(
            "purge",
            "recsys_lambdas.pipeline.purge.handler",
            "rewrite the event log without deleted users",
            {purge.ENV_EVENTS_BUCKET: events_bucket.bucket_name},
            1024,  # one log object in memory at a time (Firehose writes at most 64 MiB)
        ),
        "gate": make(
            "gate",
            "recsys_lambdas.pipeline.gate.handler",
            "evaluation gate",
            {**bucket_env, gate.ENV_NDCG_TOLERANCE: f"{cfg.training.ndcg_tolerance:g}"},
            256,
        ),
        "load": make(
            "load",
            "recsys_lambdas.pipeline.load.handler",
            "load batch output into DynamoDB",
            {**bucket_env, **table_env},
            1024,
        ),
        "promote": make(
            "promote",
            "recsys_lambdas.pipeline.promote.handler",
            "promote the model to serving",
            {
                **bucket_env,
                promote.ENV_SERVING_STACK: serving_stack_name,
                promote.ENV_CFN_ROLE_ARN: deploy_role.role_arn if deploy_role else "",
            },
            256,
        ),
    }
    models_objects = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")
    for name in ("gate", "load"):
        functions[name].role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[models_objects])
        )
        # Without ListBucket S3 answers a missing key with 403 AccessDenied, not NoSuchKey:
        # the gate could never read "no model serves yet" (models/serving.json is absent until
        # the first promotion), nor either step name a missing output.tar.gz.
        functions[name].role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{contracts.MODELS_PREFIX}*"]}},
            )
        )
        acknowledge_policy(
            functions[name].role,
            finding("AwsSolutions-IAM5", models_objects, stack),
            "Reads the training output of the run (models/<job>/output/*.tar.gz) and the "
            "serving record; read-only, limited to the models/ prefix.",
        )
    serving_record = artifacts_bucket.arn_for_objects(artifacts.SERVING_RECORD_KEY)
    serving_history = artifacts_bucket.arn_for_objects(f"{artifacts.SERVING_HISTORY_PREFIX}*")
    functions["promote"].role.add_to_policy(
        iam.PolicyStatement(actions=["s3:PutObject"], resources=[serving_record, serving_history])
    )
    acknowledge_policy(
        functions["promote"].role,
        finding("AwsSolutions-IAM5", serving_history, stack),
        "Adds one record per promotion to models/serving-history/ (keys named by promotion "
        "time); write-only, that prefix only.",
    )
    functions["load"].role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            resources=[
                tables[spec.logical_name].table_arn
                for spec in (contracts.USERS, contracts.ITEMS, contracts.BATCH_RECOMMENDATIONS)
            ],
        )
    )
    if serving_stack_name and deploy_role is not None:
        stack_arn = stack.format_arn(
            service="cloudformation", resource="stack", resource_name=f"{serving_stack_name}/*"
        )
        functions["promote"].role.add_to_policy(
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=[stack_arn])
        )
        # Only through the deploy role: an UpdateStack without RoleARN would run as the role
        # the stack was last deployed with (cdk deploy's, admin-like).
        functions["promote"].role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:UpdateStack"],
                resources=[stack_arn],
                conditions={"StringEquals": {"cloudformation:RoleArn": deploy_role.role_arn}},
            )
        )
        functions["promote"].role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[deploy_role.role_arn],
                conditions={
                    "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                },
            )
        )
        acknowledge_policy(
            functions["promote"].role,
            finding("AwsSolutions-IAM5", stack_arn, stack),
            "The serving stack's ARN ends in a stack id CloudFormation assigns; the name "
            "part is exact.",
        )
    _grant_purge(functions["purge"], events_bucket, stack)
    # With encryption: kms the models and the tables are encrypted with the data key.
    grant_data_key(functions["purge"].role, cfg, actions=WRITE, via=["s3"])
    grant_data_key(functions["gate"].role, cfg, actions=READ, via=["s3"])
    grant_data_key(functions["load"].role, cfg, actions=WRITE, via=["s3", "dynamodb"])
    grant_data_key(functions["promote"].role, cfg, actions=WRITE, via=["s3"])
    return functions


def _grant_purge(function: RecsysFunction, events_bucket: s3.IBucket, stack: Stack) -> None:
    """The purge reads the deletion and purge records and the log, rewrites or deletes log objects
    (and the versions they replace: the bucket is versioned) and writes purge records."""
    log = events_bucket.arn_for_objects(f"{contracts.EVENTS_PREFIX}*")
    deletions = events_bucket.arn_for_objects(f"{contracts.DELETIONS_PREFIX}*")
    purges = events_bucket.arn_for_objects(f"{contracts.PURGES_PREFIX}*")
    role = function.role
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[events_bucket.bucket_arn],
            conditions={
                "StringLike": {
                    "s3:prefix": [
                        f"{prefix}*"
                        for prefix in (
                            contracts.EVENTS_PREFIX,
                            contracts.DELETIONS_PREFIX,
                            contracts.PURGES_PREFIX,
                        )
                    ]
                }
            },
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[log, deletions, purges])
    )
    role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[log, purges]))
    role.add_to_policy(
        iam.PolicyStatement(actions=["s3:DeleteObject", "s3:DeleteObjectVersion"], resources=[log])
    )
    for resource, why in (
        (log, "Rewrites or deletes the log objects Firehose names (events/<date>/...) that hold a "
              "deleted user's rows, and deletes the versions they replace."),
        (deletions, "Reads the deletion records (deletions/<hash of the user id>.json)."),
        (purges, "Reads and writes the purge records (purges/<hash of the user id>.json)."),
    ):
        acknowledge_policy(role, finding("AwsSolutions-IAM5", resource, stack), why)
