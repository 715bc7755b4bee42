"""cdk-nag acknowledgements: one helper so every suppression carries its reason."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Record a reasoned exception to an AwsSolutions rule (or one finding, ``Rule[Finding]``)
    on ``scope`` and everything under it."""
    if len(reason) < 20:
        raise ValueError(
            f"{rule}: a suppression needs a reason a reviewer can check, got {reason!r}"
        )
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def _flatten(value: Any) -> str:
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
            return arg[0].join(_flatten(part) for part in arg[1])
        if fn == "Fn::ImportValue":
            return _flatten(arg)
    return json.dumps(value)


def finding(rule: str, resource: str, stack: Stack) -> str:
    """The id of one ``Resource::`` finding of ``rule`` (e.g. AwsSolutions-IAM5) for an ARN that
    may contain tokens, as cdk-nag reports it, so an acknowledgement names exactly one resource."""
    return f"{rule}[Resource::{_flatten(stack.resolve(resource))}]"
