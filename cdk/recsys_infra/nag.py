"""Scanner exceptions, each with its reason: cdk-nag acknowledgements and checkov skips.

Both are recorded on the narrowest construct that raises the finding: an IAM wildcard finding on
the role's ``DefaultPolicy`` (``acknowledge_policy``), a resource rule on the CloudFormation
resource itself (``acknowledge(resource_of(x), ...)``), a checkov check in that resource's
own ``Metadata`` (``checkov_skip``). ``tests/infra/test_scanners.py`` holds the synthesized
metadata to that.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

CHECKOV_ID = re.compile(r"^CKV2?_AWS_\d+$")
MIN_CHECKOV_COMMENT = 40  # a sentence a reviewer can check, not "false positive"
# CKV_AWS_158 (log group encrypted with a customer managed key), on every log group of the app.
LOG_GROUP_KMS_SKIP = (
    "CloudWatch Logs encrypts log events at rest with its service key. These logs hold request "
    "metadata and errors, not the event, feature or model data (API Gateway data tracing and "
    "Step Functions execution data are off), so the customer managed key is kept to the data "
    "stores; a log group's KmsKeyId also needs the key ARN, which the other stacks do not share."
)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Record a reasoned exception to an AwsSolutions rule (or one finding, ``Rule[Finding]``)
    on ``scope`` and everything under it."""
    if len(reason) < 20:
        raise ValueError(
            f"{rule}: a suppression needs a reason a reviewer can check, got {reason!r}"
        )
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def resource_of(scope: IConstruct) -> CfnResource:
    """The CloudFormation resource of an L2 construct (its default child), or ``scope`` itself."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise ValueError(f"{scope.node.path} has no single CloudFormation resource")
    return resource


def acknowledge_policy(role: iam.IRole, rule: str, reason: str) -> None:
    """Acknowledge one finding (``Rule[Finding]``) of ``role``'s DefaultPolicy, not of the role.

    Call it after the statements are added: the DefaultPolicy exists from the first
    ``add_to_policy``.
    """
    if not re.search(r"\[.+\]$", rule):
        raise ValueError(f"{rule}: acknowledge one finding (Rule[Finding]), not a whole rule")
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        raise ValueError(f"{role.node.path} has no DefaultPolicy to acknowledge {rule} on")
    acknowledge(policy, rule, reason)


def checkov_skip(scope: IConstruct, check_id: str, comment: str) -> None:
    """Skip one checkov check on the CloudFormation resource of ``scope`` (an L1 resource or an
    L2 construct's default child), in the resource's ``Metadata.checkov.skip`` with its reason."""
    if not CHECKOV_ID.match(check_id):
        raise ValueError(f"{check_id!r} is not a checkov AWS check id (CKV_AWS_n)")
    if len(comment.strip()) < MIN_CHECKOV_COMMENT:
        raise ValueError(f"{check_id}: a skip needs a reason a reviewer can check, got {comment!r}")
    resource = resource_of(scope)
    existing = resource.get_metadata("checkov") or {}
    skips = [s for s in existing.get("skip", []) if s["id"] != check_id]
    resource.add_metadata("checkov", {**existing, "skip": [*skips, {"id": check_id, "comment": comment}]})


def flatten(value: Any) -> str:
    """Render a resolved CloudFormation value the way cdk-nag prints it in finding ids."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if fn == "Fn::Join":
            return arg[0].join(flatten(part) for part in arg[1])
        if fn == "Fn::ImportValue":
            return flatten(arg)
    return json.dumps(value)


def finding(rule: str, resource: str, stack: Stack) -> str:
    """The id of one ``Resource::`` finding of ``rule`` (e.g. AwsSolutions-IAM5) for an ARN that
    may contain tokens, as cdk-nag reports it, so an acknowledgement names exactly one resource."""
    return f"{rule}[Resource::{flatten(stack.resolve(resource))}]"
