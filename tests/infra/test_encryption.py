"""The customer managed data key (the fixture's real-time environment has ``encryption: kms``, the
batch one ``aws-managed``), service principals held to this account, and retention on the log
groups AWS services would otherwise create themselves."""

from __future__ import annotations

import json

import pytest
from recsys_lambdas import contracts
from test_stacks import as_list, one, resources, statements


def state_machines(template: dict) -> dict:
    """The training stack's state machines by concern: ``training``, ``batch-inference``."""
    out = {}
    for machine in resources(template, "AWS::StepFunctions::StateMachine").values():
        name = str(machine["Properties"]["StateMachineName"])
        out["batch-inference" if name.endswith("-batch-inference") else name.rsplit("-", 1)[1]] = machine
    assert sorted(out) == ["batch-inference", "training"], sorted(out)
    return out


def stacks(synth, cfg) -> dict:
    return {k: v for k, v in synth.templates.items() if k.startswith(cfg.prefix + "-")}


def kms_statements(template: dict):
    for logical, st in statements(template):
        if any(a.startswith("kms:") for a in as_list(st["Action"])):
            yield logical, st


@pytest.fixture(scope="module")
def kms_cfg(synth):
    cfg = synth.realtime_cfg
    assert cfg.kms and not synth.batch_cfg.kms
    return cfg


def data_key(storage: dict) -> tuple[str, dict]:
    alias = one(storage, "AWS::KMS::Alias")["Properties"]
    logical = alias["TargetKeyId"]["Fn::GetAtt"][0]
    return logical, storage["Resources"][logical]


def test_one_rotated_data_key_with_a_fixed_alias_trusting_no_service(synth, kms_cfg):
    storage = synth.templates[kms_cfg.stack_name("storage")]
    assert one(storage, "AWS::KMS::Alias")["Properties"]["AliasName"] == kms_cfg.data_key_alias
    _, key = data_key(storage)
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == ("Delete" if kms_cfg.removal_policy == "destroy" else "Retain")
    principals = [st["Principal"] for st in key["Properties"]["KeyPolicy"]["Statement"]]
    assert all(set(p) == {"AWS"} and ":root" in json.dumps(p) for p in principals), principals


def test_data_stores_stream_training_and_endpoint_use_the_data_key(synth, kms_cfg):
    storage = synth.templates[kms_cfg.stack_name("storage")]
    key_id, _ = data_key(storage)
    ref = {"Fn::GetAtt": [key_id, "Arn"]}
    for bucket in resources(storage, "AWS::S3::Bucket").values():
        (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        if "LoggingConfiguration" in bucket["Properties"]:  # the data buckets
            assert default == {"KMSMasterKeyID": ref, "SSEAlgorithm": "aws:kms"}
            assert rule["BucketKeyEnabled"] is True
        else:  # server access logs can only be delivered to an SSE-S3 bucket
            assert default == {"SSEAlgorithm": "AES256"}
    tables = resources(storage, "AWS::DynamoDB::Table")
    assert len(tables) == len(contracts.ALL_TABLES)
    for table in tables.values():
        sse = table["Properties"]["SSESpecification"]
        assert (sse["SSEEnabled"], sse["SSEType"], sse["KMSMasterKeyId"]) == (True, "KMS", ref)
    stream = one(storage, "AWS::KinesisFirehose::DeliveryStream")["Properties"]
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {
        "KeyType": "CUSTOMER_MANAGED_CMK",
        "KeyARN": ref,
    }
    destination = stream["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"]
    assert destination == {"KMSEncryptionConfig": {"AWSKMSKeyARN": ref}}

    alias_arn = f":kms:{kms_cfg.region}:"
    config = one(synth.templates[kms_cfg.stack_name("serving")], "AWS::SageMaker::EndpointConfig")
    assert alias_arn in json.dumps(config["Properties"]["KmsKeyId"])
    assert json.dumps(config["Properties"]["KmsKeyId"]).endswith(f':{kms_cfg.data_key_alias}"]]}}')
    machines = state_machines(synth.templates[kms_cfg.stack_name("training")])
    definition = json.dumps(machines["training"]["Properties"]["DefinitionString"])
    for field in ('\\"VolumeKmsKeyId\\":\\"arn:', '\\"KmsKeyId\\":\\"arn:'):
        assert definition.count(field) == 2, field  # both training jobs
    assert definition.count(kms_cfg.data_key_alias) == 4
    batch = json.dumps(machines["batch-inference"]["Properties"]["DefinitionString"])
    for field in ('\\"VolumeKmsKeyId\\":\\"arn:', '\\"KmsKeyId\\":\\"arn:'):
        assert batch.count(field) == 1, field  # the transform job's volume and output
    assert batch.count(kms_cfg.data_key_alias) == 2


def test_key_grants_go_through_one_service_and_name_only_the_data_key(synth, kms_cfg):
    storage_key, _ = data_key(synth.templates[kms_cfg.stack_name("storage")])
    holders = set()
    for name, template in stacks(synth, kms_cfg).items():
        for logical, st in kms_statements(template):
            if st["Effect"] != "Allow" or logical.startswith("Alarms"):
                continue
            holders.add(f"{name.rsplit('-', 1)[-1]}/{logical}")
            assert "*" not in as_list(st["Action"]), logical
            via = st["Condition"]["StringEquals"]["kms:ViaService"]
            assert as_list(via) and all(v.endswith(f".{kms_cfg.region}.amazonaws.com") for v in as_list(via))
            (resource,) = as_list(st["Resource"])
            if name.endswith("-storage"):
                assert resource == {"Fn::GetAtt": [storage_key, "Arn"]}, logical
            else:  # by alias: key/* held to the one key carrying the alias
                assert json.dumps(resource).endswith(':key/*"]]}'), logical
                aliases = st["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]
                assert aliases == kms_cfg.data_key_alias, logical
            if "kms:CreateGrant" in as_list(st["Action"]):
                assert st["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    # Every role that touches encrypted data, and no other.
    roles = {h.split("/", 1)[0] + "/" + h.split("/", 1)[1].split("DefaultPolicy")[0] for h in holders}
    expected_prefixes = {
        "storage/StorageDeliveryRole",
        "serving/ServingExecutionRole",
        "api/ApiRecommendationsFunctionRole",
        "api/ApiEventsFunctionRole",
        "training/PipelineTrainingRole",
        "training/PipelinePurgeFunctionRole",  # rewrites the encrypted event log
        "training/PipelineGateFunctionRole",
        "training/PipelineLoadFunctionRole",
        "training/PipelinePromoteFunctionRole",
        "training/PipelineServingDeployRole",
        # MarkDeletions writes deletions/_marker.json into the encrypted events bucket
        "training/PipelineStateMachineRole",
        # batch inference: the transform model reads and writes batch-inference/ (and its volume);
        # the state machine reads models/serving.json
        "training/BatchInferenceModelRole",
        "training/BatchInferenceStateMachineRole",
    }
    assert {r.rstrip("0123456789ABCDEF") for r in roles} == expected_prefixes


def test_aws_managed_mode_has_no_data_key(synth):
    cfg = synth.batch_cfg
    storage = synth.templates[cfg.stack_name("storage")]
    assert not resources(storage, "AWS::KMS::Alias")
    assert len(resources(storage, "AWS::KMS::Key")) == 1  # the alarm topic's key only
    for name, template in stacks(synth, cfg).items():
        assert not [st for _, st in kms_statements(template)], name
    for bucket in resources(storage, "AWS::S3::Bucket").values():
        (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    stream = one(storage, "AWS::KinesisFirehose::DeliveryStream")["Properties"]
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    for machine in state_machines(synth.templates[cfg.stack_name("training")]).values():
        assert "KmsKeyId" not in json.dumps(machine["Properties"]["DefinitionString"])


# --- service principals ----------------------------------------------------------------------

_RESOURCE_POLICIES = {
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
}


def test_service_principals_act_only_for_this_account(synth):
    checked = 0
    for name, template in synth.templates.items():
        for logical, res in template["Resources"].items():
            if res["Type"] in _RESOURCE_POLICIES:
                document = res["Properties"][_RESOURCE_POLICIES[res["Type"]]]
                for st in document["Statement"]:
                    principal = st.get("Principal", {})
                    if st["Effect"] == "Allow" and isinstance(principal, dict) and "Service" in principal:
                        keys = {k for cond in st.get("Condition", {}).values() for k in cond}
                        assert {"aws:SourceAccount", "aws:SourceArn"} <= keys, f"{name}/{logical}"
                        checked += 1
            elif res["Type"] == "AWS::Lambda::Permission":
                props = res["Properties"]
                if props["Principal"].endswith(".amazonaws.com"):
                    assert props.get("SourceArn") and props.get("SourceAccount"), f"{name}/{logical}"
                    checked += 1
            elif res["Type"] == "AWS::IAM::Role":
                trust = res["Properties"]["AssumeRolePolicyDocument"]["Statement"]
                for st in trust:
                    service = st["Principal"].get("Service")
                    if service in ("sagemaker.amazonaws.com", "states.amazonaws.com"):
                        assert st["Condition"]["StringEquals"]["aws:SourceAccount"], logical
                        checked += 1
                    if service == "events.amazonaws.com":
                        assert st["Condition"]["StringEquals"]["aws:SourceAccount"], logical
                        source = json.dumps(st["Condition"]["ArnLike"]["aws:SourceArn"])
                        assert ":rule/recsys-" in source, logical
                        checked += 1
    assert checked >= 20


def test_alarm_names_match_the_topic_policy_source_arn(synth):
    """The alarm topic admits CloudWatch for alarms named <prefix>-*: CloudFormation names each
    alarm <stack name>-<id>-<suffix>, so every alarm must be unnamed or carry the prefix."""
    for cfg in (synth.realtime_cfg, synth.batch_cfg):
        for name, template in stacks(synth, cfg).items():
            assert name.startswith(f"{cfg.prefix}-")
            for logical, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
                assert alarm["Properties"].get("AlarmName", cfg.prefix).startswith(cfg.prefix), logical
        topic_policy = one(synth.templates[cfg.stack_name("storage")], "AWS::SNS::TopicPolicy")
        assert f":alarm:{cfg.prefix}-*" in json.dumps(topic_policy)


# --- log groups services would create --------------------------------------------------------


def _deletion(cfg) -> str:
    return "Delete" if cfg.removal_policy == "destroy" else "Retain"


def test_endpoint_and_api_execution_log_groups_exist_first_with_retention(synth):
    cfg = synth.realtime_cfg
    serving = synth.templates[cfg.stack_name("serving")]
    groups = {
        json.dumps(g["Properties"].get("LogGroupName")): g
        for g in resources(serving, "AWS::Logs::LogGroup").values()
    }
    endpoint = groups[json.dumps(f"/aws/sagemaker/Endpoints/{cfg.endpoint_name}")]
    assert endpoint["Properties"]["RetentionInDays"] == cfg.lambdas.log_retention_days
    assert endpoint["DeletionPolicy"] == _deletion(cfg)
    assert "Condition" not in endpoint  # exists before the first model
    for env in (synth.realtime_cfg, synth.batch_cfg):
        api = synth.templates[env.stack_name("api")]
        (logical, group), = [
            (k, g)
            for k, g in resources(api, "AWS::Logs::LogGroup").items()
            if "API-Gateway-Execution-Logs_" in json.dumps(g["Properties"].get("LogGroupName"))
        ]
        assert json.dumps(group["Properties"]["LogGroupName"]).endswith('/v1"]]}')
        assert group["Properties"]["RetentionInDays"] == env.lambdas.log_retention_days
        assert group["DeletionPolicy"] == _deletion(env)
        stage = one(api, "AWS::ApiGateway::Stage")
        assert logical in as_list(stage.get("DependsOn", []))


def test_training_jobs_log_group_is_left_to_the_account(synth):
    """/aws/sagemaker/TrainingJobs is one group for every training job of the account: a stack
    that created it would fail where it exists and could delete it for everyone (DEPLOY.md)."""
    for template in synth.templates.values():
        for group in resources(template, "AWS::Logs::LogGroup").values():
            assert group["Properties"].get("LogGroupName") != "/aws/sagemaker/TrainingJobs"
