"""What the synthesised templates promise (one synthesis per session, see conftest.py)."""

from __future__ import annotations

import json
import re

import pytest
from recsys_lambdas import contracts, routes

DATA_ACTION = re.compile(r"^(dynamodb|s3|firehose|kinesis|sagemaker:InvokeEndpoint)", re.I)


def resources(template: dict, type_: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def one(template: dict, type_: str) -> dict:
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def pipeline_state_machine(template: dict) -> dict:
    """The training pipeline's state machine (the stack also holds the batch inference one)."""
    found = [r for r in resources(template, "AWS::StepFunctions::StateMachine").values()
             if str(r["Properties"].get("StateMachineName", "")).endswith("-training")]
    assert len(found) == 1, f"expected one <prefix>-training state machine, found {len(found)}"
    return found[0]


def stacks(synth, cfg) -> dict:
    return {k: v for k, v in synth.templates.items() if k.startswith(cfg.prefix + "-")}


def statements(template: dict):
    for logical_id, res in template["Resources"].items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [res["Properties"]["PolicyDocument"]]
        elif res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        else:
            continue
        for doc in docs:
            for st in doc["Statement"]:
                yield logical_id, st


def as_list(x):
    return x if isinstance(x, list) else [x]


# --- the environments ----------------------------------------------------------------------


def test_realtime_and_batch_deploy_the_expected_stacks(synth):
    rt, batch = synth.realtime_cfg, synth.batch_cfg
    assert set(stacks(synth, rt)) == {
        f"{rt.prefix}-{c}" for c in ("storage", "serving", "api", "training")
    }
    # batch mode: no serving stack at all
    assert set(stacks(synth, batch)) == {
        f"{batch.prefix}-{c}" for c in ("storage", "api", "training")
    }


def test_batch_mode_deploys_no_sagemaker_model_or_endpoint(synth):
    for name, template in stacks(synth, synth.batch_cfg).items():
        sagemaker = [
            r["Type"]
            for r in template["Resources"].values()
            if r["Type"].startswith("AWS::SageMaker::")
        ]
        assert sagemaker == [], f"{name} has {sagemaker}"
    api = synth.templates[f"{synth.batch_cfg.prefix}-api"]
    for fn in resources(api, "AWS::Lambda::Function").values():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env[contracts.ENV_SERVING_MODE] == "batch"
        assert env[contracts.ENV_ENDPOINT_NAME] == ""
    text = json.dumps(api)
    assert "sagemaker:InvokeEndpoint" not in text


# --- serving ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serving(synth):
    return synth.templates[f"{synth.realtime_cfg.prefix}-serving"]


def test_endpoint_has_at_least_two_instances_of_a_stable_variant(serving, synth):
    variants = one(serving, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert len(variants) == 1
    assert variants[0]["InitialInstanceCount"] >= 2
    assert variants[0]["VariantName"] == "AllTraffic"
    assert variants[0]["InstanceType"] == synth.realtime_cfg.endpoint.instance_type
    endpoint = one(serving, "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["EndpointName"] == synth.realtime_cfg.endpoint_name


def test_endpoint_autoscales_on_invocations_per_instance(serving, synth):
    target = one(serving, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    name = synth.realtime_cfg.endpoint_name
    assert target["ResourceId"] == f"endpoint/{name}/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert 2 <= target["MinCapacity"] <= target["MaxCapacity"]
    policy = one(serving, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )
    assert tracking["TargetValue"] > 0


def test_blue_green_rollout_rolls_back_on_the_5xx_and_latency_alarms(serving):
    alarms = resources(serving, "AWS::CloudWatch::Alarm")
    by_metric = {a["Properties"]["MetricName"]: logical for logical, a in alarms.items()}
    assert {"Invocation5XXErrors", "ModelLatency"} <= set(by_metric)
    for alarm in alarms.values():
        dims = {d["Name"]: d["Value"] for d in alarm["Properties"]["Dimensions"]}
        assert dims["VariantName"] == "AllTraffic"
        assert alarm["Properties"]["AlarmActions"], "alarms notify the alarm topic"
    deployment = one(serving, "AWS::SageMaker::Endpoint")["Properties"]["DeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] in (
        "CANARY",
        "LINEAR",
        "ALL_AT_ONCE",
    )
    rollback = [a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]]
    assert sorted(rollback, key=str) == sorted(
        ({"Ref": by_metric[m]} for m in ("Invocation5XXErrors", "ModelLatency")), key=str
    )


def test_latency_alarm_threshold_is_in_microseconds(serving, synth):
    alarms = resources(serving, "AWS::CloudWatch::Alarm").values()
    latency = next(
        a["Properties"] for a in alarms if a["Properties"]["MetricName"] == "ModelLatency"
    )
    assert latency["Threshold"] == synth.realtime_cfg.endpoint.latency_alarm_ms * 1000


def test_model_artifact_is_a_parameter_and_no_model_means_no_endpoint(serving):
    param = serving["Parameters"]["ModelDataUrl"]
    assert param["Default"] == ""
    assert re.fullmatch(param["AllowedPattern"], "")
    assert re.fullmatch(param["AllowedPattern"], "s3://bucket-1/models/job/output/model.tar.gz")
    assert not re.fullmatch(param["AllowedPattern"], "http://x/model.tar.gz")
    assert serving["Conditions"]["HasModel"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelDataUrl"}, ""]}]
    }
    conditional = {
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
    }
    for logical, res in serving["Resources"].items():
        if res["Type"] in conditional:
            assert res.get("Condition") == "HasModel", logical
    model = one(serving, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert model["ModelDataUrl"] == {"Ref": "ModelDataUrl"}


def test_model_runs_inference_py_from_the_packaged_sources_in_the_sklearn_image(serving):
    container = one(serving, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert re.fullmatch(
        r"\d+\.dkr\.ecr\.us-east-1\.amazonaws\.com/sagemaker-scikit-learn:1\.9-0-cpu-py3",
        container["Image"],
    )
    env = container["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    # the code training job 2 put inside model.tar.gz (test_container.py checks the isolation)
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"


# --- training pipeline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def training(synth):
    return synth.templates[f"{synth.realtime_cfg.prefix}-training"]


def render(part) -> str:
    """A part of an Fn::Join as text: strings as they are, Fn::Sub with its variables as
    TOKEN, Fn::GetAtt as GETATT:<logical id>, other intrinsics as TOKEN."""
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and "Fn::Sub" in part and isinstance(part["Fn::Sub"], str):
        return re.sub(r"\$\{[^}]+\}", "TOKEN", part["Fn::Sub"])
    if isinstance(part, dict) and "Fn::GetAtt" in part:
        return "GETATT:" + part["Fn::GetAtt"][0]  # e.g. the function a task invokes
    return "TOKEN"


def definition(template: dict) -> dict:
    sm = pipeline_state_machine(template)["Properties"]
    body = sm["DefinitionString"]
    if isinstance(body, dict):  # Fn::Join of strings and tokens: render tokens as placeholders
        body = "".join(render(p) for p in body["Fn::Join"][1])
    return json.loads(body)


def test_state_machine_runs_both_training_jobs_in_order(training):
    states = definition(training)["States"]
    jobs = {
        name: s
        for name, s in states.items()
        if s.get("Resource", "").endswith("createTrainingJob.sync")
    }
    assert set(jobs) == {"TrainRetrieval", "TrainRanker"}
    assert states["TrainRetrieval"]["Next"] == "TrainRanker"
    retrieval, ranker = jobs["TrainRetrieval"]["Parameters"], jobs["TrainRanker"]["Parameters"]
    assert json.loads(retrieval["HyperParameters"]["sagemaker_program"]) == "train_retrieval.py"
    assert json.loads(ranker["HyperParameters"]["sagemaker_program"]) == "train_ranker.py"
    for job in (retrieval, ranker):
        # the deterministic tar.gz of sagemaker/, as the job's "code" channel (file asset;
        # CDK keeps ".gz" only, the toolkit opens any gzipped tar)
        submit_dir = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
        assert re.fullmatch(r"/opt/ml/input/data/code/[0-9a-f]{64}\.gz", submit_dir)
        assert (
            "sagemaker-scikit-learn:1.9-0-cpu-py3" in job["AlgorithmSpecification"]["TrainingImage"]
        )
    channels = {c["ChannelName"]: c for c in ranker["InputDataConfig"]}
    assert set(channels) == {
        contracts.TRAINING_CHANNEL_EVENTS,
        contracts.TRAINING_CHANNEL_ITEMS,
        contracts.TRAINING_CHANNEL_DELETIONS,
        contracts.TRAINING_CHANNEL_RETRIEVAL,
        "code",
    }
    # both jobs read the deletion records (DELETE /users) to leave the deleted users out
    for job in (retrieval, ranker):
        (deletions,) = [
            c
            for c in job["InputDataConfig"]
            if c["ChannelName"] == contracts.TRAINING_CHANNEL_DELETIONS
        ]
        assert deletions["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.run.deletionsUri"
    # job 1 reads the optional user metadata (users/, kept non-empty by MarkUsers) and carries it
    # into its model; job 2 reads job 1's copy
    users = {c["ChannelName"]: c for c in retrieval["InputDataConfig"]}[contracts.TRAINING_CHANNEL_USERS]
    assert users["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.run.usersUri"
    assert states["PrepareRun"]["Parameters"]["usersUri"].endswith(f"/{contracts.USERS_PREFIX}")
    # job 2's "retrieval" channel is job 1's model artifact
    assert (
        channels["retrieval"]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.retrieval.modelDataUrl"
    )
    assert (
        states["TrainRetrieval"]["ResultSelector"]["modelDataUrl.$"]
        == "$.ModelArtifacts.S3ModelArtifacts"
    )


def test_pipeline_gates_then_loads_then_promotes_and_fails_clearly(training):
    states = definition(training)["States"]
    assert states["TrainRanker"]["Next"] == "EvaluationGate"
    choice = states[states["EvaluationGate"]["Next"]]
    assert choice["Type"] == "Choice"
    assert choice["Choices"][0]["Next"] == "LoadBatchOutput"
    assert choice["Default"] == "KeptServingModel"
    assert states["LoadBatchOutput"]["Next"] == "Promote"
    assert states["PipelineFailed"]["Type"] == "Fail"
    for name in (
        "TrainRetrieval",
        "TrainRanker",
        "EvaluationGate",
        "LoadBatchOutput",
        "Promote",
        "CheckPromotion",
    ):
        catches = states[name]["Catch"]
        assert (
            catches[0]["ErrorEquals"] == ["States.ALL"] and catches[0]["Next"] == "PipelineFailed"
        ), name


def test_pipeline_failure_alarm_and_schedule(training, synth):
    alarms = resources(training, "AWS::CloudWatch::Alarm").values()
    metrics = json.dumps([a["Properties"].get("Metrics") for a in alarms])
    assert "ExecutionsFailed" in metrics and "ExecutionsTimedOut" in metrics
    rule = one(training, "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == synth.realtime_cfg.training.schedule
    assert "StateMachine" in json.dumps(rule["Targets"])


def test_state_machine_logs_and_traces(training):
    sm = pipeline_state_machine(training)["Properties"]
    assert sm["TracingConfiguration"]["Enabled"] is True
    assert sm["LoggingConfiguration"]["Level"] == "ALL"


def test_promote_step_may_only_update_the_serving_stack_through_its_deploy_role(training, synth):
    cfg = synth.realtime_cfg
    fns = resources(training, "AWS::Lambda::Function")
    promote = next(
        f for f in fns.values() if f["Properties"]["Handler"].endswith("promote.handler")
    )
    env = promote["Properties"]["Environment"]["Variables"]
    assert env["SERVING_STACK_NAME"] == f"{cfg.prefix}-serving"
    assert "SERVING_DEPLOY_ROLE_ARN" in env
    text = json.dumps(training)
    assert f"stack/{cfg.prefix}-serving/*" in text
    assert "cloudformation.amazonaws.com" in text


def test_autoscaling_writes_are_scoped_to_sagemaker_variant_counts(training):
    writes = {"RegisterScalableTarget", "DeregisterScalableTarget", "PutScalingPolicy",
              "DeleteScalingPolicy"}
    found = set()
    for _, st in statements(training):
        actions = {a.split(":", 1)[1] for a in as_list(st["Action"])
                   if a.startswith("application-autoscaling:")}
        if not actions & writes:
            continue
        found |= actions & writes
        assert actions <= writes, st  # Describe* (no resource-level permissions) stays apart
        resource = json.dumps(st["Resource"])
        assert ":application-autoscaling:" in resource and "scalable-target/*" in resource, st
        assert st["Condition"]["StringEquals"] == {
            "application-autoscaling:service-namespace": "sagemaker",
            "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
        }
    assert found == writes


# --- storage ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(synth):
    return synth.templates[f"{synth.realtime_cfg.prefix}-storage"]


def test_tables_follow_the_contracts_with_pitr_on_demand_and_ttl(storage, synth):
    tables = {
        t["Properties"]["TableName"]: t["Properties"]
        for t in resources(storage, "AWS::DynamoDB::Table").values()
    }
    assert set(tables) == {synth.realtime_cfg.table_name(spec) for spec in contracts.ALL_TABLES}
    for spec in contracts.ALL_TABLES:
        table = tables[synth.realtime_cfg.table_name(spec)]
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert table["KeySchema"] == [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        if spec.ttl_attribute:
            assert table["TimeToLiveSpecification"] == {
                "AttributeName": spec.ttl_attribute,
                "Enabled": True,
            }
        else:
            assert "TimeToLiveSpecification" not in table


def test_buckets_are_encrypted_versioned_private_tls_only_and_logged(storage):
    buckets = resources(storage, "AWS::S3::Bucket")
    assert len(buckets) == 3
    policies = json.dumps(resources(storage, "AWS::S3::BucketPolicy"))
    for logical, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"]["Status"] == "Enabled"
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert logical in policies
    data = [b for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    assert len(data) == 2, "the events and artifacts buckets log to the access logs bucket"
    assert '"aws:SecureTransport": "false"' in policies


def test_events_are_delivered_by_firehose_under_the_events_prefix(storage, synth):
    stream = one(storage, "AWS::KinesisFirehose::DeliveryStream")["Properties"]
    assert stream["DeliveryStreamName"] == synth.realtime_cfg.delivery_stream_name
    dest = stream["ExtendedS3DestinationConfiguration"]
    assert dest["Prefix"].startswith(contracts.EVENTS_PREFIX)
    assert not dest["ErrorOutputPrefix"].startswith(contracts.EVENTS_PREFIX)
    assert (dest["CompressionFormat"], dest["FileExtension"]) == ("UNCOMPRESSED", ".jsonl")
    # The fixture's realtime environment uses encryption: kms (test_encryption.py: both modes).
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == (
        "CUSTOMER_MANAGED_CMK" if synth.realtime_cfg.kms else "AWS_OWNED_CMK"
    )


# --- API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["realtime", "batch"])
def test_every_method_requires_iam_auth_and_validates_requests(synth, which):
    cfg = synth.realtime_cfg if which == "realtime" else synth.batch_cfg
    api = synth.templates[f"{cfg.prefix}-api"]
    methods = resources(api, "AWS::ApiGateway::Method")
    assert len(methods) == len(routes.ROUTES)
    for logical, method in methods.items():
        props = method["Properties"]
        assert props["AuthorizationType"] == "AWS_IAM", logical
        assert props.get("RequestValidatorId"), logical
        assert props["ApiKeyRequired"] is (cfg.api.auth == "iam+api_key"), logical
    posts = [m["Properties"] for m in methods.values() if m["Properties"]["HttpMethod"] == "POST"]
    assert posts and all(p.get("RequestModels", {}).get("application/json") for p in posts)
    assert (len(resources(api, "AWS::ApiGateway::UsagePlan")) == 1) is (
        cfg.api.auth == "iam+api_key"
    )


def test_search_requires_q_and_models_come_from_openapi(synth):
    api = synth.templates[f"{synth.realtime_cfg.prefix}-api"]
    methods = resources(api, "AWS::ApiGateway::Method").values()
    search = next(
        m["Properties"] for m in methods if m["Properties"].get("OperationName") == "Search"
    )
    assert search["RequestParameters"]["method.request.querystring.q"] is True
    models = {
        m["Properties"]["Name"]: m["Properties"]["Schema"]
        for m in resources(api, "AWS::ApiGateway::Model").values()
    }
    events = models["PutEventsRequest"]
    assert set(events["required"]) >= {"eventList"}
    assert events["properties"]["eventList"]["items"]["type"] == "object"  # $ref inlined
    assert "$ref" not in json.dumps(models)


def test_stage_throttles_traces_and_writes_access_logs(synth):
    cfg = synth.realtime_cfg
    stage = one(synth.templates[f"{cfg.prefix}-api"], "AWS::ApiGateway::Stage")["Properties"]
    assert stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"]
    settings = stage["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == cfg.api.throttle_rate_limit
    assert settings["ThrottlingBurstLimit"] == cfg.api.throttle_burst_limit


def test_lambdas_are_bounded_and_each_has_its_own_role(synth):
    reserved = {
        cfg.prefix: cfg.lambdas.reserved_concurrency for cfg in (synth.realtime_cfg, synth.batch_cfg)
    }
    assert reserved[synth.realtime_cfg.prefix] is None  # dev reserves nothing (new accounts)
    for name, template in synth.templates.items():
        fns = resources(template, "AWS::Lambda::Function")
        roles = [json.dumps(f["Properties"]["Role"]) for f in fns.values()]
        assert len(set(roles)) == len(roles), f"{name}: functions share a role"
        for logical, fn in fns.items():
            props = fn["Properties"]
            assert props["Runtime"] in ("python3.11", "python3.12")
            assert props["TracingConfig"]["Mode"] == "Active"
            assert 128 <= props["MemorySize"] <= 3008
            assert "AWSLambdaPowertoolsPythonV3" in json.dumps(props["Layers"])
            if name.endswith("-api"):
                assert props["Timeout"] < 29, f"{logical}: API Gateway gives up at 29 s"
                expected = reserved[name.removesuffix("-api")]
                assert props.get("ReservedConcurrentExecutions") == expected, logical
        groups = resources(template, "AWS::Logs::LogGroup")
        assert all(g["Properties"].get("RetentionInDays") for g in groups.values()), name


def test_api_functions_match_the_route_groups(synth):
    api = synth.templates[f"{synth.realtime_cfg.prefix}-api"]
    handlers = sorted(
        f["Properties"]["Handler"] for f in resources(api, "AWS::Lambda::Function").values()
    )
    assert handlers == sorted(routes.FUNCTIONS.values())


def test_the_api_functions_get_the_environments_named_filters(synth):
    """cdk.json's ``filters`` reach the handlers as NAMED_FILTERS (nothing else sets it)."""
    from recsys_lambdas import settings

    cfg = synth.realtime_cfg
    assert cfg.filters, "the synthesized environment ships example filters"
    api = synth.templates[f"{cfg.prefix}-api"]
    for logical, fn in resources(api, "AWS::Lambda::Function").items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert settings.named_filters(env[settings.ENV_NAMED_FILTERS]) == cfg.filters, logical


def test_recommendations_may_invoke_only_its_endpoint(synth):
    cfg = synth.realtime_cfg
    api = synth.templates[f"{cfg.prefix}-api"]
    invoke = [
        st for _, st in statements(api) if "sagemaker:InvokeEndpoint" in as_list(st["Action"])
    ]
    assert len(invoke) == 1
    assert f"endpoint/{cfg.endpoint_name}" in json.dumps(invoke[0]["Resource"])


# --- least privilege ------------------------------------------------------------------------


def test_no_wildcard_resources_or_actions_on_data(synth):
    for name, template in synth.templates.items():
        for logical, st in statements(template):
            actions = as_list(st["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (
                f"{name}/{logical}: {actions}"
            )
            if st["Effect"] == "Allow" and any(DATA_ACTION.match(a) for a in actions):
                assert "*" not in as_list(st["Resource"]), f"{name}/{logical}: {actions} on *"


def test_no_aws_managed_policies_on_function_roles(synth):
    for name, template in synth.templates.items():
        for logical, role in resources(template, "AWS::IAM::Role").items():
            principal = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
            if "lambda.amazonaws.com" in principal:
                assert not role["Properties"].get("ManagedPolicyArns"), f"{name}/{logical}"


def test_api_alarms_and_dashboard(synth):
    cfg = synth.realtime_cfg
    api = synth.templates[f"{cfg.prefix}-api"]
    alarms = [a["Properties"] for a in resources(api, "AWS::CloudWatch::Alarm").values()]
    metrics = sorted(a["MetricName"] for a in alarms)
    n = len(routes.FUNCTIONS)
    assert metrics == sorted(["5XXError", "Latency"] + ["Errors"] * n + ["Throttles"] * n)
    assert all(a["AlarmActions"] for a in alarms)
    five_xx = next(a for a in alarms if a["MetricName"] == "5XXError")
    assert five_xx["Threshold"] == cfg.api.errors_5xx_alarm_threshold
    body = json.dumps(one(api, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for metric in ("5XXError", "ModelLatency", "Invocation5XXErrors", "ExecutionsFailed"):
        assert metric in body
