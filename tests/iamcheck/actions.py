"""A recorded AWS call -> the IAM requests AWS authorizes for it (action, resource ARN, context).

Resource names in a recorded call are the tests' names; ``bind`` maps each to the deployed name
(through the environment variable that carried it, see :mod:`.recorder`). An operation with no
mapping here raises :class:`Unmapped`, so a new call in the code cannot go unchecked.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from iamcheck.evaluator import Request

Bind = Callable[[str, str], str]  # (kind, test name) -> deployed name


class Unmapped(KeyError):
    """No IAM mapping for a recorded operation."""


# DynamoDB item actions inside transactions and batches
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
# Responses S3 gives a missing object when the caller may list the bucket
NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
S3_OBJECT = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
             "PutObject": "s3:PutObject", "DeleteObject": "s3:DeleteObject",
             "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
             "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload"}
DDB_TABLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"}


def requests_for(service: str, operation: str, params: Dict[str, Any], error: str, bind: Bind,
                 region: str, account: str, why: str) -> List[Request]:
    """The requests for one call (``error`` is the service's error code, or "")."""
    arn = f"arn:aws:{{svc}}:{region}:{account}:{{res}}"

    def req(action: str, resource: str, **context: Any) -> Request:
        return Request(action, resource, {"aws:SecureTransport": "true", **context}, why)

    if service == "s3":
        bucket = bind("bucket", params["Bucket"])
        if operation in S3_OBJECT:
            key = params["Key"]
            action = S3_OBJECT[operation]
            if params.get("VersionId") and action in ("s3:GetObject", "s3:DeleteObject"):
                action += "Version"  # a version's read or delete is its own action
            out = [req(action, f"arn:aws:s3:::{bucket}/{key}")]
            if error in NOT_FOUND:
                # S3 answers a missing key with 404 only to callers that may list the bucket;
                # everyone else gets 403 AccessDenied, which no "not found" branch catches.
                out.append(Request("s3:ListBucket", f"arn:aws:s3:::{bucket}",
                                   {"aws:SecureTransport": "true", "s3:prefix": key},
                                   f"{why}: answered {error}, which needs s3:ListBucket"))
            return out
        if operation in ("ListObjectsV2", "ListObjects"):
            context = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
            return [req("s3:ListBucket", f"arn:aws:s3:::{bucket}", **context)]
        if operation == "HeadBucket":
            return [req("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    if service == "dynamodb":
        def table(name: str) -> str:
            return arn.format(svc="dynamodb", res=f"table/{bind('table', name)}")

        if operation in DDB_TABLE:
            return [req(f"dynamodb:{operation}", table(params["TableName"]))]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [req(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in params["TransactItems"]:
                (kind, body), = item.items()
                out.append(req(f"dynamodb:{_TRANSACT[kind]}", table(body["TableName"])))
            return out
    if service == "firehose" and operation in ("PutRecord", "PutRecordBatch"):
        name = bind("stream", params["DeliveryStreamName"])
        return [req(f"firehose:{operation}", arn.format(svc="firehose", res=f"deliverystream/{name}"))]
    if service == "sagemaker-runtime" and operation == "InvokeEndpoint":
        name = bind("endpoint", params["EndpointName"]).lower()
        return [req("sagemaker:InvokeEndpoint", arn.format(svc="sagemaker", res=f"endpoint/{name}"))]
    if service == "cloudformation" and operation in ("DescribeStacks", "UpdateStack"):
        name = bind("stack", params["StackName"])
        stack_arn = arn.format(svc="cloudformation",
                               res=f"stack/{name}/00000000-0000-4000-8000-000000000000")
        if operation == "DescribeStacks":
            return [req("cloudformation:DescribeStacks", stack_arn)]
        role = bind("role", params["RoleARN"]) if params.get("RoleARN") else None
        context = {"cloudformation:RoleArn": role} if role else {}
        out = [req("cloudformation:UpdateStack", stack_arn, **context)]
        if role:
            out.append(req("iam:PassRole", role, **{"iam:PassedToService": "cloudformation.amazonaws.com"}))
        return out
    raise Unmapped(f"no IAM mapping for {service}.{operation}: add it to tests/iamcheck/actions.py")
