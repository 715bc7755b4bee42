"""Evaluate requests for a role of an environment, with the resource policies that apply."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Tuple

from iamcheck import declared
from iamcheck.evaluator import Decision, Request, ResourcePolicy, decide
from iamcheck.templates import Environment, Role


def bucket_policies(env: Environment, bucket: str) -> List[Dict[str, Any]]:
    """The bucket policy documents of ``bucket`` (resolved)."""
    out = []
    for stack, _, resource in env.resources("AWS::S3::BucketPolicy"):
        props = env.resolve(resource["Properties"], stack)
        if props["Bucket"] == bucket:
            out.append(props["PolicyDocument"])
    return out


def resource_policies(env: Environment, request: Request) -> List[ResourcePolicy]:
    """The resource-based policies AWS also evaluates for ``request``."""
    if request.resource.startswith("arn:aws:s3:::"):
        bucket = request.resource.split(":::", 1)[1].split("/", 1)[0]
        return [ResourcePolicy(doc, "bucket") for doc in bucket_policies(env, bucket)]
    if request.action.startswith("kms:"):
        policies = declared.key_policies(env, request.resource)
        if not policies:
            raise LookupError(f"[{env.name}] {request.resource}: no AWS::KMS::Key in the templates")
        return [ResourcePolicy(doc, "kms") for doc in policies]
    return []


def evaluate(env: Environment, role: Role, request: Request) -> Decision:
    """Decide ``request`` for ``role`` with its policies and the resource's policies."""
    return decide(request, role.policies, resource_policies(env, request), principal=role.arn,
                  account=env.account)


def with_kms(env: Environment, requests: Iterable[Request]) -> List[Request]:
    """``requests`` plus the KMS requests each implies (customer-managed keys)."""
    out = []
    for request in requests:
        out.append(request)
        out.extend(declared.kms_requests(env, request))
    return out


def denials(env: Environment, items: Iterable[Tuple[Role, Request]]) -> List[str]:
    """One line per denied request: environment, role, request, why it is made, reason."""
    seen = set()
    out = []
    for role, request in items:
        key = (role.arn, request.action, request.resource,
               tuple(sorted((k, str(v)) for k, v in request.context.items())))
        if key in seen:
            continue
        seen.add(key)
        decision = evaluate(env, role, request)
        if not decision.allowed:
            out.append(f"[{env.name}] {role.logical_id} may not {request} -- needed by "
                       f"{request.why}; {decision.reason}")
    return out


def fmt(lines: Sequence[str]) -> str:
    """The assertion message for denied requests."""
    return f"{len(lines)} request(s) denied:\n" + "\n".join(lines)
