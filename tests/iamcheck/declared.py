"""Requests that AWS services make on a component's behalf, declared from the synthesized
templates (no emulator makes them): what Step Functions does for each task state, what each
training job reads and writes, what the endpoint's model reads, what CloudFormation does with the
serving deploy role during a promotion (including Application Auto Scaling's prerequisites for
registering the endpoint as a scalable target), and the KMS calls behind customer-managed keys.

Each entry is ``(principal role, request)``; :mod:`tests.infra.test_iam_policies` evaluates them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from iamcheck.actions import requests_for
from iamcheck.evaluator import Request
from iamcheck.templates import Environment, Role

RUN_ID = "00000000-run"
SECURE = {"aws:SecureTransport": "true"}


@dataclasses.dataclass(frozen=True)
class Declared:
    """A request some AWS service makes with ``role``'s credentials."""

    role: Role
    request: Request


def _split(uri: str) -> Tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _req(action: str, resource: str, why: str, **context: Any) -> Request:
    return Request(action, resource, {**SECURE, **context}, why)


class _States:
    """Values a task's ``.$`` parameters take, from the definition (Pass states' Parameters, the
    training tasks' ResultSelector)."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.values: Dict[str, Any] = {}
        for state in definition["States"].values():
            path = state.get("ResultPath")
            if state["Type"] == "Pass" and path and "Parameters" in state:
                for key, value in state["Parameters"].items():
                    if not key.endswith(".$"):
                        self.values[f"{path}.{key}"] = value
            if state["Type"] == "Choice":
                # an input the Choice admits only under a prefix ("s3://bucket/area/*"): an example
                for rule in state["Choices"]:
                    for condition in [rule, *rule.get("And", [])]:
                        pattern = condition.get("StringMatches")
                        if isinstance(pattern, str) and pattern.endswith("/*"):
                            self.values[condition["Variable"]] = pattern[:-1] + "example/"

    def training_outputs(self, path: str, job: str, output_uri: str) -> None:
        self.values[f"{path}.modelDataUrl"] = f"{output_uri}{job}/output/model.tar.gz"
        self.values[f"{path}.jobName"] = job

    def value(self, params: Mapping[str, Any], key: str) -> Any:
        if key in params:
            return params[key]
        path = params[key + ".$"]
        if path.startswith("States.Format("):
            template = re.match(r"States\.Format\('([^']*)'", path).group(1)
            return template.replace("{}", RUN_ID)
        if path not in self.values:
            raise KeyError(f"cannot resolve {path} from the definition")
        return self.values[path]


def state_machine_requests(env: Environment) -> Iterator[Declared]:
    """What Step Functions and the training jobs do for each task state."""
    for _, _, definition, sfn_role in env.state_machines():
        states = _States(definition)
        for name, state in definition["States"].items():
            if state["Type"] != "Task":
                continue
            resource = state["Resource"]
            params = state.get("Parameters", {})
            why = f"state {name!r}"
            if resource.endswith(":states:::sagemaker:createTrainingJob.sync"):
                yield from _training_job(env, sfn_role, states, name, state, params)
            elif resource.endswith(":states:::sagemaker:createTransformJob.sync"):
                yield from _transform_job(env, sfn_role, states, definition, name, params)
            elif ":states:::aws-sdk:sagemaker:" in resource:
                yield from _sagemaker_model(env, sfn_role, states, name, resource, params)
            elif ":lambda:" in resource and ":function:" in resource:
                yield Declared(sfn_role, _req("lambda:InvokeFunction", resource, why))
            elif resource.endswith(":states:::lambda:invoke"):
                yield Declared(sfn_role, _req("lambda:InvokeFunction", params["FunctionName"], why))
            elif ":states:::aws-sdk:" in resource:
                # an SDK integration: the call itself, made with the state machine's role
                service, _, action = resource.split(":states:::aws-sdk:", 1)[1].partition(":")
                operation = action[0].upper() + action[1:]
                for request in requests_for(service, operation, params, "", lambda kind, n: n,
                                            env.region, env.account, f"{why} ({service}:{action})"):
                    yield Declared(sfn_role, request)
            else:
                raise KeyError(f"{why}: no IAM model for task resource {resource}")


def _training_job(env: Environment, sfn_role: Role, states: _States, name: str,
                  state: Mapping[str, Any], params: Mapping[str, Any]) -> Iterator[Declared]:
    why = f"state {name!r} (createTrainingJob.sync)"
    job = states.value(params, "TrainingJobName")
    job_arn = f"arn:aws:sagemaker:{env.region}:{env.account}:training-job/{job.lower()}"
    for action in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"):
        yield Declared(sfn_role, _req(f"sagemaker:{action}", job_arn, why))
    rule = f"arn:aws:events:{env.region}:{env.account}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
    for action in ("PutTargets", "PutRule", "DescribeRule"):
        yield Declared(sfn_role, _req(f"events:{action}", rule, f"{why}: .sync waits on this rule"))
    role_arn = params["RoleArn"]
    yield Declared(sfn_role, _req("iam:PassRole", role_arn, why,
                                  **{"iam:PassedToService": "sagemaker.amazonaws.com"}))
    job_role = env.role_by_arn(role_arn)
    for channel in params.get("InputDataConfig", []):
        source = channel["DataSource"]["S3DataSource"]
        uri = states.value(source, "S3Uri")
        bucket, key = _split(uri)
        cwhy = f"training job of {name!r}: channel {channel['ChannelName']!r} ({uri})"
        if source.get("S3DataType", "S3Prefix") == "S3Prefix":
            yield Declared(job_role, _req("s3:ListBucket", f"arn:aws:s3:::{bucket}", cwhy,
                                          **{"s3:prefix": key}))
            obj = key + "part-00000" if key.endswith("/") else key
            yield Declared(job_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{obj}", cwhy))
            yield from kms_for_object(env, job_role, bucket, "read", cwhy)
        else:
            yield Declared(job_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", cwhy))
    output = states.value(params["OutputDataConfig"], "S3OutputPath")
    bucket, key = _split(output)
    owhy = f"training job of {name!r}: output {output}"
    for member in ("model.tar.gz", "output.tar.gz"):
        yield Declared(job_role, _req("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}{job}/output/{member}", owhy))
    yield from kms_for_object(env, job_role, bucket, "write", owhy)
    # Keys named in the job: the output is encrypted with KmsKeyId (S3 uses it for the job's
    # role), the ML storage volume with VolumeKmsKeyId (SageMaker creates a grant as the role).
    output_key = params["OutputDataConfig"].get("KmsKeyId")
    if output_key:
        arn = key_arn(env, output_key)
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            yield Declared(job_role, kms_request(env, action, arn, "s3", f"{owhy} (KmsKeyId)"))
    volume_key = params.get("ResourceConfig", {}).get("VolumeKmsKeyId")
    if volume_key:
        arn = key_arn(env, volume_key)
        vwhy = f"training job of {name!r}: ML storage volume (VolumeKmsKeyId)"
        grant = kms_request(env, "kms:CreateGrant", arn, "sagemaker", vwhy)
        yield Declared(job_role, Request(grant.action, grant.resource,
                                         {**grant.context, "kms:GrantIsForAWSResource": "true"}, vwhy))
    submit = json.loads(params.get("HyperParameters", {}).get("sagemaker_submit_directory", '""'))
    if submit.startswith("s3://"):
        bucket, key = _split(submit)
        yield Declared(job_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}",
                                      f"training job of {name!r}: source bundle"))
    path = state.get("ResultPath")
    if path:
        states.training_outputs(path, job, output)


def _sagemaker_model(env: Environment, sfn_role: Role, states: _States, name: str, resource: str,
                     params: Mapping[str, Any]) -> Iterator[Declared]:
    """An SDK createModel / deleteModel state (batch inference's per-run model)."""
    action = resource.split(":states:::aws-sdk:sagemaker:", 1)[1]
    why = f"state {name!r} (sagemaker:{action})"
    model = states.value(params, "ModelName")
    arn = f"arn:aws:sagemaker:{env.region}:{env.account}:model/{model.lower()}"
    if action not in ("createModel", "deleteModel"):
        raise KeyError(f"{why}: no IAM model for sagemaker:{action}")
    yield Declared(sfn_role, _req(f"sagemaker:{action[0].upper()}{action[1:]}", arn, why))
    if action == "createModel":
        yield Declared(sfn_role, _req("iam:PassRole", params["ExecutionRoleArn"], why,
                                      **{"iam:PassedToService": "sagemaker.amazonaws.com"}))


def _transform_job(env: Environment, sfn_role: Role, states: _States, definition: Mapping[str, Any],
                   name: str, params: Mapping[str, Any]) -> Iterator[Declared]:
    """A createTransformJob.sync state: Step Functions' calls, and the reads and writes the job
    makes with its model's execution role (the createModel state's ExecutionRoleArn)."""
    why = f"state {name!r} (createTransformJob.sync)"
    job = states.value(params, "TransformJobName")
    job_arn = f"arn:aws:sagemaker:{env.region}:{env.account}:transform-job/{job.lower()}"
    for action in ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob"):
        yield Declared(sfn_role, _req(f"sagemaker:{action}", job_arn, why))
    rule = f"arn:aws:events:{env.region}:{env.account}:rule/StepFunctionsGetEventsForSageMakerTransformJobsRule"
    for action in ("PutTargets", "PutRule", "DescribeRule"):
        yield Declared(sfn_role, _req(f"events:{action}", rule, f"{why}: .sync waits on this rule"))
    model = states.value(params, "ModelName")
    creates = [s for s in definition["States"].values()
               if s.get("Resource", "").endswith(":aws-sdk:sagemaker:createModel")
               and states.value(s["Parameters"], "ModelName") == model]
    assert len(creates) == 1, f"{why}: no createModel state names the model {model}"
    model_role = env.role_by_arn(creates[0]["Parameters"]["ExecutionRoleArn"])
    url = model_data_url(env)
    assert url, f"{why}: no training job makes a model.tar.gz"
    bucket, key = _split(url)
    mwhy = f"transform job of {name!r}: the model {url}"
    yield Declared(model_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", mwhy))
    yield from kms_for_object(env, model_role, bucket, "read", mwhy)
    source = params["TransformInput"]["DataSource"]["S3DataSource"]
    uri = states.value(source, "S3Uri")
    bucket, key = _split(uri)
    iwhy = f"transform job of {name!r}: input {uri}"
    yield Declared(model_role, _req("s3:ListBucket", f"arn:aws:s3:::{bucket}", iwhy, **{"s3:prefix": key}))
    yield Declared(model_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}users.jsonl", iwhy))
    yield from kms_for_object(env, model_role, bucket, "read", iwhy)
    output = states.value(params["TransformOutput"], "S3OutputPath")
    bucket, key = _split(output)
    owhy = f"transform job of {name!r}: output {output}"
    yield Declared(model_role, _req("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}users.jsonl.out", owhy))
    yield from kms_for_object(env, model_role, bucket, "write", owhy)
    output_key = params["TransformOutput"].get("KmsKeyId")
    if output_key:
        arn = key_arn(env, output_key)
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            yield Declared(model_role, kms_request(env, action, arn, "s3", f"{owhy} (KmsKeyId)"))
    volume_key = params.get("TransformResources", {}).get("VolumeKmsKeyId")
    if volume_key:
        arn = key_arn(env, volume_key)
        vwhy = f"transform job of {name!r}: ML storage volume (VolumeKmsKeyId)"
        grant = kms_request(env, "kms:CreateGrant", arn, "sagemaker", vwhy)
        yield Declared(model_role, Request(grant.action, grant.resource,
                                           {**grant.context, "kms:GrantIsForAWSResource": "true"}, vwhy))


def model_data_url(env: Environment) -> Optional[str]:
    """The artifact a promotion passes as ModelDataUrl: the ranker job's model.tar.gz."""
    for _, _, definition, _ in env.state_machines():
        states = _States(definition)
        url = None
        for state in definition["States"].values():
            params = state.get("Parameters", {})
            if state.get("Resource", "").endswith("createTrainingJob.sync"):
                job = states.value(params, "TrainingJobName")
                output = states.value(params["OutputDataConfig"], "S3OutputPath")
                states.training_outputs(state["ResultPath"], job, output)
                url = f"{output}{job}/output/model.tar.gz"
        if url:  # the training pipeline (the batch inference state machine trains nothing)
            return url
    return None


# --- the serving stack: the endpoint and its deployment ----------------------------------------


def serving_requests(env: Environment, deploy_role: Role) -> Iterator[Declared]:
    """What CloudFormation does as ``deploy_role`` when a promotion updates the serving stack, and
    what the endpoint's execution role reads."""
    for stack, logical_id, resource in env.resources():
        if stack not in env.parameters:
            continue  # only the serving stack is given a model artifact
        props = env.resolve(resource.get("Properties", {}), stack)
        type_ = resource["Type"]
        name = env.physical_name(stack, logical_id)
        sm = f"arn:aws:sagemaker:{env.region}:{env.account}"
        why = f"CloudFormation {type_} {logical_id}"
        tagged = bool(props.get("Tags"))
        if type_ == "AWS::SageMaker::Model":
            arn = f"{sm}:model/{name.lower()}"
            for action in ("CreateModel", "DescribeModel", "DeleteModel"):
                yield Declared(deploy_role, _req(f"sagemaker:{action}", arn, why))
            if tagged:
                yield Declared(deploy_role, _req("sagemaker:AddTags", arn, why))
            yield Declared(deploy_role, _req("iam:PassRole", props["ExecutionRoleArn"], why,
                                             **{"iam:PassedToService": "sagemaker.amazonaws.com"}))
            model_role = env.role_by_arn(props["ExecutionRoleArn"])
            container = props.get("PrimaryContainer", {})
            for uri in (container.get("ModelDataUrl"),
                        container.get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY")):
                if uri and uri.startswith("s3://"):
                    bucket, key = _split(uri)
                    mwhy = f"endpoint model {logical_id}: reads {uri}"
                    yield Declared(model_role, _req("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", mwhy))
                    yield from kms_for_object(env, model_role, bucket, "read", mwhy)
        elif type_ == "AWS::SageMaker::EndpointConfig":
            arn = f"{sm}:endpoint-config/{name.lower()}"
            for action in ("CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig"):
                yield Declared(deploy_role, _req(f"sagemaker:{action}", arn, why))
            if tagged:
                yield Declared(deploy_role, _req("sagemaker:AddTags", arn, why))
        elif type_ == "AWS::SageMaker::Endpoint":
            arn = f"{sm}:endpoint/{name.lower()}"
            for action in ("CreateEndpoint", "UpdateEndpoint", "DescribeEndpoint", "DeleteEndpoint"):
                yield Declared(deploy_role, _req(f"sagemaker:{action}", arn, why))
            if tagged:
                yield Declared(deploy_role, _req("sagemaker:AddTags", arn, why))
        elif type_ == "AWS::ApplicationAutoScaling::ScalableTarget":
            yield from _scalable_target(env, deploy_role, props, why)
        elif type_ == "AWS::ApplicationAutoScaling::ScalingPolicy":
            target_ref = resource["Properties"]["ScalingTargetId"]["Ref"]
            target = env.resolve(env.resource(stack, target_ref).get("Properties", {}), stack)
            context = _target_context(target)
            yield Declared(deploy_role, _req("application-autoscaling:DescribeScalingPolicies", "*", why))
            for action in ("PutScalingPolicy", "DeleteScalingPolicy"):
                yield Declared(deploy_role, _req(f"application-autoscaling:{action}",
                                                 _scalable_target_arn(env), why, **context))


def _scalable_target_arn(env: Environment) -> str:
    # Application Auto Scaling names a scalable target by an id it generates (a hex string).
    return (f"arn:aws:application-autoscaling:{env.region}:{env.account}:"
            "scalable-target/0a1b2c3d4e5f60718293a4b5c6d7e8f9")


def _target_context(props: Mapping[str, Any]) -> dict:
    """The condition keys Application Auto Scaling sets on a scalable target's write actions."""
    return {
        "application-autoscaling:service-namespace": props["ServiceNamespace"],
        "application-autoscaling:scalable-dimension": props["ScalableDimension"],
    }


def _scalable_target(env: Environment, role: Role, props: Mapping[str, Any],
                     why: str) -> Iterator[Declared]:
    yield Declared(role, _req("application-autoscaling:DescribeScalableTargets", "*", why))
    for action in ("RegisterScalableTarget", "DeregisterScalableTarget"):
        yield Declared(role, _req(f"application-autoscaling:{action}", _scalable_target_arn(env),
                                  why, **_target_context(props)))
    if props.get("ServiceNamespace") != "sagemaker":
        return
    # Application Auto Scaling's documented prerequisites: the caller of RegisterScalableTarget
    # must itself be allowed to describe and resize the variant, and to manage the CloudWatch
    # alarms of target tracking; it creates the service-linked role on first use.
    endpoint = props["ResourceId"].split("/")[1]
    arn = f"arn:aws:sagemaker:{env.region}:{env.account}:endpoint/{endpoint.lower()}"
    pwhy = f"{why}: Application Auto Scaling prerequisite"
    for action in ("DescribeEndpoint", "UpdateEndpointWeightsAndCapacities"):
        yield Declared(role, _req(f"sagemaker:{action}", arn, pwhy))
    alarm = (f"arn:aws:cloudwatch:{env.region}:{env.account}:alarm:TargetTracking-"
             f"{props['ResourceId']}-AlarmHigh-00000000")
    for action in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms"):
        yield Declared(role, _req(f"cloudwatch:{action}", alarm, pwhy))
    slr = (f"arn:aws:iam::{env.account}:role/aws-service-role/sagemaker.application-autoscaling"
           ".amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")
    yield Declared(role, _req("iam:CreateServiceLinkedRole", slr, pwhy,
                              **{"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}))


# --- KMS ------------------------------------------------------------------------------------


def bucket_key(env: Environment, bucket: str) -> Optional[str]:
    """The customer-managed KMS key ARN a bucket encrypts with by default, if any."""
    for stack, logical_id, resource in env.resources("AWS::S3::Bucket"):
        if env.physical_name(stack, logical_id) != bucket:
            continue
        props = env.resolve(resource.get("Properties", {}), stack)
        for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
            default = rule.get("ServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") and default.get("KMSMasterKeyID"):
                return key_arn(env, default["KMSMasterKeyID"])
    return None


def table_key(env: Environment, table: str) -> Optional[str]:
    """The customer-managed KMS key ARN a DynamoDB table encrypts with, if any."""
    for stack, logical_id, resource in env.resources("AWS::DynamoDB::Table"):
        if env.physical_name(stack, logical_id) != table:
            continue
        sse = env.resolve(resource.get("Properties", {}), stack).get("SSESpecification", {})
        if sse.get("SSEEnabled") and sse.get("KMSMasterKeyId"):
            return key_arn(env, sse["KMSMasterKeyId"])
    return None


def key_arn(env: Environment, ref: str) -> str:
    """A key id, key ARN, alias name or alias ARN (as a template resolves it) -> the key ARN."""
    if "alias/" in ref:
        alias = "alias/" + ref.split("alias/", 1)[1]
        for stack, _, resource in env.resources("AWS::KMS::Alias"):
            props = env.resolve(resource["Properties"], stack)
            if props["AliasName"] == alias:
                return key_arn(env, props["TargetKeyId"])
        raise KeyError(f"[{env.name}] no AWS::KMS::Alias {alias} in the templates")
    if ref.startswith("arn:"):
        return ref
    return f"arn:aws:kms:{env.region}:{env.account}:key/{ref}"


def key_aliases(env: Environment, arn: str) -> List[str]:
    """The alias names of a key (the kms:ResourceAliases condition key)."""
    out = []
    for stack, _, resource in env.resources("AWS::KMS::Alias"):
        props = env.resolve(resource["Properties"], stack)
        if key_arn(env, props["TargetKeyId"]) == arn:
            out.append(props["AliasName"])
    return out


def kms_request(env: Environment, action: str, key: str, via: str, why: str) -> Request:
    """A KMS request a service (``via``: s3, dynamodb...) makes for its caller."""
    context: Dict[str, Any] = {"kms:ViaService": f"{via}.{env.region}.amazonaws.com",
                               "kms:CallerAccount": env.account}
    aliases = key_aliases(env, key)
    if aliases:
        context["kms:ResourceAliases"] = aliases
    return Request(action, key, context, why)


def key_policies(env: Environment, arn: str) -> List[Dict[str, Any]]:
    """The key policy of the template's key with this ARN ([] if the key is not in the templates)."""
    for stack, logical_id, resource in env.resources("AWS::KMS::Key"):
        if env.arn_of(stack, logical_id) == arn:
            return [env.resolve(resource["Properties"]["KeyPolicy"], stack)]
    return []


def kms_for_object(env: Environment, role: Role, bucket: str, mode: str,
                   why: str) -> Iterator[Declared]:
    """SSE-KMS: reading an object decrypts its data key, writing one generates a data key."""
    key = bucket_key(env, bucket)
    if key is None:
        return
    yield Declared(role, kms_request(env, "kms:Decrypt", key, "s3", f"{why} (SSE-KMS)"))
    if mode == "write":
        yield Declared(role, kms_request(env, "kms:GenerateDataKey", key, "s3", f"{why} (SSE-KMS)"))


def kms_requests(env: Environment, request: Request) -> List[Request]:
    """The KMS requests a data request implies (S3 objects, DynamoDB tables with a CMK)."""
    out: List[Request] = []
    action, resource = request.action, request.resource
    key = None
    write = False
    via = action.split(":", 1)[0]
    if action in ("s3:GetObject", "s3:PutObject"):
        key = bucket_key(env, resource.split(":::", 1)[1].split("/", 1)[0])
        write = action == "s3:PutObject"
    elif via == "dynamodb" and ":table/" in resource:
        key = table_key(env, resource.split(":table/", 1)[1].split("/", 1)[0])
        write = action.split(":", 1)[1] in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
    if key:
        why = f"{request.why}: {resource} is encrypted with a customer-managed key"
        out.append(kms_request(env, "kms:Decrypt", key, via, why))
        if write:
            out.append(kms_request(env, "kms:GenerateDataKey", key, via, why))
    return out
