"""Promotion: move the serving stack to the new model, then record what serves.

In real-time mode the SageMaker endpoint belongs to the serving CloudFormation stack, whose
``ModelDataUrl`` parameter names the model artifact. Promotion is an ``UpdateStack`` with
``UsePreviousTemplate`` and the new parameter value, so CloudFormation stays the endpoint's only
owner (no drift for the next ``cdk deploy``, which keeps the parameter's previous value) and the
endpoint's blue/green deployment with alarm-based rollback does the rollout. The update takes
minutes, so the state machine starts it (``action: start``) and polls (``action: check``).

In batch mode there is no endpoint: the batch tables are already loaded, and promotion only
records the model as serving. Either way ``models/serving.json`` is written last, only once the
model really serves, and the next evaluation gate compares against it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any, Optional

from botocore.exceptions import ClientError

from recsys_lambdas.pipeline import artifacts

MODEL_DATA_PARAMETER = "ModelDataUrl"  # the serving stack's parameters (recsys_infra.serving)
MODEL_VERSION_PARAMETER = "ModelVersion"
ENV_SERVING_STACK = "SERVING_STACK_NAME"  # empty in batch mode
ENV_CFN_ROLE_ARN = "SERVING_DEPLOY_ROLE_ARN"
ENV_ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET"
SUCCEEDED, IN_PROGRESS, FAILED = "succeeded", "in_progress", "failed"


class PromotionError(RuntimeError):
    """The serving stack cannot be updated now; the message says why."""


def _now_iso(now: Optional[dt.datetime]) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _candidate_url(candidate: Mapping[str, Any]) -> str:
    url = candidate.get("modelDataUrl") if isinstance(candidate, Mapping) else None
    if not url:
        raise ValueError("candidate needs modelDataUrl (the gate's output)")
    artifacts.split_s3_uri(str(url))
    return str(url)


def record_serving(
    s3: Any, bucket: str, candidate: Mapping[str, Any], mode: str, now: Optional[dt.datetime] = None
) -> dict[str, Any]:
    """Write ``models/serving.json`` for ``candidate`` and return the record."""
    record = {
        "modelDataUrl": candidate.get("modelDataUrl"),
        "outputDataUrl": candidate.get("outputDataUrl"),
        "modelVersion": candidate.get("modelVersion"),
        "manifest": candidate.get("manifest", {}),
        "servingMode": mode,
        "promotedAt": _now_iso(now),
    }
    artifacts.write_serving_record(s3, bucket, record)
    return record


def _describe(cfn: Any, stack_name: str) -> dict[str, Any]:
    try:
        return cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        raise PromotionError(f"serving stack {stack_name!r}: {exc}") from None


def _parameter(stack: Mapping[str, Any], key: str) -> Optional[str]:
    for param in stack.get("Parameters", []):
        if param.get("ParameterKey") == key:
            return param.get("ParameterValue")
    return None


def update_parameters(
    stack: Mapping[str, Any], model_data_url: str, model_version: str
) -> list[dict[str, Any]]:
    """The ``Parameters`` of the UpdateStack call: the model ones set, every other one kept.

    Raises:
        PromotionError: The stack has no ``ModelDataUrl`` parameter (not a serving stack).
    """
    keys = [p["ParameterKey"] for p in stack.get("Parameters", [])]
    if MODEL_DATA_PARAMETER not in keys:
        raise PromotionError(
            f"stack {stack.get('StackName')!r} has no {MODEL_DATA_PARAMETER} parameter; is it "
            "the serving stack?"
        )
    out: list[dict[str, Any]] = []
    for key in keys:
        if key == MODEL_DATA_PARAMETER:
            out.append({"ParameterKey": key, "ParameterValue": model_data_url})
        elif key == MODEL_VERSION_PARAMETER:
            out.append({"ParameterKey": key, "ParameterValue": model_version or "unversioned"})
        else:
            out.append({"ParameterKey": key, "UsePreviousValue": True})
    return out


def start(
    cfn: Any,
    s3: Any,
    *,
    stack_name: str,
    bucket: str,
    candidate: Mapping[str, Any],
    role_arn: str = "",
    now: Optional[dt.datetime] = None,
) -> dict[str, Any]:
    """Start promoting ``candidate``.

    Args:
        cfn: A boto3 CloudFormation client (unused in batch mode).
        s3: A boto3 S3 client.
        stack_name: The serving stack; "" in batch mode (record only).
        bucket: The artifacts bucket (``models/serving.json``).
        candidate: The gate's ``candidate`` (``modelDataUrl``, ``modelVersion``, ``manifest``).
        role_arn: The CloudFormation service role for the update ("" = caller's credentials).

    Returns:
        ``{"status": "succeeded" | "in_progress", ...}``.

    Raises:
        PromotionError: The stack is busy with another operation or is not a serving stack.
    """
    url = _candidate_url(candidate)
    if not stack_name:
        record = record_serving(s3, bucket, candidate, "batch", now)
        return {"status": SUCCEEDED, "mode": "batch", "serving": record}
    stack = _describe(cfn, stack_name)
    status = stack.get("StackStatus", "")
    if status.endswith("_IN_PROGRESS"):
        raise PromotionError(f"serving stack {stack_name} is busy ({status}); try again later")
    params = update_parameters(stack, url, str(candidate.get("modelVersion", "")))
    kwargs: dict[str, Any] = {
        "StackName": stack_name,
        "UsePreviousTemplate": True,
        "Parameters": params,
        # The serving stack holds the endpoint's execution role.
        "Capabilities": ["CAPABILITY_IAM"],
    }
    if role_arn:
        kwargs["RoleARN"] = role_arn
    try:
        cfn.update_stack(**kwargs)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "No updates are to be performed" in message:
            # Already serving this artifact (e.g. a re-run): nothing to roll out.
            record = record_serving(s3, bucket, candidate, "realtime", now)
            return {"status": SUCCEEDED, "mode": "realtime", "serving": record, "note": message}
        raise PromotionError(f"UpdateStack {stack_name}: {message or exc}") from None
    return {
        "status": IN_PROGRESS,
        "mode": "realtime",
        "stackName": stack_name,
        "candidate": dict(candidate),
    }


def check(
    cfn: Any,
    s3: Any,
    *,
    stack_name: str,
    bucket: str,
    candidate: Mapping[str, Any],
    now: Optional[dt.datetime] = None,
) -> dict[str, Any]:
    """Poll a started promotion.

    Returns:
        ``{"status": "succeeded"}`` once the stack update completed with the candidate's
        artifact (then ``models/serving.json`` is written), ``in_progress`` while CloudFormation
        works (blue/green bake time included), ``failed`` with the stack's reason otherwise
        (e.g. the endpoint rolled back on an alarm).
    """
    url = _candidate_url(candidate)
    stack = _describe(cfn, stack_name)
    status = stack.get("StackStatus", "")
    base = {
        "mode": "realtime",
        "stackName": stack_name,
        "candidate": dict(candidate),
        "stackStatus": status,
    }
    if status.endswith("_IN_PROGRESS"):
        return {**base, "status": IN_PROGRESS}
    serving_url = _parameter(stack, MODEL_DATA_PARAMETER)
    if status == "UPDATE_COMPLETE" and serving_url == url:
        record = record_serving(s3, bucket, candidate, "realtime", now)
        return {**base, "status": SUCCEEDED, "serving": record}
    reason = stack.get("StackStatusReason") or (
        f"the stack serves {serving_url!r}, not the candidate"
        if status == "UPDATE_COMPLETE"
        else status
    )
    return {**base, "status": FAILED, "reason": f"serving stack {stack_name} is {status}: {reason}"}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Step Functions task: ``{"action": "start" | "check", "candidate": {...}}``."""
    import boto3

    if not isinstance(event, Mapping) or event.get("action") not in ("start", "check"):
        raise ValueError("promote input needs action 'start' or 'check' and the gate's candidate")
    candidate = event.get("candidate") or {}
    stack_name = os.environ.get(ENV_SERVING_STACK, "")
    bucket = os.environ[ENV_ARTIFACTS_BUCKET]
    s3 = boto3.client("s3")
    cfn = boto3.client("cloudformation") if stack_name else None
    if event["action"] == "start":
        return start(
            cfn,
            s3,
            stack_name=stack_name,
            bucket=bucket,
            candidate=candidate,
            role_arn=os.environ.get(ENV_CFN_ROLE_ARN, ""),
        )
    if not stack_name:
        raise ValueError("action 'check' needs a serving stack (real-time mode)")
    return check(cfn, s3, stack_name=stack_name, bucket=bucket, candidate=candidate)
