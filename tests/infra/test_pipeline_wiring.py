"""The synthesised state machine drives the real pipeline Lambdas: a small interpreter walks the
definition from EvaluationGate, resolves each task's payload from the execution state with the
JSONPaths CDK wrote, and calls the handlers against moto (S3, DynamoDB, CloudFormation). A key
renamed on either side (state machine or handler) fails here."""

from __future__ import annotations

import io
import json
import tarfile
import time

import boto3
import pytest
from moto import mock_aws
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import artifacts, gate, load, promote, purge

BUCKET = "wiring-artifacts"
EVENTS_BUCKET = "wiring-events"
HANDLERS = {
    "recsys_lambdas.pipeline.purge.handler": purge.handler,
    "recsys_lambdas.pipeline.gate.handler": gate.handler,
    "recsys_lambdas.pipeline.load.handler": load.handler,
    "recsys_lambdas.pipeline.promote.handler": promote.handler,
}
SERVING_TEMPLATE = {
    "Parameters": {
        "ModelDataUrl": {"Type": "String", "Default": ""},
        "ModelVersion": {"Type": "String", "Default": "none"},
    },
    "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
}


def get(state: dict, path: str):
    if path == "$":
        return state
    assert path.startswith("$."), path
    value = state
    for part in path[2:].split("."):
        value = value[part]
    return value


def put(state: dict, path: str, value) -> None:
    parts = path[2:].split(".")
    for part in parts[:-1]:
        state = state.setdefault(part, {})
    state[parts[-1]] = value


def payload(params: dict, state: dict) -> dict:
    out = {}
    for key, value in params.items():
        if key.endswith(".$") and value.startswith("States."):
            out[key[:-2]] = f"<{value}>"  # an intrinsic function (States.UUID()): a placeholder
        elif key.endswith(".$"):
            out[key[:-2]] = get(state, value)
        elif isinstance(value, dict):
            out[key] = payload(value, state)
        else:
            out[key] = value
    return out


def choose(choice: dict, state: dict) -> str:
    for rule in choice["Choices"]:
        try:
            value = get(state, rule["Variable"])
        except KeyError:
            if "IsPresent" in rule and rule["IsPresent"] is False:
                return rule["Next"]
            continue

        if (
            ("BooleanEquals" in rule and value is rule["BooleanEquals"])
            or ("StringEquals" in rule and value == rule["StringEquals"])
            or ("NumericEquals" in rule and value == rule["NumericEquals"])
            or ("IsPresent" in rule and rule["IsPresent"] is True)
        ):
            return rule["Next"]
    return choice["Default"]


def run(
    states: dict, handlers: dict, state: dict, start: str = "EvaluationGate"
) -> tuple[str, dict]:
    name = start
    for _ in range(50):
        st = states[name]
        if st["Type"] in ("Succeed", "Fail"):
            return name, state
        if st["Type"] == "Choice":
            name = choose(st, state)
            continue
        if st["Type"] == "Pass" and "Parameters" in st:
            put(state, st.get("ResultPath", "$"), payload(st["Parameters"], state))
        if st["Type"] == "Task":
            result = handlers[name](payload(st["Parameters"], state), None)
            if "ResultSelector" in st:
                result = payload(st["ResultSelector"], result)
            put(state, st["ResultPath"], result)
        name = st["Next"]
    raise AssertionError("the state machine did not finish")


def output_tar(manifest: dict) -> bytes:
    files = {
        "manifest.json": json.dumps(manifest),
        "batch/users.jsonl": json.dumps(
            {"userId": "u1", "recentItems": ["a"], "recentTimestamps": [1]}
        )
        + "\n",
        "batch/items.jsonl": json.dumps({"itemId": "a", "title": "A", "category": "c"}) + "\n",
        "batch/recommendations.jsonl": json.dumps(
            {
                "userId": contracts.POPULAR_USER_ID,
                "items": [{"itemId": "a", "score": 1.0}],
                "modelVersion": manifest["model_version"],
            }
        )
        + "\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def pipeline(synth, monkeypatch):
    """The realtime environment's state machine and its Lambdas' environment, on moto."""
    from test_stacks import definition, resources

    cfg = synth.realtime_cfg
    template = synth.templates[f"{cfg.prefix}-training"]
    states = definition(template)["States"]
    fns = resources(template, "AWS::Lambda::Function")
    env = {}
    for fn in fns.values():
        for key, value in fn["Properties"]["Environment"]["Variables"].items():
            env[key] = value if isinstance(value, str) else ""
    env[gate.ENV_ARTIFACTS_BUCKET] = BUCKET
    env[purge.ENV_EVENTS_BUCKET] = EVENTS_BUCKET
    env[promote.ENV_CFN_ROLE_ARN] = ""
    for key, value in {
        **env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cfg.region,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=cfg.region)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=EVENTS_BUCKET)
        ddb = boto3.resource("dynamodb", region_name=cfg.region)
        for spec in contracts.ALL_TABLES:
            ddb.create_table(
                TableName=cfg.table_name(spec),
                KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        cfn = boto3.client("cloudformation", region_name=cfg.region)
        cfn.create_stack(
            StackName=env[promote.ENV_SERVING_STACK], TemplateBody=json.dumps(SERVING_TEMPLATE)
        )
        yield {"states": states, "s3": s3, "ddb": ddb, "cfn": cfn, "cfg": cfg, "fns": fns,
               "start_at": definition(template)["StartAt"]}


def task_handlers(pipeline) -> dict:
    """State name -> the handler of the function that task state invokes (by logical id)."""
    out = {}
    for name, st in pipeline["states"].items():
        resource = st.get("Resource", "")
        if st["Type"] == "Task" and resource.startswith("GETATT:"):
            handler = pipeline["fns"][resource[len("GETATT:") :]]["Properties"]["Handler"]
            out[name] = HANDLERS[handler]
    assert set(out) == {"PurgeDeletedUsers", "EvaluationGate", "LoadBatchOutput", "Promote",
                        "CheckPromotion"}
    return out


def train(pipeline, job: str, ndcg: float) -> str:
    """What jobs 1 and 2 leave behind: job 2's output.tar.gz and model.tar.gz."""
    manifest = {"model_version": job, "offline_metrics": {"two_stage": {"NDCG@10": ndcg}}}
    base = f"{contracts.MODELS_PREFIX}{job}/output/"
    pipeline["s3"].put_object(Bucket=BUCKET, Key=base + "output.tar.gz", Body=output_tar(manifest))
    pipeline["s3"].put_object(Bucket=BUCKET, Key=base + "model.tar.gz", Body=b"model")
    return f"s3://{BUCKET}/{base}model.tar.gz"


def test_first_run_promotes_then_a_worse_model_is_kept_out(pipeline):
    handlers = task_handlers(pipeline)
    cfg = pipeline["cfg"]
    first = train(pipeline, "job-1", 0.30)
    end, state = run(pipeline["states"], handlers, {"ranker": {"modelDataUrl": first}})
    assert end == "Promoted", state
    assert state["load"]["counts"] == {"users": 1, "items": 1, "recommendations": 1}
    stack = pipeline["cfn"].describe_stacks(StackName=f"{cfg.prefix}-serving")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "ModelDataUrl"
    ] == first
    assert artifacts.read_serving_record(pipeline["s3"], BUCKET)["modelDataUrl"] == first
    popular = (
        pipeline["ddb"]
        .Table(cfg.table_name(contracts.BATCH_RECOMMENDATIONS))
        .get_item(Key={"userId": contracts.POPULAR_USER_ID})["Item"]
    )
    assert popular["modelVersion"] == "job-1"

    worse = train(pipeline, "job-2", 0.10)
    end, state = run(pipeline["states"], handlers, {"ranker": {"modelDataUrl": worse}})
    assert end == "KeptServingModel"
    assert state["gate"]["promote"] is False and "worse" in state["gate"]["reason"]
    assert artifacts.read_serving_record(pipeline["s3"], BUCKET)["modelDataUrl"] == first


def test_a_rollback_input_serves_an_earlier_model_through_the_promotion_path(pipeline):
    """``recsys deploy rollback`` starts the machine with {"rollback": <history record>}: no
    training and no gate; the earlier run's batch output is loaded, the serving stack's parameter
    set back, and the serving record (and its history) names the earlier model again."""
    handlers = task_handlers(pipeline)
    cfg = pipeline["cfg"]
    first = train(pipeline, "job-1", 0.30)
    start_at = pipeline["start_at"]
    assert run(pipeline["states"], handlers, {"ranker": {"modelDataUrl": first}})[0] == "Promoted"
    second = train(pipeline, "job-2", 0.40)
    assert run(pipeline["states"], handlers, {"ranker": {"modelDataUrl": second}})[0] == "Promoted"
    history = artifacts.read_serving_history(pipeline["s3"], BUCKET)
    assert [r["modelDataUrl"] for r in history][-2:] == [first, second]

    # a new run starts at the Rollback? choice and goes the training way without the input
    assert pipeline["states"][start_at]["Type"] == "Choice"
    assert choose(pipeline["states"][start_at], {}) == "PrepareRun"
    from recsys_tools import rollback

    target = rollback.candidate(rollback.choose(history, history[-1], None))
    end, state = run(pipeline["states"], handlers, {"rollback": target}, start=start_at)
    assert end == "Promoted", state
    assert "retrieval" not in state and state["gate"]["candidate"]["modelDataUrl"] == first
    stack = pipeline["cfn"].describe_stacks(StackName=f"{cfg.prefix}-serving")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["ModelDataUrl"] == first
    assert artifacts.read_serving_record(pipeline["s3"], BUCKET)["modelDataUrl"] == first
    assert len(artifacts.read_serving_history(pipeline["s3"], BUCKET)) == len(history) + 1


def sdk_task(resource: str, bucket: str):
    """An ``aws-sdk:s3:<action>`` task run with boto3 against moto (the bucket renamed)."""
    action = resource.rsplit(":", 1)[1]
    method = "".join("_" + c.lower() if c.isupper() else c for c in action)

    def call(params: dict, _context) -> dict:
        return getattr(boto3.client("s3"), method)(**{**params, "Bucket": bucket})

    return call


@pytest.mark.parametrize(
    ("uploaded", "end"),
    [
        ((), "NoEvents"),
        ((contracts.EVENTS_PREFIX,), "NoItems"),
        ((contracts.ITEMS_PREFIX,), "NoEvents"),
        ((contracts.EVENTS_PREFIX, contracts.ITEMS_PREFIX), "TrainRetrieval"),
    ],
)
def test_an_empty_events_or_items_prefix_fails_before_any_training_job(pipeline, uploaded, end):
    states = pipeline["states"]
    assert states["PrepareRun"]["Next"] == "ListEvents"
    events_bucket = EVENTS_BUCKET
    pipeline["s3"].put_object(Bucket=events_bucket, Key="elsewhere/x.csv", Body=b"x")
    for prefix in uploaded:
        pipeline["s3"].put_object(Bucket=events_bucket, Key=f"{prefix}2026/part-0", Body=b"x")
    handlers = {
        name: sdk_task(st["Resource"], events_bucket)
        for name, st in states.items()
        if ":states:::aws-sdk:s3:" in st.get("Resource", "")
    }
    assert set(handlers) == {"ListEvents", "ListItems", "MarkDeletions", "MarkUsers"}
    handlers["PurgeDeletedUsers"] = task_handlers(pipeline)["PurgeDeletedUsers"]
    # stop where training would start: the interpreter knows no SageMaker
    states = {**states, "TrainRetrieval": {"Type": "Succeed"}}
    last, state = run(states, handlers, {}, start="ListEvents")
    assert last == end, state
    # the jobs' deletions channel is never an empty prefix: the marker is written before them
    marker = pipeline["s3"].list_objects_v2(Bucket=events_bucket, Prefix=contracts.DELETIONS_MARKER)
    if end == "TrainRetrieval":
        for key in (contracts.DELETIONS_MARKER, contracts.USERS_MARKER):  # the optional channels
            assert pipeline["s3"].get_object(Bucket=events_bucket, Key=key)["Body"].read() == b"{}"
    else:
        assert marker["KeyCount"] == 0
    if end == "TrainRetrieval":  # no user deleted: the purge read nothing
        assert state["purge"]["pendingUsers"] == 0 and state["purge"]["complete"] is True
    if end.startswith("No"):
        fail = states[end]
        assert fail["Type"] == "Fail" and fail["Error"] == end
        assert "no training job was started" in fail["Cause"]


def test_the_log_is_purged_of_deleted_users_after_the_marker_and_before_training(pipeline):
    states = pipeline["states"]
    assert states["MarkDeletions"]["Next"] == "MarkUsers"
    assert states["MarkUsers"]["Next"] == "PurgeDeletedUsers"
    assert states["PurgeDeletedUsers"]["Next"] == "TrainRetrieval"
    assert states["PurgeDeletedUsers"]["Catch"][0]["Next"] == "PipelineFailed"
    s3 = pipeline["s3"]
    now = time.time()
    rows = [{"user_id": u, "item_id": "a", "timestamp": now - 10, "received_at": now - 10,
             "event_id": u} for u in ("gone", "kept")]
    s3.put_object(Bucket=EVENTS_BUCKET, Key=f"{contracts.EVENTS_PREFIX}2026/12/01/10/part-0",
                  Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    s3.put_object(Bucket=EVENTS_BUCKET, Key=contracts.deletion_key("gone"),
                  Body=json.dumps({"userId": "gone", "deletedAt": now}).encode())
    handlers = task_handlers(pipeline)
    for name in ("MarkDeletions", "MarkUsers"):
        handlers[name] = sdk_task(states[name]["Resource"], EVENTS_BUCKET)
    states = {**states, "TrainRetrieval": {"Type": "Succeed"}}
    last, state = run(states, handlers, {}, start="MarkDeletions")
    assert last == "TrainRetrieval" and state["purge"]["rowsRemoved"] == 1, state
    log = s3.get_object(Bucket=EVENTS_BUCKET, Key=f"{contracts.EVENTS_PREFIX}2026/12/01/10/part-0")
    assert [json.loads(line)["user_id"] for line in log["Body"].read().decode().splitlines()] == ["kept"]


def test_training_jobs_retry_with_backoff_on_quota_and_throttling(pipeline):
    for name in ("TrainRetrieval", "TrainRanker"):
        (retry,) = pipeline["states"][name]["Retry"]
        assert "SageMaker.ResourceLimitExceededException" in retry["ErrorEquals"]
        assert "SageMaker.AmazonSageMakerException" in retry["ErrorEquals"]
        assert retry["BackoffRate"] >= 2 and retry["MaxAttempts"] >= 5
        assert retry["JitterStrategy"] == "FULL"
        # never retried: a job that ran and failed (States.TaskFailed) fails the run
        assert "States.TaskFailed" not in retry["ErrorEquals"]
        assert "States.ALL" not in retry["ErrorEquals"]
