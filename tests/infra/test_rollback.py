"""``recsys deploy rollback``: the serving history, the choice of model, and the execution it
starts (moto S3, STS and Step Functions; botocore's Stubber for the execution's end, which moto
does not run)."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from recsys_infra import config
from recsys_infra.shared import ARTIFACTS_BUCKET
from recsys_lambdas.pipeline import artifacts, promote
from recsys_tools import rollback

REGION = "us-east-1"


def record(n: int) -> dict[str, Any]:
    base = f"s3://bucket/models/recsys-dev-ranker-run{n}/output/"
    return {"modelDataUrl": base + "model.tar.gz", "outputDataUrl": base + "output.tar.gz",
            "modelVersion": f"v{n}", "manifest": {"model_version": f"v{n}"}}


@pytest.fixture
def aws(monkeypatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        account = session.client("sts").get_caller_identity()["Account"]
        cfg = config.from_context(config.load_cdk_json_context(), "dev")
        bucket = cfg.bucket_name(ARTIFACTS_BUCKET, account)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=bucket)
        sfn = session.client("stepfunctions")
        role = f"arn:aws:iam::{account}:role/sfn"
        machine = sfn.create_state_machine(name=f"{cfg.prefix}-training", roleArn=role, definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))["stateMachineArn"]
        yield {"session": session, "s3": s3, "bucket": bucket, "sfn": sfn, "machine": machine}


def promote_all(aws, numbers) -> None:
    """Promotions as the pipeline records them (promote.record_serving), one minute apart."""
    for minute, n in enumerate(numbers):
        promote.record_serving(aws["s3"], aws["bucket"], record(n), "realtime",
                               dt.datetime(2026, 12, 1, 10, minute, tzinfo=dt.timezone.utc))


def args(**kw) -> argparse.Namespace:
    base = {"env": "dev", "region": None, "profile": None, "cdk_json": None, "to": None,
            "list": False, "no_wait": True, "timeout": 60.0}
    return argparse.Namespace(**{**base, **kw})


def test_every_promotion_is_kept_in_the_serving_history(aws):
    promote_all(aws, [1, 2, 1, 3])
    history = artifacts.read_serving_history(aws["s3"], aws["bucket"])
    assert [r["modelVersion"] for r in history] == ["v1", "v2", "v1", "v3"]
    assert re.fullmatch(r"models/serving-history/20261201T100000Z-\d{19}-v1\.json", history[0]["historyKey"])
    assert artifacts.read_serving_record(aws["s3"], aws["bucket"])["modelVersion"] == "v3"


def test_two_promotions_in_one_second_are_both_kept_in_order(aws):
    same_second = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
    for n in (1, 2, 1):
        promote.record_serving(aws["s3"], aws["bucket"], record(n), "realtime", same_second)
    history = artifacts.read_serving_history(aws["s3"], aws["bucket"])
    assert [r["modelVersion"] for r in history] == ["v1", "v2", "v1"]


def test_the_default_target_is_the_model_promoted_before_the_serving_one():
    history = [dict(record(n), historyKey=f"k{i}") for i, n in enumerate([1, 2, 1, 3])]
    assert rollback.choose(history, history[-1], None)["modelVersion"] == "v1"
    assert rollback.choose(history, history[1], None)["historyKey"] == "k0"  # after a rollback to v2
    assert rollback.choose(history, history[-1], "v2")["modelVersion"] == "v2"
    assert rollback.choose(history, history[-1], "k0")["historyKey"] == "k0"
    with pytest.raises(rollback.RollbackError, match=r"--to 'v9'.*v1, v2, v3"):
        rollback.choose(history, history[-1], "v9")
    with pytest.raises(rollback.RollbackError, match="nothing to roll back to"):
        rollback.choose(history[:1], history[0], None)
    with pytest.raises(rollback.RollbackError, match="is empty"):
        rollback.choose([], None, None)


def test_rollback_starts_the_training_machine_with_the_earlier_record(aws):
    promote_all(aws, [1, 2])
    out = io.StringIO()
    assert rollback.run_rollback(args(), out=out, session=aws["session"]) == 0
    (execution,) = aws["sfn"].list_executions(stateMachineArn=aws["machine"])["executions"]
    started = json.loads(aws["sfn"].describe_execution(executionArn=execution["executionArn"])["input"])
    assert started == {"rollback": record(1)}
    assert execution["name"].startswith("rollback-v1-")
    assert "rolling back to v1" in out.getvalue()


def test_list_marks_the_serving_model(aws):
    promote_all(aws, [1, 2])
    out = io.StringIO()
    assert rollback.run_rollback(args(list=True), out=out, session=aws["session"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  ") and "v1" in lines[0]
    assert lines[1].startswith("* ") and "v2" in lines[1]
    assert lines[-1] == "2 promotion(s); * = serving"


def test_bad_input_is_one_line_and_exit_2(aws, capsys):
    assert rollback.run_rollback(args(), session=aws["session"]) == rollback.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().count("\n") == 0
    promote_all(aws, [1, 2])
    assert rollback.run_rollback(args(to="v7"), session=aws["session"]) == rollback.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("recsys deploy rollback: error: --to 'v7'") and err.count("\n") == 1
    assert rollback.run_rollback(args(env="nope"), session=aws["session"]) == rollback.EXIT_BAD_INPUT
    assert not aws["sfn"].list_executions(stateMachineArn=aws["machine"])["executions"]


class _Session:
    """moto for S3 and STS, a stubbed Step Functions client (moto does not run executions)."""

    def __init__(self, session, sfn) -> None:
        self.session, self.sfn = session, sfn

    def client(self, name: str, **kw):
        return self.sfn if name == "stepfunctions" else self.session.client(name, **kw)


@pytest.mark.parametrize("ending, status", [("SUCCEEDED", 0), ("FAILED", rollback.EXIT_FAILED)])
def test_rollback_waits_for_the_execution_and_reports_its_end(aws, capsys, ending, status):
    promote_all(aws, [1, 2])
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = aws["machine"].replace(":stateMachine:", ":execution:") + ":rollback-v1-1"
    described = {"executionArn": arn, "stateMachineArn": aws["machine"], "startDate": dt.datetime(2026, 12, 1)}
    with Stubber(sfn) as stub:
        stub.add_response("start_execution", {"executionArn": arn, "startDate": dt.datetime(2026, 12, 1)})
        stub.add_response("describe_execution", {**described, "status": "RUNNING"})
        end = {**described, "status": ending}
        if ending == "FAILED":
            end["cause"] = "serving stack recsys-dev-serving is UPDATE_ROLLBACK_COMPLETE"
        stub.add_response("describe_execution", end)
        sleeps: list = []
        code = rollback.run_rollback(args(no_wait=False), out=io.StringIO(),
                                     session=_Session(aws["session"], sfn), sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert code == status and sleeps == [rollback.POLL_S]
    if ending == "FAILED":
        assert "ended FAILED: serving stack recsys-dev-serving is UPDATE_ROLLBACK_COMPLETE" in capsys.readouterr().err
