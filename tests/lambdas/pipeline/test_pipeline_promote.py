"""Promotion against moto CloudFormation and S3: the serving stack's ModelDataUrl parameter is
updated with UsePreviousTemplate, and models/serving.json records what serves."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from pipeline_support import BUCKET, DEPLOY_ROLE, REGION, STACK, manifest
from recsys_lambdas.pipeline import artifacts, gate, promote

# The serving stack's parameters as recsys_infra.serving declares them, plus CDK's bootstrap one;
# a wait-condition handle stands in for the endpoint resources (moto cannot create endpoints
# through CloudFormation).
TEMPLATE = {
    "Parameters": {
        "ModelDataUrl": {"Type": "String", "Default": ""},
        "ModelVersion": {"Type": "String", "Default": "none"},
        "Other": {"Type": "String", "Default": "keep-me"},
    },
    "Conditions": {"HasModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelDataUrl"}, ""]}]}},
    "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    "Outputs": {"Model": {"Value": {"Ref": "ModelDataUrl"}}},
}


def candidate(
    url: str = f"s3://{BUCKET}/models/job-9/output/model.tar.gz", version: str = "v9"
) -> dict:
    return {
        "modelDataUrl": url,
        "outputDataUrl": url.replace("model.tar.gz", "output.tar.gz"),
        "modelVersion": version,
        "manifest": manifest(0.3, version),
    }


@pytest.fixture
def serving_stack(pipeline_aws):
    cfn = pipeline_aws["cfn"]
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "Other", "ParameterValue": "custom"}],
    )
    return cfn


def params(cfn) -> dict:
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_promotion_updates_the_model_parameter_and_keeps_the_others(pipeline_aws, serving_stack):
    cfn, s3 = serving_stack, pipeline_aws["s3"]
    started = promote.start(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=candidate(), role_arn=DEPLOY_ROLE)
    assert started["status"] in (promote.IN_PROGRESS, promote.SUCCEEDED)
    assert params(cfn) == {
        "ModelDataUrl": candidate()["modelDataUrl"],
        "ModelVersion": "v9",
        "Other": "custom",  # UsePreviousValue: a promotion never resets the rest of the stack
    }
    # nothing is recorded as serving until the stack update has completed
    assert artifacts.read_serving_record(s3, BUCKET) is None
    checked = promote.check(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=candidate())
    assert checked["status"] == promote.SUCCEEDED
    record = artifacts.read_serving_record(s3, BUCKET)
    assert record["modelDataUrl"] == candidate()["modelDataUrl"]
    assert record["servingMode"] == "realtime"
    assert record["manifest"]["offline_metrics"]["two_stage"]["NDCG@10"] == 0.3


def test_the_next_gate_compares_against_the_promoted_model(pipeline_aws, serving_stack):
    cfn, s3 = serving_stack, pipeline_aws["s3"]
    promote.start(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=candidate(), role_arn=DEPLOY_ROLE)
    promote.check(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=candidate())
    decision = gate.decide(
        manifest(0.2), artifacts.read_serving_record(s3, BUCKET)["manifest"], 0.01
    )
    assert decision.promote is False and decision.serving_score == 0.3


def test_check_reports_a_stack_that_serves_another_model_as_failed(pipeline_aws, serving_stack):
    cfn, s3 = serving_stack, pipeline_aws["s3"]
    promote.start(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=candidate(), role_arn=DEPLOY_ROLE)
    other = candidate(f"s3://{BUCKET}/models/other/output/model.tar.gz")
    out = promote.check(cfn, s3, stack_name=STACK, bucket=BUCKET, candidate=other)
    assert out["status"] == promote.FAILED
    assert "not the candidate" in out["reason"]
    assert artifacts.read_serving_record(s3, BUCKET) is None


def test_missing_serving_stack_is_a_clear_error(pipeline_aws):
    with pytest.raises(promote.PromotionError, match="serving stack 'nope'"):
        promote.start(
            pipeline_aws["cfn"],
            pipeline_aws["s3"],
            stack_name="nope",
            bucket=BUCKET,
            candidate=candidate(),
        )


def test_stack_without_the_model_parameter_is_refused(pipeline_aws):
    cfn = pipeline_aws["cfn"]
    cfn.create_stack(
        StackName="not-serving", TemplateBody=json.dumps({"Resources": TEMPLATE["Resources"]})
    )
    with pytest.raises(promote.PromotionError, match="has no ModelDataUrl parameter"):
        promote.start(
            cfn, pipeline_aws["s3"], stack_name="not-serving", bucket=BUCKET, candidate=candidate()
        )


def test_batch_mode_only_records_the_model(pipeline_aws):
    s3 = pipeline_aws["s3"]
    out = promote.start(None, s3, stack_name="", bucket=BUCKET, candidate=candidate())
    assert out["status"] == promote.SUCCEEDED and out["mode"] == "batch"
    assert artifacts.read_serving_record(s3, BUCKET)["servingMode"] == "batch"


def test_bad_candidate_is_named(pipeline_aws):
    with pytest.raises(ValueError, match="candidate needs modelDataUrl"):
        promote.start(None, pipeline_aws["s3"], stack_name="", bucket=BUCKET, candidate={})


# moto completes stack updates at once; the states CloudFormation passes through on AWS are
# injected with botocore's Stubber.


def stubbed_cfn(*stacks: dict):
    cfn = boto3.client(
        "cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(cfn)
    for stack in stacks:
        stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})
    stubber.activate()
    return cfn


def stack(status: str, url: str = "", reason: str = "") -> dict:
    out = {
        "StackName": STACK,
        "CreationTime": "2026-01-01T00:00:00Z",
        "StackStatus": status,
        "Parameters": [
            {"ParameterKey": "ModelDataUrl", "ParameterValue": url},
            {"ParameterKey": "ModelVersion", "ParameterValue": "v1"},
        ],
    }
    if reason:
        out["StackStatusReason"] = reason
    return out


@pytest.mark.parametrize(
    "status",
    ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"],
)
def test_rollout_in_progress_keeps_polling(pipeline_aws, status):
    out = promote.check(
        stubbed_cfn(stack(status)),
        pipeline_aws["s3"],
        stack_name=STACK,
        bucket=BUCKET,
        candidate=candidate(),
    )
    assert out["status"] == promote.IN_PROGRESS


def test_rolled_back_rollout_fails_with_the_stack_reason(pipeline_aws):
    cfn = stubbed_cfn(
        stack(
            "UPDATE_ROLLBACK_COMPLETE",
            "s3://b/old/model.tar.gz",
            "Endpoint update rolled back: alarm Errors5xx",
        )
    )
    out = promote.check(
        cfn, pipeline_aws["s3"], stack_name=STACK, bucket=BUCKET, candidate=candidate()
    )
    assert out["status"] == promote.FAILED
    assert "UPDATE_ROLLBACK_COMPLETE" in out["reason"] and "alarm Errors5xx" in out["reason"]
    assert artifacts.read_serving_record(pipeline_aws["s3"], BUCKET) is None


def test_busy_stack_is_not_updated(pipeline_aws):
    with pytest.raises(promote.PromotionError, match=r"busy \(UPDATE_IN_PROGRESS\)"):
        promote.start(
            stubbed_cfn(stack("UPDATE_IN_PROGRESS")),
            pipeline_aws["s3"],
            stack_name=STACK,
            bucket=BUCKET,
            candidate=candidate(),
        )


def test_update_uses_the_deploy_role_and_treats_no_change_as_done(pipeline_aws):
    cfn = boto3.client(
        "cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    url = candidate()["modelDataUrl"]
    with Stubber(cfn) as stubber:
        stubber.add_response(
            "describe_stacks", {"Stacks": [stack("UPDATE_COMPLETE", url)]}, {"StackName": STACK}
        )
        stubber.add_client_error(
            "update_stack",
            service_error_code="ValidationError",
            service_message="No updates are to be performed.",
            expected_params={
                "StackName": STACK,
                "UsePreviousTemplate": True,
                "Parameters": [
                    {"ParameterKey": "ModelDataUrl", "ParameterValue": url},
                    {"ParameterKey": "ModelVersion", "ParameterValue": "v9"},
                ],
                "Capabilities": ["CAPABILITY_IAM"],
                "RoleARN": DEPLOY_ROLE,
            },
        )
        out = promote.start(
            cfn,
            pipeline_aws["s3"],
            stack_name=STACK,
            bucket=BUCKET,
            candidate=candidate(),
            role_arn=DEPLOY_ROLE,
        )
    assert out["status"] == promote.SUCCEEDED
    assert artifacts.read_serving_record(pipeline_aws["s3"], BUCKET)["modelVersion"] == "v9"


def test_handler_dispatches_on_action(pipeline_aws, serving_stack, monkeypatch):
    monkeypatch.setenv(promote.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(promote.ENV_SERVING_STACK, STACK)
    monkeypatch.setenv(promote.ENV_CFN_ROLE_ARN, DEPLOY_ROLE)
    promote.handler({"action": "start", "candidate": candidate()})
    assert (
        promote.handler({"action": "check", "candidate": candidate()})["status"]
        == promote.SUCCEEDED
    )
    with pytest.raises(ValueError, match="action 'start' or 'check'"):
        promote.handler({"candidate": candidate()})
