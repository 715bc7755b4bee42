"""Decides IAM requests against policy documents the way AWS does for one account.

Statement matching (Action/NotAction, Resource, Effect) is moto's ``IAMPolicyStatement``
(``moto.iam.access_control``) with two corrections: wildcards are IAM's (``*`` and ``?``, the rest
literal; moto turns the pattern into a regex unescaped) and action names are case-insensitive.
moto checks ``StringEquals`` only, lets a condition on a missing key pass and turns a failed
condition into a Deny, so conditions are evaluated here instead, with AWS's semantics: every
operator block and key must match; a missing key fails unless the operator ends in ``IfExists``
(negated operators match a missing key); ``ForAnyValue:``/``ForAllValues:`` on multivalued keys.

Evaluation order: an explicit Deny in any policy wins; otherwise an Allow in an identity policy
or in a resource policy naming the principal allows; otherwise the request is implicitly denied.
A KMS key policy must allow the principal itself, or the account (``:root``) and then an identity
policy must allow too.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union

from moto.iam.access_control import IAMPolicyStatement, PermissionResult

ContextValue = Union[str, Sequence[str]]


def _glob(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    flags = re.S | (re.I if ignore_case else 0)
    return re.fullmatch(_glob(pattern), value, flags) is not None


def _listify(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Statement(IAMPolicyStatement):
    """moto's statement matcher with IAM's wildcards and case-insensitive actions."""

    @staticmethod
    def _match(pattern: str, string: str) -> Optional[re.Match]:
        return re.fullmatch(_glob(pattern), string, re.S)

    def _check_element_matches(self, statement_element: str, value: str) -> bool:
        patterns = _listify(self._statement[statement_element])
        ignore_case = statement_element in ("Action", "NotAction")
        return any(_like(p, value, ignore_case) for p in patterns)


# --- conditions ---------------------------------------------------------------------------


def _string_op(name: str) -> Any:
    if name == "StringEquals":
        return lambda p, v: p == v
    if name == "StringEqualsIgnoreCase":
        return lambda p, v: p.lower() == v.lower()
    if name in ("StringLike", "ArnLike", "ArnEquals"):
        return lambda p, v: _like(p, v)
    if name == "Bool":
        return lambda p, v: str(p).lower() == str(v).lower()
    if name.startswith("Numeric"):
        ops = {"NumericEquals": float.__eq__, "NumericLessThan": float.__lt__,
               "NumericLessThanEquals": float.__le__, "NumericGreaterThan": float.__gt__,
               "NumericGreaterThanEquals": float.__ge__}
        op = ops[name]
        return lambda p, v: op(float(v), float(p))
    return None


_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
            "NumericNotEquals": "NumericEquals"}


class UnsupportedCondition(ValueError):
    """A condition operator this evaluator does not implement (fails the check loudly)."""


def _block_matches(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    qualifier = ""
    if ":" in operator and operator.split(":", 1)[0] in ("ForAnyValue", "ForAllValues"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    present = key in context
    if operator == "Null":
        want_absent = str(_listify(expected)[0]).lower() == "true"
        return (not present) == want_absent
    negated = operator in _NEGATED
    op = _string_op(_NEGATED.get(operator, operator))
    if op is None:
        raise UnsupportedCondition(f"condition operator {operator!r} is not implemented")
    patterns = [str(p) for p in _listify(expected)]
    if not present:
        if qualifier == "ForAllValues":
            return True
        return if_exists or negated
    values = [str(v) for v in _listify(context[key])]

    def one(value: str) -> bool:
        hit = any(op(p, value) for p in patterns)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    if qualifier == "ForAnyValue" or len(values) == 1:
        return any(one(v) for v in values)
    raise UnsupportedCondition(f"{key} is multivalued: use ForAnyValue/ForAllValues")


def conditions_match(condition: Optional[Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    """Whether a statement's ``Condition`` block holds for the request context."""
    if not condition:
        return True
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, keys in condition.items():
        for key, expected in keys.items():
            if not _block_matches(operator, key.lower(), expected, lowered):
                return False
    return True


# --- requests and decisions ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One authorization AWS makes: ``action`` on ``resource`` with condition ``context``."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = dataclasses.field(default_factory=dict)
    why: str = ""  # what makes the request: the recorded call, or the service behaviour

    def __str__(self) -> str:
        ctx = "".join(f" {k}={v}" for k, v in sorted(self.context.items())
                      if not k.startswith("aws:Secure"))
        return f"{self.action} on {self.resource}{ctx}"


@dataclasses.dataclass(frozen=True)
class ResourcePolicy:
    """A resource-based policy (bucket policy, key policy) of the requested resource."""

    document: Mapping[str, Any]
    kind: str = "resource"  # "kms" for key policies


def statement_result(statement: Mapping[str, Any], request: Request,
                     principal: Optional[str] = None, account: Optional[str] = None) -> PermissionResult:
    """PERMITTED / DENIED (explicit) / NEUTRAL for one statement."""
    if "NotPrincipal" in statement:
        raise UnsupportedCondition("NotPrincipal is not implemented")
    if "Principal" in statement and not _principal_matches(statement["Principal"], principal, account):
        return PermissionResult.NEUTRAL
    if not conditions_match(statement.get("Condition"), request.context):
        return PermissionResult.NEUTRAL
    core = {k: v for k, v in statement.items() if k not in ("Condition", "Principal", "Sid")}
    if "NotResource" in core:
        if Statement({"NotResource": core.pop("NotResource")})._check_element_matches(
                "NotResource", request.resource):
            return PermissionResult.NEUTRAL
        core["Resource"] = "*"
    if "Resource" not in core:
        return PermissionResult.NEUTRAL  # a statement without resources grants nothing here
    return Statement(core).is_action_permitted(request.action, request.resource)


def _principal_matches(principal: Any, arn: Optional[str], account: Optional[str]) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping) or arn is None:
        return False
    names = _listify(principal.get("AWS", []))
    return "*" in names or arn in names or (account is not None and (
        f"arn:aws:iam::{account}:root" in names or account in names))


def _results(documents: Iterable[Mapping[str, Any]], request: Request, principal: Optional[str],
             account: Optional[str]) -> List[PermissionResult]:
    out = []
    for document in documents:
        for statement in _listify(document.get("Statement", [])):
            out.append(statement_result(statement, request, principal, account))
    return out


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide` and the policy that settled it."""

    allowed: bool
    reason: str


def decide(request: Request, identity_policies: Sequence[Mapping[str, Any]],
           resource_policies: Sequence[ResourcePolicy] = (), *, principal: str = "",
           account: str = "") -> Decision:
    """Evaluate ``request`` for ``principal`` (a role ARN) in ``account``."""
    identity = _results(identity_policies, request, None, None)
    if PermissionResult.DENIED in identity:
        return Decision(False, "explicitly denied by an identity policy")
    key_policies = [p for p in resource_policies if p.kind == "kms"]
    others = [p for p in resource_policies if p.kind != "kms"]
    for policy in resource_policies:
        if PermissionResult.DENIED in _results([policy.document], request, principal, account):
            return Decision(False, f"explicitly denied by the {policy.kind} policy")
    identity_allows = PermissionResult.PERMITTED in identity
    if key_policies:
        direct = _results([p.document for p in key_policies], request, principal, None)
        if PermissionResult.PERMITTED in direct:
            return Decision(True, "allowed by the key policy")
        via_account = _results([p.document for p in key_policies], request, "", account)
        if PermissionResult.PERMITTED in via_account and identity_allows:
            return Decision(True, "allowed by an identity policy (the key policy trusts the account)")
        return Decision(False, "the key policy does not allow it" if identity_allows
                        else "no policy allows it (implicit deny)")
    if identity_allows:
        return Decision(True, "allowed by an identity policy")
    if PermissionResult.PERMITTED in _results([p.document for p in others], request, principal, None):
        return Decision(True, "allowed by the resource policy")
    return Decision(False, "no policy allows it (implicit deny)")
