"""``recsys deploy rollback``: serve an earlier promoted model again.

Every promotion adds its record to ``models/serving-history/`` in the artifacts bucket
(``recsys_lambdas.pipeline.artifacts``). This command lists that history, picks the model to
return to (the one promoted before the serving one, or ``--to`` a model version or history key),
and starts the training state machine with ``{"rollback": <record>}``: the machine skips training
and the gate and runs the promotion path for that record (batch tables loaded from its run's
output, blue/green rollout with alarm rollback, ``models/serving.json`` rewritten), so the next
run's gate compares against the model that serves. It then waits for the execution's end.

Calls, with your credentials: ``sts:GetCallerIdentity``, ``s3:ListBucket`` and ``s3:GetObject``
on the artifacts bucket's ``models/`` prefix, ``states:StartExecution`` and
``states:DescribeExecution`` on ``<prefix>-training``.
Exit status: 0 when the rollback execution succeeded (or ``--list`` / ``--no-wait``), 1 when it
failed, 2 on bad input (unknown version, empty history, bad environment).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
POLL_S = 15.0


class RollbackError(ValueError):
    """Bad input for a rollback; the message says what and where."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``rollback`` on the ``deploy`` command's subparsers."""
    parser = commands.add_parser(
        "rollback", help="serve an earlier promoted model again",
        description=(
            "Serve an earlier promoted model again: lists models/serving-history/ in the "
            "artifacts bucket, picks the model promoted before the serving one (or --to), and "
            "starts the training state machine with {\"rollback\": <record>}, which loads that "
            "run's batch output, rolls the endpoint out blue/green and records it as serving."))
    parser.add_argument("--env", default=None,
                        help="environment in cdk.json (default: the context's recsys:env)")
    parser.add_argument("--region", default=None,
                        help="region (default: the environment's region in cdk.json)")
    parser.add_argument("--profile", default=None, help="AWS named profile (default: the usual chain)")
    parser.add_argument("--cdk-json", type=Path, default=None,
                        help="the cdk.json to read (default: the repository's)")
    parser.add_argument("--to", default=None, metavar="VERSION",
                        help="the model version (or history key) to serve (default: the model "
                             "promoted before the serving one)")
    parser.add_argument("--list", action="store_true", help="print the serving history and exit")
    parser.add_argument("--no-wait", action="store_true",
                        help="start the rollback and exit without waiting for its end")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the rollout (default 3600)")
    parser.set_defaults(func=run_rollback)
    return parser


def choose(history: Sequence[dict[str, Any]], serving: Optional[dict[str, Any]],
           to: Optional[str]) -> dict[str, Any]:
    """The history record to return to.

    Raises:
        RollbackError: an empty history, an unknown ``to``, or nothing earlier than the serving model.
    """
    if not history:
        raise RollbackError("the serving history (models/serving-history/) is empty: no model "
                            "was promoted since it exists, so there is nothing to roll back to")
    if to is not None:
        matches = [r for r in history if to in (r.get("modelVersion"), r.get("historyKey"))]
        if not matches:
            known = ", ".join(dict.fromkeys(str(r.get("modelVersion")) for r in history))
            raise RollbackError(f"--to {to!r}: no promoted model has that version or history key "
                                f"(promoted versions: {known})")
        return matches[-1]
    serving_url = (serving or {}).get("modelDataUrl")
    earlier = [r for r in history if r.get("modelDataUrl") != serving_url]
    if serving_url is not None:  # the newest promotion of another model, before the serving one's
        last_serving = max((n for n, r in enumerate(history) if r.get("modelDataUrl") == serving_url),
                           default=len(history))
        earlier = [r for r in history[:last_serving] if r.get("modelDataUrl") != serving_url]
    if not earlier:
        raise RollbackError("no model was promoted before the serving one: nothing to roll back to")
    return earlier[-1]


def candidate(record: dict[str, Any]) -> dict[str, Any]:
    """The state machine input's ``rollback`` object (the fields the promotion path reads).

    Raises:
        RollbackError: the record lacks ``modelDataUrl`` or ``outputDataUrl``.
    """
    for key in ("modelDataUrl", "outputDataUrl"):
        if not record.get(key):
            raise RollbackError(f"{record.get('historyKey', 'the history record')}: no {key}")
    return {key: record.get(key) for key in ("modelDataUrl", "outputDataUrl", "modelVersion", "manifest")
            if record.get(key) is not None}


def wait(sfn: Any, execution_arn: str, timeout: float, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll the execution until it ends (or ``timeout`` seconds); its last description."""
    deadline = clock() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or clock() >= deadline:
            return described
        sleep(POLL_S)


def run_rollback(args: argparse.Namespace, out: TextIO = sys.stdout, session: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """``recsys deploy rollback``; returns the exit status."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
    from recsys_infra import config
    from recsys_infra.shared import ARTIFACTS_BUCKET
    from recsys_lambdas.pipeline import artifacts

    def fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
        print(f"recsys deploy rollback: error: {message}", file=sys.stderr)
        return status

    try:
        context = (config.load_cdk_json_context(args.cdk_json) if args.cdk_json
                   else config.load_cdk_json_context())
        cfg = config.from_context(context, args.env)
        region = args.region or cfg.region
        cfg = dataclasses.replace(cfg, region=region)
        config.validate(cfg)
    except config.ConfigError as exc:
        return fail(str(exc))
    try:
        session = session or boto3.Session(profile_name=args.profile, region_name=region)
        account = session.client("sts", region_name=region).get_caller_identity()["Account"]
        bucket = cfg.bucket_name(ARTIFACTS_BUCKET, account)
        s3 = session.client("s3", region_name=region)
        history = artifacts.read_serving_history(s3, bucket)
        serving = artifacts.read_serving_record(s3, bucket)
    except (ProfileNotFound, BotoCoreError, ClientError, artifacts.ArtifactError) as exc:
        return fail(str(exc), EXIT_FAILED)
    serving_url = (serving or {}).get("modelDataUrl")
    if args.list:
        for record in history:
            mark = "*" if record.get("modelDataUrl") == serving_url else " "
            print(f"{mark} {record.get('promotedAt', '?'):<20}  {record.get('modelVersion', '?'):<24}  "
                  f"{record.get('modelDataUrl')}", file=out)
        print(f"{len(history)} promotion(s); * = serving", file=out)
        return 0
    try:
        target = choose(history, serving, args.to)
        rollback = candidate(target)
    except RollbackError as exc:
        return fail(str(exc))
    machine = f"arn:aws:states:{region}:{account}:stateMachine:{cfg.prefix}-training"
    name = "rollback-" + "".join(ch if ch.isalnum() or ch in "-_" else "-"
                                 for ch in str(rollback.get("modelVersion", "model")))[:40]
    name = f"{name}-{int(time.time())}"
    try:
        sfn = session.client("stepfunctions", region_name=region)
        started = sfn.start_execution(stateMachineArn=machine, name=name,
                                      input=json.dumps({"rollback": rollback}))
    except (BotoCoreError, ClientError) as exc:
        return fail(f"StartExecution {machine}: {exc}", EXIT_FAILED)
    print(f"rolling back to {rollback.get('modelVersion')} ({rollback['modelDataUrl']}): "
          f"execution {started['executionArn']}", file=out)
    if args.no_wait:
        return 0
    try:
        described = wait(sfn, started["executionArn"], args.timeout, sleep=sleep)
    except (BotoCoreError, ClientError) as exc:
        return fail(f"DescribeExecution: {exc}", EXIT_FAILED)
    status = described["status"]
    if status == "SUCCEEDED":
        print(f"rolled back: {rollback.get('modelVersion')} serves", file=out)
        return 0
    cause = described.get("cause") or described.get("error") or ""
    return fail(f"the rollback execution ended {status}" + (f": {cause}" if cause else "")
                + f" (see {started['executionArn']})", EXIT_FAILED)
