"""IAM checked the way AWS evaluates it (see docs/DEPLOY.md, "IAM: how the policies are checked").

moto enforces no IAM, so the Lambda tests passing says nothing about the synthesized roles. Here
every AWS call the Lambda code made during ``tests/lambdas`` (recorded by ``tests/iamcheck``),
and every call AWS services make on the components' behalf (declared from the templates), is
evaluated against the synthesized role policies with a real policy evaluator: Allow/Deny,
wildcards, conditions, bucket and key policies.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Tuple

import pytest
from iamcheck import declared
from iamcheck.actions import Unmapped, requests_for
from iamcheck.check import denials, evaluate, fmt, with_kms
from iamcheck.evaluator import Request
from iamcheck.recorder import RECORDER, Call
from iamcheck.templates import Environment, Role, environments

GATE = "recsys_lambdas.pipeline.gate"
LOAD = "recsys_lambdas.pipeline.load"
PROMOTE = "recsys_lambdas.pipeline.promote"
PURGE = "recsys_lambdas.pipeline.purge"
# Stack names the promote tests use on purpose for stacks that do not exist or are not serving
# stacks: AWS denies those calls (the policy names the serving stack only), as it should.
NOT_DEPLOYED = {"nope", "not-serving"}
# handler module -> the test file whose calls must have been recorded when it ran
COVERAGE = {
    GATE: "tests/lambdas/pipeline/test_pipeline_gate.py",
    LOAD: "tests/lambdas/pipeline/test_pipeline_load.py",
    PROMOTE: "tests/lambdas/pipeline/test_pipeline_promote.py",
    PURGE: "tests/lambdas/pipeline/test_pipeline_purge.py",
    "recsys_lambdas.api.recommendations": "tests/lambdas/test_recommendations.py",
    "recsys_lambdas.api.events": "tests/lambdas/test_events.py",
}


@pytest.fixture(scope="module")
def envs(synth) -> Dict[str, Environment]:
    """Both synthesized environments; the serving stack deployed with the artifact a promotion
    passes (the ranker job's model.tar.gz), so its conditional endpoint resources exist."""
    cfgs = {"realtime": synth.realtime_cfg, "batch": synth.batch_cfg}
    out = environments(synth.templates, {k: c.prefix for k, c in cfgs.items()},
                       synth.realtime_cfg.region)
    for name, env in list(out.items()):
        serving = cfgs[name].stack_name("serving")
        if serving in env.templates:
            url = declared.model_data_url(env)
            out[name] = Environment(name, env.templates, env.region,
                                    {serving: {"ModelDataUrl": url, "ModelVersion": "v1"}})
    return out


def function(env: Environment, module: str):
    assert module in env.functions, f"[{env.name}] no Lambda function has a handler in {module}"
    return env.functions[module]


# --- what AWS services do on the components' behalf -------------------------------------------


def test_state_machine_may_run_its_tasks_and_the_training_jobs_may_read_and_write(envs):
    lines: List[str] = []
    for env in envs.values():
        items = [(d.role, d.request) for d in declared.state_machine_requests(env)]
        actions = {r.action for _, r in items}
        assert {"sagemaker:CreateTrainingJob", "iam:PassRole", "lambda:InvokeFunction",
                "s3:ListBucket", "s3:GetObject", "s3:PutObject"} <= actions, actions
        lines += denials(env, items)
    assert not lines, fmt(lines)


def test_batch_inference_may_run_its_transform_and_only_in_its_area(envs):
    """The batch inference state machine's tasks and its transform jobs' model role (declared
    from the definition, with the input and output under batch-inference/), and no more."""
    for env in envs.values():
        items = [(d.role, d.request) for d in declared.state_machine_requests(env)]
        states = ("'Transform'", "'CreateBatchModel'", "'DeleteBatchModel", "'ReadServingRecord'")
        mine = [(role, r) for role, r in items if any(state in r.why for state in states)]
        actions = {r.action for _, r in mine}
        assert {"sagemaker:CreateTransformJob", "sagemaker:CreateModel", "sagemaker:DeleteModel",
                "iam:PassRole", "s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= actions, actions
        assert not denials(env, mine), fmt(denials(env, mine))
        # the model role writes batch-inference/ only: not the models the gate and promote read
        ((role, put),) = [(role, r) for role, r in mine if r.action == "s3:PutObject"]
        elsewhere = Request(put.action, put.resource.replace("/batch-inference/", "/models/"), put.context,
                            "the batch model role writing under models/")
        assert denials(env, [(role, elsewhere)]), f"[{env.name}] the batch model role may write models/"


def test_serving_deploy_role_can_roll_out_a_model_with_autoscaling(envs):
    env = envs["realtime"]
    deploy = env.role_by_arn(function(env, PROMOTE).environment["SERVING_DEPLOY_ROLE_ARN"])
    items = [(d.role, d.request) for d in declared.serving_requests(env, deploy)]
    actions = {r.action for _, r in items}
    assert {"sagemaker:CreateEndpoint", "application-autoscaling:RegisterScalableTarget",
            "sagemaker:UpdateEndpointWeightsAndCapacities", "cloudwatch:PutMetricAlarm",
            "s3:GetObject"} <= actions, actions
    lines = denials(env, items)
    assert not lines, fmt(lines)


def test_promote_may_update_the_serving_stack_only_through_the_deploy_role(envs):
    """An UpdateStack without RoleARN runs as the stack's previous role (whoever deployed it):
    the promote function must be denied it, and any role but the deploy role."""
    env = envs["realtime"]
    promote = function(env, PROMOTE)
    deploy = promote.environment["SERVING_DEPLOY_ROLE_ARN"]
    stack = (f"arn:aws:cloudformation:{env.region}:{env.account}:stack/"
             f"{promote.environment['SERVING_STACK_NAME']}/00000000-0000-4000-8000-000000000000")
    other = f"arn:aws:iam::{env.account}:role/cdk-hnb659fds-cfn-exec-role-{env.account}-{env.region}"
    allowed = evaluate(env, promote.role, Request("cloudformation:UpdateStack", stack,
                                                  {"cloudformation:RoleArn": deploy}))
    assert allowed.allowed, allowed.reason
    for context, what in (({}, "without RoleARN"), ({"cloudformation:RoleArn": other}, "as another role")):
        decision = evaluate(env, promote.role, Request("cloudformation:UpdateStack", stack, context))
        assert not decision.allowed, f"promote may call UpdateStack {what}: {decision.reason}"


def test_every_pass_role_names_the_service_it_passes_to(envs):
    """A PassRole grant without iam:PassedToService lets the holder hand the role to any service."""
    lines = []
    for env in envs.values():
        for role in env.roles.values():
            for doc in role.policies:
                for st in doc.get("Statement", []):
                    probe = Request("iam:PassRole", "*")
                    if st.get("Effect") != "Allow" or not _mentions(st, probe.action):
                        continue
                    for resource in _listify(st.get("Resource", [])):
                        request = Request("iam:PassRole", resource.replace("*", "x"),
                                          {"iam:PassedToService": "ec2.amazonaws.com"})
                        if evaluate(env, role, request).allowed:
                            lines.append(f"[{env.name}] {role.logical_id} may pass {resource} "
                                         "to any service (no iam:PassedToService condition)")
    assert not lines, "\n".join(lines)


def _listify(value):
    return value if isinstance(value, list) else [value]


def _mentions(statement, action: str) -> bool:
    from iamcheck.evaluator import Statement

    return "Action" in statement and Statement(statement)._check_element_matches("Action", action)


@pytest.mark.parametrize("module", [GATE, LOAD])
def test_pipeline_steps_see_a_missing_artifact_as_not_found(envs, module):
    """S3 answers a missing key with 404 only to callers allowed s3:ListBucket on the bucket; the
    gate reads models/serving.json, absent until the first promotion (NoSuchKey -> "nothing
    serves"), and both steps name a missing output.tar.gz. Without ListBucket both see 403."""
    lines = []
    for env in envs.values():
        fn = function(env, module)
        bucket = fn.environment["ARTIFACTS_BUCKET"]
        keys = ["models/serving.json"] if module == GATE else []
        keys.append("models/recsys-run/output/output.tar.gz")
        items: List[Tuple[Role, Request]] = [
            (fn.role, Request("s3:ListBucket", f"arn:aws:s3:::{bucket}",
                              {"s3:prefix": key, "aws:SecureTransport": "true"},
                              f"{module}: GetObject {key} when it is missing"))
            for key in keys]
        lines += denials(env, items)
        # and the grant stays scoped: no listing outside models/
        other = Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": "events/"})
        assert not evaluate(env, fn.role, other).allowed, f"{module} may list events/"
    assert not lines, fmt(lines)


# --- what the Lambda code calls (recorded in tests/lambdas) ---------------------------------


class _Skip(Exception):
    """The call cannot be made in this environment (its resource is not deployed there)."""


def _bind(call: Call, fn, env: Environment):
    by_value = {v: k for k, v in call.env.items() if v}

    def bind(kind: str, name: str) -> str:
        var = by_value.get(name)
        if var is None:
            if name in NOT_DEPLOYED:
                raise _Skip(name)
            raise LookupError(f"{call}: {kind} {name!r} came from no resource-naming environment "
                              "variable; set it in the test's environment (see tests/iamcheck/recorder.py)")
        deployed = fn.environment.get(var)
        if deployed is None:
            raise LookupError(f"[{env.name}] {call}: the function's environment has no {var}")
        if not deployed:
            raise _Skip(var)
        return deployed

    return bind


def test_every_recorded_call_is_allowed_by_the_synthesized_role(envs):
    """Each call is checked in every environment whose function has the call's handler module
    and deploys the resources it names (a realtime-mode call only where SERVING_MODE matches).
    Calls whose outermost recsys_lambdas frame is not a handler module (a test calling a shared
    helper directly) belong to no function and are not checked."""
    if not RECORDER.calls:
        pytest.skip("no AWS calls recorded: run together with tests/lambdas "
                    "(pytest tests/lambdas tests/infra/test_iam_policies.py)")
    checked: Dict[str, int] = defaultdict(int)
    items: Dict[str, List[Tuple[Role, Request]]] = defaultdict(list)
    problems: List[str] = []
    for call in RECORDER.calls:
        evaluated = False
        for env in envs.values():
            fn = env.functions.get(call.module)
            if fn is None:
                continue
            mode = call.env.get("SERVING_MODE")
            if mode and fn.environment.get("SERVING_MODE", mode) != mode:
                continue
            try:
                requests = requests_for(call.service, call.operation, call.params, call.error or "",
                                        _bind(call, fn, env), env.region, env.account, str(call))
            except _Skip:
                continue
            except (Unmapped, LookupError) as exc:
                problems.append(str(exc))
                break
            items[env.name] += [(fn.role, r) for r in with_kms(env, requests)]
            evaluated = True
        if evaluated:
            checked[call.module] += 1
    assert not problems, "\n".join(sorted(set(problems)))
    lines = [line for name, pairs in items.items() for line in denials(envs[name], pairs)]
    assert not lines, fmt(lines)
    # every component whose tests ran was seen making calls
    missing = [m for m, path in COVERAGE.items() if path in RECORDER.collected and not checked[m]]
    assert not missing, f"no recorded AWS calls from {missing}: is the recorder installed?"
