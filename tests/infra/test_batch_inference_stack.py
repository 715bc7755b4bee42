"""The ``<prefix>-batch-inference`` state machine: its tasks' parameters, checked against the
container's contract and against SageMaker's API (moto)."""

from __future__ import annotations

import json
from typing import Any, Dict

import boto3
import pytest
from moto import mock_aws
from recsys import batch_inference as container_side
from recsys_infra import batch_inference as infra

REGION = "us-east-1"


def _definition(synth, cfg) -> Dict[str, Any]:
    """The batch inference state machine's definition, with the template's tokens resolved for
    account 123456789012."""
    template = synth.templates[cfg.stack_name("training")]
    (resource,) = [r for r in template["Resources"].values()
                   if r["Type"] == "AWS::StepFunctions::StateMachine"
                   and r["Properties"].get("StateMachineName") == f"{cfg.prefix}-batch-inference"]
    parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
    refs = {"AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::Region": REGION}

    def text(part):
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return refs[part["Ref"]]
        if "Fn::GetAtt" in part:
            return f"arn:aws:iam::123456789012:role/{part['Fn::GetAtt'][0]}"
        raise AssertionError(f"unexpected token {part}")

    return json.loads("".join(text(p) for p in parts))


@pytest.fixture(scope="module")
def definitions(synth):
    return {"realtime": _definition(synth, synth.realtime_cfg), "batch": _definition(synth, synth.batch_cfg)}


def test_the_infra_and_the_container_agree_on_jobs_and_environment():
    assert infra.JOBS == container_side.JOBS
    assert (infra.ENV_JOB, infra.ENV_NUM_RESULTS) == (container_side.ENV_JOB, container_side.ENV_NUM_RESULTS)
    assert (infra.DEFAULT_NUM_RESULTS, infra.MAX_NUM_RESULTS) == (
        container_side.DEFAULT_NUM_RESULTS, container_side.MAX_NUM_RESULTS)


@pytest.mark.parametrize("env", ["realtime", "batch"])
def test_transform_reads_lines_and_assembles_personalizes_out_files(synth, definitions, env):
    cfg = synth.realtime_cfg if env == "realtime" else synth.batch_cfg
    states = definitions[env]["States"]
    transform = states["Transform"]
    assert transform["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
    p = transform["Parameters"]
    assert p["TransformInput"] == {
        "ContentType": "application/jsonlines", "SplitType": "Line",
        "DataSource": {"S3DataSource": {"S3Uri.$": "$.inputUri", "S3DataType": "S3Prefix"}}}
    assert p["TransformOutput"]["S3OutputPath.$"] == "$.outputUri"
    assert p["TransformOutput"]["AssembleWith"] == "Line"
    assert p["TransformOutput"]["Accept"] == "application/jsonlines"
    assert p["BatchStrategy"] == "MultiRecord"
    assert p["MaxPayloadInMB"] == 1
    assert p["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1}
    assert p["Environment"] == {"RECSYS_BATCH_JOB.$": "$.job",
                                "RECSYS_BATCH_NUM_RESULTS.$": "States.Format('{}', $.numResults)"}
    # the model the transform uses is the one the run creates from the serving record, and deletes
    create = states["CreateBatchModel"]
    assert create["Resource"].endswith(":aws-sdk:sagemaker:createModel")
    assert p["ModelName.$"] == create["Parameters"]["ModelName.$"] == states["DeleteBatchModel"]["Parameters"]["ModelName.$"]
    assert create["Parameters"]["EnableNetworkIsolation"] is True
    assert create["Parameters"]["PrimaryContainer"]["ModelDataUrl.$"] == "$.serving.record.modelDataUrl"
    assert create["Parameters"]["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    read = states["ReadServingRecord"]
    assert read["Parameters"]["Key"] == "models/serving.json"
    assert transform["Catch"][0]["Next"] == "DeleteBatchModelAfterFailure"
    assert states["DeleteBatchModel"]["Next"] == "Done"
    # encryption: kms (the realtime fixture) names the data key for the output and the volume
    kms = cfg.kms
    assert ("KmsKeyId" in p["TransformOutput"]) is kms
    assert ("VolumeKmsKeyId" in p["TransformResources"]) is kms
    if kms:
        assert p["TransformOutput"]["KmsKeyId"].endswith(f":alias/{cfg.data_key_alias.removeprefix('alias/')}")


def test_the_input_check_admits_only_the_batch_area_and_valid_jobs(synth, definitions):
    cfg = synth.realtime_cfg
    choice = definitions["realtime"]["States"]["ValidInput?"]
    (rule,) = choice["Choices"]
    patterns = {c["Variable"]: c["StringMatches"] for c in rule["And"] if "StringMatches" in c}
    area = f"s3://{cfg.prefix}-artifacts-123456789012-{REGION}/batch-inference/*"
    assert patterns == {"$.inputUri": area, "$.outputUri": area}
    (jobs,) = [c["Or"] for c in rule["And"] if "Or" in c]
    assert sorted(c["StringEquals"] for c in jobs) == sorted(infra.JOBS)
    bounds = {k: c[k] for c in rule["And"] for k in ("NumericGreaterThanEquals", "NumericLessThanEquals") if k in c}
    assert bounds == {"NumericGreaterThanEquals": 1, "NumericLessThanEquals": 500}
    assert choice["Default"] == "InvalidInput"
    assert definitions["realtime"]["States"]["Defaults"]["Parameters"]["numResults"] == 25


def _bind(value: Any, values: Dict[str, Any]) -> Any:
    """The task's parameters as Step Functions sends them for ``values`` (path -> value)."""
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if key.endswith(".$"):
                if v.startswith("States.Format("):
                    template, path = v[len("States.Format('"):-1].split("', ")
                    out[key[:-2]] = template.replace("{}", str(values[path]))
                else:
                    out[key[:-2]] = values[v]
            else:
                out[key] = _bind(v, values)
        return out
    return value


@mock_aws
def test_sagemaker_accepts_the_tasks_parameters(definitions):
    """botocore validates the parameters against SageMaker's API model; moto stores the job."""
    states = definitions["batch"]["States"]
    values = {"$.runId": "00000000-0000-0000-0000-000000000000", "$.job": "ranking", "$.numResults": 10,
              "$.inputUri": "s3://bucket/batch-inference/in/", "$.outputUri": "s3://bucket/batch-inference/out/",
              "$.serving.record.modelDataUrl": "s3://bucket/models/job/output/model.tar.gz"}
    sm = boto3.client("sagemaker", region_name=REGION)
    model = _bind(states["CreateBatchModel"]["Parameters"], values)
    sm.create_model(**model)
    job = _bind(states["Transform"]["Parameters"], values)
    sm.create_transform_job(**job)
    described = sm.describe_transform_job(TransformJobName=job["TransformJobName"])
    assert described["ModelName"] == model["ModelName"] and model["ModelName"].endswith("-batch-" + values["$.runId"])
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["TransformOutput"]["S3OutputPath"] == values["$.outputUri"]
    assert described["Environment"] == {"RECSYS_BATCH_JOB": "ranking", "RECSYS_BATCH_NUM_RESULTS": "10"}
    assert len(job["TransformJobName"]) <= 63
    sm.delete_model(ModelName=model["ModelName"])
