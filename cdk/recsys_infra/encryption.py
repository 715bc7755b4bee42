"""The deployment's customer managed data key (``encryption: "kms"`` in cdk.json).

One KMS key, rotated yearly, in the storage stack encrypts the S3 data buckets, the DynamoDB
tables, the Firehose delivery stream, the training jobs' volumes and model output, and the
endpoint's ML storage volumes. Its key policy keeps CDK's default (the account may delegate use
of the key to IAM policies) and trusts no service principal: every use goes through an IAM role
of this app, granted here with ``kms:ViaService`` so the key works only through the one service
the role reaches the data with. The alarm topic keeps its own key (``monitoring.AlarmTopic``),
because that key must trust the CloudWatch and EventBridge service principals.

Other stacks address the key by its fixed alias (``alias/<prefix>-data``) like every shared
resource (``shared.py``): SageMaker takes an alias ARN as ``KmsKeyId``, and IAM grants name the
key through the ``kms:ResourceAliases`` condition instead of a key id only the storage stack knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from recsys_infra.config import EnvironmentConfig
from recsys_infra.functions import removal_policy
from recsys_infra.nag import acknowledge_policy, finding

READ = ("kms:Decrypt", "kms:DescribeKey")
WRITE = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
# SageMaker encrypts the volumes it attaches through a grant the passing role creates.
ATTACH = ("kms:CreateGrant", "kms:DescribeKey")


def data_key(scope: Construct, cfg: EnvironmentConfig) -> Optional[kms.Key]:
    """The data key and its alias in the storage stack, or None when ``encryption`` is
    ``aws-managed``."""
    if not cfg.kms:
        return None
    key = kms.Key(
        scope,
        "DataKey",
        description=f"{cfg.prefix}: events, features, models and training volumes",
        enable_key_rotation=True,
        removal_policy=removal_policy(cfg),
    )
    key.add_alias(cfg.data_key_alias)
    return key


def data_key_alias_arn(scope: Construct, cfg: EnvironmentConfig) -> str:
    """The data key's alias ARN, as SageMaker's ``KmsKeyId`` fields accept it."""
    return Stack.of(scope).format_arn(service="kms", resource=cfg.data_key_alias)


def grant_data_key(
    role: iam.IRole,
    cfg: EnvironmentConfig,
    *,
    actions: Sequence[str],
    via: Sequence[str],
    key: Optional[kms.IKey] = None,
) -> None:
    """Let ``role`` use the data key for ``actions``, only through the services ``via``
    (``s3``, ``dynamodb``, ``sagemaker``...); a no-op without the key.

    Args:
        role: A role of this app (its DefaultPolicy gets the statement).
        cfg: The environment (the key exists only when ``encryption`` is ``kms``).
        actions: KMS actions, e.g. ``READ`` or ``WRITE``.
        via: Services the role calls that use the key on its behalf.
        key: The key itself in the storage stack; elsewhere the key is found by its alias.
    """
    if not cfg.kms:
        return
    stack = Stack.of(role)
    region = stack.region
    conditions: dict = {
        "StringEquals": {"kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in via]}
    }
    if key is not None:
        resources = [key.key_arn]
    else:
        resources = [stack.format_arn(service="kms", resource="key", resource_name="*")]
        conditions["ForAnyValue:StringEquals"] = {"kms:ResourceAliases": cfg.data_key_alias}
    if "kms:CreateGrant" in actions:
        conditions["Bool"] = {"kms:GrantIsForAWSResource": "true"}
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=sorted(set(actions)), resources=resources, conditions=conditions)
    )
    if key is None:
        acknowledge_policy(
            role,
            finding("AwsSolutions-IAM5", resources[0], stack),
            "The data key lives in the storage stack and is shared by its fixed alias; the "
            f"kms:ResourceAliases condition ({cfg.data_key_alias}) limits this to that one key.",
        )


def data_key_by_alias(scope: Construct, cfg: EnvironmentConfig) -> Optional[kms.IKey]:
    """The data key as seen from another stack (its alias; ``key_arn`` is the alias ARN), once
    per stack; None with ``encryption: "aws-managed"``."""
    if not cfg.kms:
        return None
    stack = Stack.of(scope)
    existing = stack.node.try_find_child("DataKeyByAlias")
    if existing is not None:
        return existing  # type: ignore[return-value]
    return kms.Alias.from_alias_name(stack, "DataKeyByAlias", cfg.data_key_alias)
