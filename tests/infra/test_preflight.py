"""``recsys deploy preflight``: every check on a passing account and on each failing one.

moto stands in for STS, SSM, CloudFormation, ECR and Lambda's function concurrency; botocore's
Stubber for what moto does not implement (Service Quotas for SageMaker, Lambda's
GetAccountSettings) and for error answers moto cannot produce (AccessDenied, a failed stack).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws
from recsys_infra import config, images, preflight
from recsys_infra.preflight import FAIL, PASS, WARN, BootstrapRequirement, Clients

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
PARAM = "/cdk-bootstrap/hnb659fds/version"
REQUIREMENT = BootstrapRequirement(6, PARAM, "test manifest")
API_FUNCTIONS = 3

ENV_BLOCK = {
    "region": REGION,
    "prefix": "recsys-t",
    "servingMode": "realtime",
    "endpoint": {"instanceType": "ml.c5.large", "instanceCount": 2, "minInstances": 2,
                 "maxInstances": 4},
    "training": {"instanceType": "ml.m5.xlarge"},
    "lambdas": {"reservedConcurrency": 20},
}


def make_cfg(**overrides) -> config.EnvironmentConfig:
    block = json.loads(json.dumps(ENV_BLOCK))
    for key, value in overrides.items():
        if isinstance(value, dict):
            block.setdefault(key, {}).update(value)
        else:
            block[key] = value
    return config.parse_environment("t", block)


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def client(name: str):
    return boto3.client(name, region_name=REGION)


def bootstrap(version: str = "21") -> None:
    """A CDKToolkit stack that owns the version parameter, as ``cdk bootstrap`` makes it."""
    template = {
        "Resources": {"Version": {"Type": "AWS::SSM::Parameter",
                                  "Properties": {"Name": PARAM, "Type": "String", "Value": version}}},
        "Outputs": {"BootstrapVersion": {"Value": {"Fn::GetAtt": ["Version", "Value"]}}},
    }
    client("cloudformation").create_stack(StackName="CDKToolkit", TemplateBody=json.dumps(template))


def publish_images(tags=None) -> list:
    """The SageMaker scikit-learn repositories and tags of both scopes, in moto's ECR."""
    ecr = client("ecr")
    uris = [images.sklearn_image_uri(REGION, scope) for scope in ("training", "inference")]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                   "digest": "sha256:" + "0" * 64}, "layers": []})
    for uri in uris:
        registry, repository, tag = preflight.parse_image_uri(uri)
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository, registryId=registry)
        for t in (tags if tags is not None else [tag]):
            with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
                ecr.put_image(registryId=registry, repositoryName=repository, imageTag=t,
                              imageManifest=manifest)
    return uris


def quota(name: str, value: float, code: str = "L-TEST0001") -> dict:
    return {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": code,
            "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True,
            "GlobalQuota": False}


class Quotas:
    """A Service Quotas client stubbed with SageMaker's applied and default quotas."""

    def __init__(self, applied=(), defaults=()):
        self.client = client("service-quotas")
        self.stub = Stubber(self.client)
        self.applied, self.defaults = list(applied), list(defaults)

    def expect_lookup(self, found_in_applied: bool) -> None:
        """Queue the answers of one find_quota call."""
        self.stub.add_response("list_service_quotas", {"Quotas": self.applied},
                               {"ServiceCode": "sagemaker"})
        if not found_in_applied:
            self.stub.add_response("list_aws_default_service_quotas", {"Quotas": self.defaults},
                                   {"ServiceCode": "sagemaker"})


def lambda_with_limits(limit: int, unreserved: int):
    lam = client("lambda")
    stub = Stubber(lam)
    stub.add_response("get_account_settings", {
        "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                         "CodeSizeZipped": 52428800, "ConcurrentExecutions": limit,
                         "UnreservedConcurrentExecutions": unreserved},
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}})
    return lam, stub


def healthy_clients(training=4.0, endpoint=8.0, limit=1000, unreserved=1000) -> tuple:
    """Clients of an account where everything passes (moto state must be set up by the caller)."""
    quotas = Quotas(applied=[quota("ml.m5.xlarge for training job usage", training, "L-TRAIN"),
                             quota("ml.c5.large for endpoint usage", endpoint, "L-ENDPT")])
    quotas.expect_lookup(True)
    quotas.expect_lookup(True)
    quotas.stub.activate()
    lam, lam_stub = lambda_with_limits(limit, unreserved)
    lam_stub.activate()
    clients = Clients(sts=client("sts"), ssm=client("ssm"), cloudformation=client("cloudformation"),
                      ecr=client("ecr"), servicequotas=quotas.client, lambda_=lam)
    return clients, quotas.stub, lam_stub


def by_name(results) -> dict:
    return {r.check: r for r in results}


# --- the whole run ------------------------------------------------------------------------

def test_a_ready_account_passes_every_check(aws):
    bootstrap("21")
    publish_images()
    clients, quota_stub, lam_stub = healthy_clients()
    results = preflight.run_preflight(make_cfg(), clients, REQUIREMENT)
    assert [r.check for r in results] == [
        "credentials", "cdk-bootstrap", "image-training", "image-inference", "quota-training",
        "quota-endpoint", "lambda-concurrency"]
    assert [r.status for r in results] == [PASS] * 7, [r.line() for r in results]
    assert preflight.exit_status(results) == 0
    checks = by_name(results)
    assert ACCOUNT in checks["credentials"].detail
    assert "bootstrap version 21 >= 6" in checks["cdk-bootstrap"].detail
    assert "CDKToolkit CREATE_COMPLETE" in checks["cdk-bootstrap"].detail
    assert images.sklearn_image_uri(REGION, "training") in checks["image-training"].detail
    assert "'ml.c5.large for endpoint usage' (L-ENDPT) is 8" in checks["quota-endpoint"].detail
    assert "3 functions x reservedConcurrency 20 = 60" in checks["lambda-concurrency"].detail
    quota_stub.assert_no_pending_responses()
    lam_stub.assert_no_pending_responses()


def test_an_empty_account_fails_with_what_to_do(aws):
    clients, _, _ = healthy_clients(training=0.0, endpoint=0.0, limit=10, unreserved=10)
    results = preflight.run_preflight(make_cfg(), clients, REQUIREMENT)
    checks = by_name(results)
    assert preflight.exit_status(results) == 1
    assert {c: r.status for c, r in checks.items()} == {
        "credentials": PASS, "cdk-bootstrap": FAIL, "image-training": FAIL,
        "image-inference": FAIL, "quota-training": FAIL, "quota-endpoint": FAIL,
        "lambda-concurrency": FAIL}
    assert f"npx cdk bootstrap aws://{ACCOUNT}/{REGION}" in checks["cdk-bootstrap"].fix
    assert "--quota-code L-TRAIN --desired-value 1" in checks["quota-training"].fix
    assert "--quota-code L-ENDPT --desired-value 4" in checks["quota-endpoint"].fix
    assert "reservedConcurrency to null" in checks["lambda-concurrency"].fix
    for result in results:
        assert "\n" not in result.line()
        assert result.status == PASS or result.fix


def test_without_working_credentials_only_that_is_reported():
    class NoCreds:
        def get_caller_identity(self):
            raise NoCredentialsError()

    called = []
    clients = Clients(sts=NoCreds(), ssm=None, cloudformation=None, ecr=None, servicequotas=None,
                      lambda_=None)
    results = preflight.run_preflight(make_cfg(), clients, lambda: called.append(1))
    assert [(r.check, r.status) for r in results] == [("credentials", FAIL)]
    assert "no AWS credentials" in results[0].detail
    assert called == []  # the bootstrap requirement is not even worked out


def test_credentials_of_another_account_than_the_pinned_one_fail(aws):
    result, account = preflight.check_credentials(client("sts"), make_cfg(account="210987654321"))
    assert account == ACCOUNT
    assert result.status == FAIL
    assert "cdk.json pins t.account 210987654321" in result.detail


def test_an_unidentified_account_fails_rather_than_passing_with_no_checks():
    sts = client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "Throttling", "Rate exceeded")
        results = preflight.run_preflight(make_cfg(), Clients(sts, None, None, None, None, None),
                                          REQUIREMENT)
    assert [(r.check, r.status) for r in results] == [("credentials", FAIL)]
    assert preflight.exit_status(results) == 1


def test_rejected_credentials_fail():
    sts = client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "ExpiredToken", "The security token expired")
        result, account = preflight.check_credentials(sts, make_cfg())
    assert account is None and result.status == FAIL and "ExpiredToken" in result.detail


# --- CDK bootstrap ------------------------------------------------------------------------

def test_bootstrap_older_than_required_fails(aws):
    bootstrap("5")
    result = preflight.check_bootstrap(client("ssm"), client("cloudformation"), REQUIREMENT,
                                       ACCOUNT, REGION)
    assert result.status == FAIL
    assert "bootstrap version 5" in result.detail and "< 6 required by test manifest" in result.detail
    assert result.fix == f"upgrade it: npx cdk bootstrap aws://{ACCOUNT}/{REGION}"


def test_bootstrap_parameter_without_the_toolkit_stack_warns(aws):
    client("ssm").put_parameter(Name=PARAM, Value="21", Type="String")
    result = preflight.check_bootstrap(client("ssm"), client("cloudformation"), REQUIREMENT,
                                       ACCOUNT, REGION)
    assert result.status == WARN and "no stack named CDKToolkit" in result.detail


def test_a_custom_qualifier_is_in_the_bootstrap_command(aws):
    requirement = BootstrapRequirement(6, "/cdk-bootstrap/myqual/version", "x")
    result = preflight.check_bootstrap(client("ssm"), client("cloudformation"), requirement,
                                       ACCOUNT, REGION)
    assert result.status == FAIL and result.fix.endswith("--qualifier myqual")


def test_a_failed_toolkit_stack_fails(aws):
    client("ssm").put_parameter(Name=PARAM, Value="21", Type="String")
    cfn = client("cloudformation")
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{
            "StackName": "CDKToolkit", "StackStatus": "UPDATE_ROLLBACK_FAILED",
            "CreationTime": "2026-01-01T00:00:00Z"}]}, {"StackName": "CDKToolkit"})
        result = preflight.check_bootstrap(client("ssm"), cfn, REQUIREMENT, ACCOUNT, REGION)
    assert result.status == FAIL and "UPDATE_ROLLBACK_FAILED" in result.detail


def test_bootstrap_access_denied_warns_naming_the_action():
    ssm = client("ssm")
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "AccessDeniedException", "not authorized")
        result = preflight.check_bootstrap(ssm, client("cloudformation"), REQUIREMENT,
                                           ACCOUNT, REGION)
    assert result.status == WARN
    assert "ssm:GetParameter denied" in result.detail and PARAM in result.fix


def test_unknown_requirement_downgrades_a_pass_to_warn(aws):
    bootstrap("21")
    publish_images()
    clients, _, _ = healthy_clients()

    def broken():
        raise RuntimeError("node not found")

    checks = by_name(preflight.run_preflight(make_cfg(), clients, broken))
    assert checks["cdk-bootstrap"].status == WARN
    assert "node not found" in checks["cdk-bootstrap"].detail


def test_requirement_from_a_cloud_assembly_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": "48.0.0", "artifacts": {
        "a": {"type": "aws:cloudformation:stack",
              "properties": {"requiresBootstrapStackVersion": 6,
                             "bootstrapStackVersionSsmParameter": PARAM}},
        "b": {"type": "aws:cloudformation:stack",
              "properties": {"requiresBootstrapStackVersion": 8,
                             "bootstrapStackVersionSsmParameter": PARAM}},
        "a.assets": {"type": "cdk:asset-manifest",
                     "properties": {"requiresBootstrapStackVersion": 99}},
        "Tree": {"type": "cdk:tree"}}}))
    found = preflight.bootstrap_requirement_from_manifest(manifest)
    assert (found.version, found.ssm_parameter, found.qualifier) == (8, PARAM, "hnb659fds")
    with pytest.raises(config.ConfigError, match="not a readable cloud assembly manifest"):
        preflight.bootstrap_requirement_from_manifest(tmp_path / "missing.json")
    manifest.write_text(json.dumps({"artifacts": {"Tree": {"type": "cdk:tree"}}}))
    with pytest.raises(config.ConfigError, match="no stack states a bootstrap version"):
        preflight.bootstrap_requirement_from_manifest(manifest)


def test_probe_reads_the_default_synthesizers_requirement():
    found = preflight.probe_bootstrap_requirement()
    assert found.ssm_parameter == PARAM
    assert found.version >= 6
    assert "DefaultStackSynthesizer" in found.source


# --- the SageMaker image ------------------------------------------------------------------

def test_image_tag_missing_in_the_repository_fails(aws):
    publish_images(tags=["0.23-1-cpu-py3"])
    results = preflight.check_images(client("ecr"), REGION)
    assert [r.status for r in results] == [FAIL, FAIL]
    assert "ImageNotFound" in results[0].detail


def test_image_repository_missing_fails(aws):
    results = preflight.check_images(client("ecr"), REGION)
    assert [r.status for r in results] == [FAIL, FAIL]
    assert "repository sagemaker-scikit-learn not found" in results[1].detail


def test_image_lookup_denied_warns_clearly():
    ecr = client("ecr")
    with Stubber(ecr) as stub:
        for _ in range(2):
            stub.add_client_error("batch_get_image", "AccessDeniedException",
                                  "User is not authorized to perform: ecr:BatchGetImage")
        results = preflight.check_images(ecr, REGION)
    assert [r.status for r in results] == [WARN, WARN]
    assert "ecr:BatchGetImage denied for these credentials (AccessDeniedException)" in results[0].detail
    assert "aws ecr batch-get-image --registry-id" in results[0].fix


def test_image_request_names_registry_repository_and_tag():
    ecr = client("ecr")
    uri = images.sklearn_image_uri("eu-west-1", "inference")
    registry, repository, tag = preflight.parse_image_uri(uri)
    with Stubber(ecr) as stub:
        for _ in range(2):
            stub.add_response("batch_get_image", {"images": [{"imageId": {"imageTag": tag}}],
                                                  "failures": []},
                              {"registryId": registry, "repositoryName": repository,
                               "imageIds": [{"imageTag": tag}],
                               "acceptedMediaTypes": preflight.ECR_MEDIA_TYPES})
        results = preflight.check_images(ecr, "eu-west-1")
    assert [r.status for r in results] == [PASS, PASS]


def test_a_region_without_the_image_fails_offline():
    results = preflight.check_images(None, "xx-nowhere-1")  # no ECR call is made
    assert [r.status for r in results] == [FAIL, FAIL]
    assert "has no SageMaker scikit-learn" in results[0].detail


# --- SageMaker quotas ---------------------------------------------------------------------

def test_endpoint_quota_enough_to_run_but_not_to_roll_out_at_maximum_warns():
    q = Quotas(applied=[quota("ml.c5.large for endpoint usage", 4, "L-ENDPT")])
    q.expect_lookup(True)
    with q.stub:
        result = preflight.check_endpoint_quota(q.client, make_cfg())
    assert result.status == WARN
    assert "< 8 for a blue/green rollout" in result.detail
    assert result.fix.endswith("--quota-code L-ENDPT --desired-value 8")


def test_endpoint_quota_below_twice_the_instance_count_fails():
    cfg = make_cfg(endpoint={"instanceCount": 3, "minInstances": 2, "maxInstances": 4})
    assert preflight.endpoint_instances_needed(cfg) == (6, 8)
    q = Quotas(applied=[quota("ml.c5.large for endpoint usage", 5)])
    q.expect_lookup(True)
    with q.stub:
        result = preflight.check_endpoint_quota(q.client, cfg)
    assert result.status == FAIL and "is 5 (applied) < 6 needed" in result.detail


def test_quota_not_applied_falls_back_to_the_aws_default():
    q = Quotas(applied=[quota("ml.c5.large for endpoint usage", 8)],
               defaults=[quota("ml.m5.xlarge for training job usage", 2, "L-DEF")])
    q.expect_lookup(False)
    with q.stub:
        result = preflight.check_training_quota(q.client, make_cfg())
    assert result.status == PASS and "(L-DEF) is 2 (AWS default)" in result.detail


def test_quota_lookup_follows_pagination():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [quota("ml.t3.medium for endpoint usage", 1)],
                                                  "NextToken": "page2"}, {"ServiceCode": "sagemaker"})
        stub.add_response("list_service_quotas",
                          {"Quotas": [quota("ml.m5.xlarge for training job usage", 3, "L-P2")]},
                          {"ServiceCode": "sagemaker", "NextToken": "page2"})
        found = preflight.find_quota(sq, "sagemaker", "ml.m5.xlarge for training job usage")
    assert found is not None and found["QuotaCode"] == "L-P2" and found["Source"] == "applied"


def test_an_instance_type_without_a_quota_fails():
    q = Quotas(applied=[quota("ml.c5.large for endpoint usage", 8)], defaults=[])
    q.expect_lookup(False)
    with q.stub:
        result = preflight.check_training_quota(q.client, make_cfg(training={"instanceType": "ml.m5.xlrge"}))
    assert result.status == FAIL
    assert "no quota 'ml.m5.xlrge for training job usage'" in result.detail


def test_quota_access_denied_warns():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("list_service_quotas", "AccessDeniedException", "no")
        result = preflight.check_training_quota(sq, make_cfg())
    assert result.status == WARN and "servicequotas:ListServiceQuotas denied" in result.detail


def test_service_quotas_unavailable_in_moto_region_is_a_warning_not_a_crash(aws):
    """moto's Service Quotas answers SageMaker with NoSuchResourceException: reported, no crash."""
    sq = client("service-quotas")
    with Stubber(sq) as stub:  # moto lacks ListServiceQuotas: stub that, let moto answer the rest
        stub.add_response("list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"})
        stub.add_client_error("list_aws_default_service_quotas", "NoSuchResourceException",
                              "This service is not available in the current Region.")
        result = preflight.check_training_quota(sq, make_cfg())
    assert result.status == WARN and "NoSuchResourceException" in result.detail
    with pytest.raises(sq.exceptions.NoSuchResourceException):
        client("service-quotas").list_aws_default_service_quotas(ServiceCode="sagemaker")


def test_batch_mode_needs_no_endpoint_quota():
    sq = client("service-quotas")
    with Stubber(sq):  # any call would fail: none is made
        result = preflight.check_endpoint_quota(sq, make_cfg(servingMode="batch"))
    assert result.status == PASS and "batch" in result.detail


# --- Lambda concurrency -------------------------------------------------------------------

@pytest.mark.parametrize(("reserved", "limit", "unreserved", "ours", "status"), [
    (20, 1000, 1000, 0, PASS),   # 60 of 900 reservable
    (20, 160, 160, 0, PASS),     # exactly 60 of 60
    (20, 159, 159, 0, FAIL),     # one short
    (20, 10, 10, 0, FAIL),       # a new account
    (20, 1000, 100, 60, PASS),   # a redeploy: our 60 are already reserved
    (20, 1000, 140, 0, FAIL),    # others reserved 860
    (None, 10, 10, 0, WARN),     # no reservation, but a tiny account
    (None, 1000, 1000, 0, PASS),
])
def test_lambda_concurrency_verdicts(reserved, limit, unreserved, ours, status):
    cfg = make_cfg(lambdas={"reservedConcurrency": reserved})
    result = preflight.lambda_concurrency_result(cfg, API_FUNCTIONS, limit, unreserved, ours)
    assert result.status == status, result.line()


def test_lambda_failure_says_how_far_to_lower_or_raise():
    cfg = make_cfg(lambdas={"reservedConcurrency": 50})
    result = preflight.lambda_concurrency_result(cfg, API_FUNCTIONS, 200, 200, 0)
    assert result.status == FAIL
    assert "100 can be reserved" in result.detail
    assert "to at most 33 or to null" in result.fix
    assert "--quota-code L-B99A9384 --desired-value 250" in result.fix


def test_existing_reservations_of_the_api_stack_are_counted(aws):
    role = client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    fn = {"Type": "AWS::Lambda::Function",
          "Properties": {"Runtime": "python3.11", "Handler": "x.h", "Role": role,
                         "Code": {"ZipFile": "def h(e, c):\n    return 1\n"}}}
    template = {"Resources": {"A": fn, "B": fn, "C": fn, "Logs": {"Type": "AWS::Logs::LogGroup"}}}
    cfn = client("cloudformation")
    assert preflight.existing_reservations(cfn, client("lambda"), "recsys-t-api") == 0
    cfn.create_stack(StackName="recsys-t-api", TemplateBody=json.dumps(template))
    names = [r["PhysicalResourceId"] for r in cfn.describe_stack_resources(
        StackName="recsys-t-api")["StackResources"] if r["ResourceType"] == "AWS::Lambda::Function"]
    lam = client("lambda")
    for name in names[:2]:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=20)
    assert preflight.existing_reservations(cfn, lam, "recsys-t-api") == 40


def test_lambda_check_composes_account_settings_and_existing_reservations(aws):
    lam, stub = lambda_with_limits(1000, 1000)
    with stub:
        result = preflight.check_lambda_concurrency(lam, client("cloudformation"), make_cfg())
    assert result.status == PASS and "3 functions" in result.detail  # len(routes.FUNCTIONS)


def test_lambda_account_settings_denied_warns():
    lam = client("lambda")
    with Stubber(lam) as stub:
        stub.add_client_error("get_account_settings", "AccessDeniedException", "no")
        result = preflight.check_lambda_concurrency(lam, None, make_cfg())
    assert result.status == WARN and "lambda:GetAccountSettings denied" in result.detail


# --- the command line ---------------------------------------------------------------------

class FakeSession:
    """Hands out prepared clients, as ``boto3.Session.client`` would."""

    def __init__(self, clients: Clients):
        self.clients = {"sts": clients.sts, "ssm": clients.ssm,
                        "cloudformation": clients.cloudformation, "ecr": clients.ecr,
                        "service-quotas": clients.servicequotas, "lambda": clients.lambda_}

    def client(self, name, region_name=None):
        assert region_name == REGION
        return self.clients[name]


def write_cdk_json(tmp_path: Path, **overrides) -> Path:
    env = json.loads(json.dumps(ENV_BLOCK))
    env.update(overrides)
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": {"recsys:env": "t",
                                            "recsys:environments": {"t": env}}}))
    return path


def write_cdk_out(tmp_path: Path, version: int = 6) -> Path:
    out = tmp_path / "cdk.out"
    out.mkdir(exist_ok=True)
    (out / "manifest.json").write_text(json.dumps({"artifacts": {"s": {
        "type": "aws:cloudformation:stack",
        "properties": {"requiresBootstrapStackVersion": version,
                       "bootstrapStackVersionSsmParameter": PARAM}}}}))
    return out


def cli_args(tmp_path: Path, **kw) -> argparse.Namespace:
    from recsys_tools.cli import build_parser

    cdk_json = kw.pop("cdk_json", None) or write_cdk_json(tmp_path)
    cdk_out = kw.pop("cdk_out", None) or write_cdk_out(tmp_path)
    argv = ["deploy", "preflight", "--cdk-json", str(cdk_json), "--cdk-out", str(cdk_out)]
    return build_parser().parse_args(argv + kw.pop("extra", []))


def test_cli_ready_account_exit_0_one_line_per_check(aws, tmp_path):
    from recsys_tools import deploy

    bootstrap("21")
    publish_images()
    clients, _, _ = healthy_clients()
    out = io.StringIO()
    status = deploy.run_preflight(cli_args(tmp_path), out=out, session=FakeSession(clients))
    lines = out.getvalue().splitlines()
    assert status == 0
    assert lines[0] == f"preflight: environment t (recsys-t), region {REGION}"
    checks = lines[1:-1]
    assert len(checks) == 7 and all(line.startswith("PASS  ") for line in checks)
    assert lines[-1] == "preflight: 7 PASS, 0 WARN, 0 FAIL: ready for cdk deploy"


def test_cli_failing_account_exit_1(aws, tmp_path):
    from recsys_tools import deploy

    bootstrap("5")  # older than the manifest's requirement of 6
    publish_images()
    clients, _, _ = healthy_clients()
    out = io.StringIO()
    status = deploy.run_preflight(cli_args(tmp_path), out=out, session=FakeSession(clients))
    lines = out.getvalue().splitlines()
    assert status == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  cdk-bootstrap")
    assert "-> upgrade it: npx cdk bootstrap" in failed[0]
    assert lines[-1] == ("preflight: 6 PASS, 0 WARN, 1 FAIL: not ready: fix the FAIL lines, "
                         "then run again")


def test_cli_warnings_do_not_fail(aws, tmp_path):
    from recsys_tools import deploy

    bootstrap("21")
    publish_images()
    clients, _, _ = healthy_clients(endpoint=4.0)
    out = io.StringIO()
    status = deploy.run_preflight(cli_args(tmp_path), out=out, session=FakeSession(clients))
    assert status == 0
    assert any(line.startswith("WARN  quota-endpoint") for line in out.getvalue().splitlines())


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    bad_env = subprocess.run(
        [sys.executable, "-m", "recsys_tools.cli", "deploy", "preflight", "--env", "nope",
         "--cdk-json", str(write_cdk_json(tmp_path))],
        capture_output=True, text=True, timeout=120)
    assert bad_env.returncode == 2
    assert bad_env.stderr.strip().splitlines() == [
        "recsys deploy preflight: error: recsys:env='nope' is not one of ['t'] in cdk.json"]
    assert bad_env.stdout == ""
    from recsys_tools import deploy

    assert deploy.run_preflight(cli_args(tmp_path, cdk_out=tmp_path / "nowhere")) == 2
    assert deploy.run_preflight(cli_args(tmp_path, extra=["--region", "mars"])) == 2


def test_console_script_offers_every_command():
    from recsys_tools.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"data", "train", "evaluate", "batch-inference", "local", "deploy"}
    args = parser.parse_args(["deploy", "preflight", "--env", "prod", "--region", "eu-west-1"])
    assert (args.env, args.region) == ("prod", "eu-west-1")
