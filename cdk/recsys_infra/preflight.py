"""Checks an AWS account and region before ``cdk deploy``: ``recsys deploy preflight``.

Each check takes boto3 clients and the environment's config and returns :class:`CheckResult`
values (``PASS``, ``WARN`` or ``FAIL``, a one-line detail and what to do). Nothing here creates,
changes or deletes anything: every call is a read (``sts:GetCallerIdentity``,
``ssm:GetParameter``, ``cloudformation:DescribeStacks``/``DescribeStackResources``,
``ecr:BatchGetImage``, ``servicequotas:ListServiceQuotas``/``ListAWSDefaultServiceQuotas``,
``lambda:GetAccountSettings``/``GetFunctionConcurrency``). A call the credentials may not make
is a ``WARN`` naming the action, never a crash.

The checks:

- ``credentials``: who the credentials are, and that they match ``account`` if cdk.json pins one;
- ``cdk-bootstrap``: the CDK bootstrap stack (``CDKToolkit``) and its version parameter
  (``/cdk-bootstrap/<qualifier>/version``) exist, at the version the app's synthesizer requires;
- ``image-training``/``image-inference``: the SageMaker scikit-learn image of each scope is
  known for the region (offline, the SageMaker SDK's table) and its tag exists in ECR;
- ``quota-training``/``quota-endpoint``: the Service Quotas "<type> for training job usage" and
  "<type> for endpoint usage" cover what the config needs;
- ``lambda-concurrency``: the account's concurrent executions leave room for the API functions'
  reserved concurrency (AWS keeps 100 unreserved).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from recsys_infra.config import ConfigError, EnvironmentConfig

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
CDK_TOOLKIT_STACK = "CDKToolkit"
DEFAULT_BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
SAGEMAKER_SERVICE_CODE = "sagemaker"
LAMBDA_SERVICE_CODE = "lambda"
LAMBDA_CONCURRENCY_QUOTA_CODE = "L-B99A9384"  # "Concurrent executions"
LAMBDA_MIN_UNRESERVED = 100  # Lambda refuses a reservation that leaves fewer unreserved
TRAINING_INSTANCES = 1  # each job runs on one instance; the two jobs run one after the other
ECR_MEDIA_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]
_DENIED = {
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
    "AuthorizationError", "DependencyAccessDeniedException",
}
_CREDENTIALS = {
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "SignatureDoesNotMatch",
}
_BAD_STACK_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED",
                     "UPDATE_ROLLBACK_FAILED", "DELETE_IN_PROGRESS", "DELETE_COMPLETE")


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    Attributes:
        check: Short name (``cdk-bootstrap``, ``quota-endpoint``, ...).
        status: ``PASS``, ``WARN`` or ``FAIL``.
        detail: What was found, one line.
        fix: What to do about a ``WARN`` or ``FAIL`` ("" when nothing).
    """

    check: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``STATUS  check  detail [-> fix]`` on one line."""
        text = f"{self.status:<4}  {self.check:<18}  {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text


@dataclass(frozen=True)
class BootstrapRequirement:
    """What the app's synthesizer needs of the bootstrap stack.

    Attributes:
        version: The minimum bootstrap stack version.
        ssm_parameter: The parameter holding the deployed version.
        source: Where the requirement was read (a manifest path, or the probe synth).
    """

    version: int
    ssm_parameter: str
    source: str

    @property
    def qualifier(self) -> str:
        """The bootstrap qualifier (``hnb659fds`` unless bootstrapped with another one)."""
        parts = self.ssm_parameter.strip("/").split("/")
        return parts[1] if len(parts) == 3 else "?"


@dataclass
class Clients:
    """The boto3 clients the checks use, all in the deployment's region."""

    sts: Any
    ssm: Any
    cloudformation: Any
    ecr: Any
    servicequotas: Any
    lambda_: Any

    @classmethod
    def from_session(cls, session: Any, region: str) -> Clients:
        """Build every client from a ``boto3.Session`` for ``region``."""
        def make(name: str) -> Any:
            return session.client(name, region_name=region)

        return cls(sts=make("sts"), ssm=make("ssm"), cloudformation=make("cloudformation"),
                   ecr=make("ecr"), servicequotas=make("service-quotas"), lambda_=make("lambda"))


# --- helpers ------------------------------------------------------------------------------

def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")).strip() or _code(exc)


def _cannot_check(check: str, action: str, exc: Exception, by_hand: str) -> CheckResult:
    """A WARN for a call that failed for a reason other than the answer (denied, throttled...)."""
    if isinstance(exc, ClientError) and _code(exc) in _DENIED:
        detail = f"cannot check: {action} denied for these credentials ({_code(exc)})"
        fix = f"allow {action}, or check by hand: {by_hand}"
    else:
        reason = f"{_code(exc)}: {_message(exc)}" if isinstance(exc, ClientError) else str(exc)
        detail = f"cannot check: {action} failed ({reason})"
        fix = f"rerun later, or check by hand: {by_hand}"
    return CheckResult(check, WARN, detail, fix)


def _bootstrap_command(account: str, region: str) -> str:
    return f"npx cdk bootstrap aws://{account}/{region}"


# --- the bootstrap requirement ------------------------------------------------------------

def bootstrap_requirement_from_manifest(manifest: Path) -> BootstrapRequirement:
    """The highest ``requiresBootstrapStackVersion`` of the stacks in a cloud assembly manifest.

    Args:
        manifest: ``cdk.out/manifest.json`` (written by ``cdk synth`` or ``make synth``).

    Raises:
        ConfigError: The file is missing, unreadable or lists no stack with a requirement.
    """
    try:
        artifacts = json.loads(Path(manifest).read_text())["artifacts"]
    except (OSError, ValueError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        raise ConfigError(f"{manifest}: not a readable cloud assembly manifest ({reason})") from exc
    found: List[Tuple[int, str]] = []
    for artifact in artifacts.values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        props = artifact.get("properties") or {}
        if "requiresBootstrapStackVersion" in props:
            found.append((int(props["requiresBootstrapStackVersion"]),
                          str(props.get("bootstrapStackVersionSsmParameter")
                              or DEFAULT_BOOTSTRAP_PARAMETER)))
    if not found:
        raise ConfigError(f"{manifest}: no stack states a bootstrap version requirement")
    version, parameter = max(found)
    return BootstrapRequirement(version, parameter, str(manifest))


def probe_bootstrap_requirement() -> BootstrapRequirement:
    """The requirement of the synthesizer the app's stacks use (``DefaultStackSynthesizer``),
    read from a one-resource stack synthesised in a temporary folder (no AWS call; ~10 s)."""
    from aws_cdk import App, CfnResource, DefaultStackSynthesizer, Stack

    with tempfile.TemporaryDirectory(prefix="recsys-preflight-") as out:
        app = App(outdir=out)
        stack = Stack(app, "BootstrapProbe", synthesizer=DefaultStackSynthesizer())
        CfnResource(stack, "Nothing", type="AWS::CloudFormation::WaitConditionHandle")
        app.synth()
        found = bootstrap_requirement_from_manifest(Path(out) / "manifest.json")
    return BootstrapRequirement(found.version, found.ssm_parameter,
                                "the app's synthesizer (DefaultStackSynthesizer)")


# --- checks -------------------------------------------------------------------------------

def check_credentials(sts: Any, cfg: EnvironmentConfig) -> Tuple[CheckResult, Optional[str]]:
    """Who the credentials are; FAIL without credentials or when cdk.json pins another account.

    Returns:
        The result and the account id (None when the credentials do not work).
    """
    name = "credentials"
    try:
        identity = sts.get_caller_identity()
    except NoCredentialsError:
        return CheckResult(name, FAIL, "no AWS credentials found",
                           "configure credentials (aws configure / AWS_PROFILE / --profile)"), None
    except ClientError as exc:
        if _code(exc) in _CREDENTIALS:
            return CheckResult(name, FAIL, f"the credentials are rejected ({_code(exc)})",
                               "refresh them (aws sso login / new keys)"), None
        # No other check can run without the account: this is a FAIL, not a WARN.
        return CheckResult(name, FAIL, f"cannot identify the account ({_code(exc)}: "
                           f"{_message(exc)})", "check with: aws sts get-caller-identity"), None
    except BotoCoreError as exc:
        return CheckResult(name, FAIL, f"cannot reach AWS STS ({exc})",
                           "check the network and the region"), None
    account, arn = str(identity["Account"]), str(identity.get("Arn", ""))
    if cfg.account and cfg.account != account:
        return CheckResult(name, FAIL, f"the credentials are for account {account} ({arn}), "
                           f"cdk.json pins {cfg.name}.account {cfg.account}",
                           "use credentials of the pinned account, or change account in cdk.json"), account
    return CheckResult(name, PASS, f"account {account} as {arn}"), account


def check_bootstrap(ssm: Any, cloudformation: Any, requirement: BootstrapRequirement,
                    account: str, region: str) -> CheckResult:
    """The CDK bootstrap stack and its version parameter, at least ``requirement.version``."""
    name = "cdk-bootstrap"
    command = _bootstrap_command(account, region)
    if requirement.qualifier != "hnb659fds":
        command += f" --qualifier {requirement.qualifier}"
    try:
        raw = ssm.get_parameter(Name=requirement.ssm_parameter)["Parameter"]["Value"]
        version: Optional[int] = int(raw)
    except ClientError as exc:
        if _code(exc) != "ParameterNotFound":
            return _cannot_check(name, "ssm:GetParameter", exc,
                                 f"aws ssm get-parameter --name {requirement.ssm_parameter}")
        version = None
    except ValueError:
        return CheckResult(name, FAIL, f"{requirement.ssm_parameter} holds {raw!r}, not a version",
                           f"bootstrap again: {command}")
    try:
        stacks = cloudformation.describe_stacks(StackName=CDK_TOOLKIT_STACK)["Stacks"]
        status: Optional[str] = str(stacks[0]["StackStatus"]) if stacks else None
    except ClientError as exc:
        if _code(exc) != "ValidationError" or "does not exist" not in _message(exc):
            return _cannot_check(name, "cloudformation:DescribeStacks", exc,
                                 f"aws cloudformation describe-stacks --stack-name {CDK_TOOLKIT_STACK}")
        status = None
    where = f"account {account} {region}"
    if version is None:
        return CheckResult(name, FAIL, f"{where} is not bootstrapped for the CDK "
                           f"({requirement.ssm_parameter} not found)", f"run {command}")
    if status is not None and status in _BAD_STACK_STATES:
        return CheckResult(name, FAIL, f"the {CDK_TOOLKIT_STACK} stack is {status}",
                           f"fix or delete it in the CloudFormation console, then run {command}")
    if version < requirement.version:
        return CheckResult(name, FAIL, f"bootstrap version {version} in {where} < "
                           f"{requirement.version} required by {requirement.source}",
                           f"upgrade it: {command}")
    found = f"bootstrap version {version} >= {requirement.version} required"
    if status is None:
        return CheckResult(name, WARN, f"{found}, but no stack named {CDK_TOOLKIT_STACK}",
                           "fine if you bootstrapped with --toolkit-stack-name; pass the same "
                           "name to cdk deploy")
    if status.endswith("_IN_PROGRESS"):
        return CheckResult(name, WARN, f"{found}; {CDK_TOOLKIT_STACK} is {status}",
                           "wait for the bootstrap update to finish")
    return CheckResult(name, PASS, f"{CDK_TOOLKIT_STACK} {status}, {found}")


def parse_image_uri(image_uri: str) -> Tuple[str, str, str]:
    """``(registry account, repository, tag)`` of an ECR image URI with a tag."""
    registry, _, rest = image_uri.partition("/")
    repository, _, tag = rest.partition(":")
    account = registry.split(".", 1)[0]
    if not (account.isdigit() and repository and tag):
        raise ValueError(f"{image_uri!r} is not an ECR image URI with a tag")
    return account, repository, tag


def check_images(ecr: Any, region: str,
                 image_uri: Optional[Callable[[str, str], str]] = None) -> List[CheckResult]:
    """The SageMaker scikit-learn image of both scopes: known offline, and its tag in ECR.

    Args:
        ecr: An ECR client in ``region``.
        region: The deployment's region.
        image_uri: ``(region, scope) -> URI`` (default :func:`recsys_infra.images.sklearn_image_uri`).
    """
    if image_uri is None:
        from recsys_infra.images import sklearn_image_uri

        image_uri = sklearn_image_uri
    results = []
    for scope in ("training", "inference"):
        name = f"image-{scope}"
        try:
            uri = image_uri(region, scope)
            account, repository, tag = parse_image_uri(uri)
        except (ConfigError, ValueError) as exc:
            results.append(CheckResult(name, FAIL, str(exc),
                                       "deploy to a region that has the SageMaker scikit-learn image"))
            continue
        by_hand = (f"aws ecr batch-get-image --registry-id {account} --repository-name {repository} "
                   f"--image-ids imageTag={tag} --region {region}")
        try:
            answer = ecr.batch_get_image(registryId=account, repositoryName=repository,
                                         imageIds=[{"imageTag": tag}],
                                         acceptedMediaTypes=ECR_MEDIA_TYPES)
        except ClientError as exc:
            if _code(exc) == "RepositoryNotFoundException":
                results.append(CheckResult(name, FAIL, f"{uri}: repository {repository} not found "
                                           f"in registry {account}",
                                           "choose a region where SageMaker publishes the image"))
            else:
                results.append(_cannot_check(name, "ecr:BatchGetImage", exc, by_hand))
            continue
        except BotoCoreError as exc:
            results.append(_cannot_check(name, "ecr:BatchGetImage", exc, by_hand))
            continue
        if answer.get("images"):
            results.append(CheckResult(name, PASS, f"{uri} is published"))
        else:
            failures = answer.get("failures") or [{}]
            reason = failures[0].get("failureCode") or "not returned"
            results.append(CheckResult(name, FAIL, f"{uri}: {reason}",
                                       "the framework version is not published in this region; "
                                       "choose another region"))
    return results


def find_quota(servicequotas: Any, service_code: str, quota_name: str) -> Optional[dict]:
    """The quota named ``quota_name`` of a service: the applied value, else the AWS default.

    ``ListServiceQuotas`` leaves out quotas whose applied value is not available, so a name it
    does not list is looked up in ``ListAWSDefaultServiceQuotas``. Returns None when neither
    lists it. ClientErrors propagate.
    """
    wanted = quota_name.strip().lower()
    for operation in ("list_service_quotas", "list_aws_default_service_quotas"):
        for page in servicequotas.get_paginator(operation).paginate(ServiceCode=service_code):
            for quota in page.get("Quotas", []):
                if str(quota.get("QuotaName", "")).strip().lower() == wanted:
                    return dict(quota, Source="applied" if operation == "list_service_quotas"
                                else "AWS default")
    return None


def endpoint_instances_needed(cfg: EnvironmentConfig) -> Tuple[int, int]:
    """``(needed, comfortable)`` endpoint instances.

    Needed: the autoscaling maximum, and twice the initial count (a blue/green update runs a
    second fleet beside the serving one). Comfortable: twice the maximum, so a model can roll
    out while the endpoint is scaled out.
    """
    ep = cfg.endpoint
    return max(ep.max_instances, 2 * ep.instance_count), 2 * ep.max_instances


def check_sagemaker_quota(servicequotas: Any, check: str, instance_type: str, usage: str,
                          needed: int, comfortable: Optional[int] = None,
                          why: str = "") -> CheckResult:
    """The Service Quota ``"<instance_type> for <usage>"`` of SageMaker against what is needed.

    Args:
        servicequotas: A Service Quotas client in the deployment's region.
        check: The check's name.
        instance_type: ``ml.m5.xlarge`` etc.
        usage: ``training job usage`` or ``endpoint usage``.
        needed: Below this the deployment or a run fails: FAIL.
        comfortable: Below this (and at least ``needed``) some operations fail: WARN.
        why: What ``needed`` is made of, for the message.
    """
    quota_name = f"{instance_type} for {usage}"
    by_hand = (f"aws service-quotas list-service-quotas --service-code {SAGEMAKER_SERVICE_CODE} "
               f"--query \"Quotas[?QuotaName=='{quota_name}']\"")
    try:
        quota = find_quota(servicequotas, SAGEMAKER_SERVICE_CODE, quota_name)
    except (ClientError, BotoCoreError) as exc:
        return _cannot_check(check, "servicequotas:ListServiceQuotas", exc, by_hand)
    if quota is None:
        return CheckResult(check, FAIL, f"SageMaker has no quota '{quota_name}' in this region",
                           f"check the instance type ({instance_type}) in cdk.json: it is not "
                           f"offered for {usage} here")
    value = int(float(quota.get("Value", 0)))
    code = quota.get("QuotaCode", "?")
    found = f"'{quota_name}' ({code}) is {value} ({quota['Source']})"
    request = (f"request an increase: aws service-quotas request-service-quota-increase "
               f"--service-code {SAGEMAKER_SERVICE_CODE} --quota-code {code} --desired-value ")
    suffix = f" ({why})" if why else ""
    if value < needed:
        return CheckResult(check, FAIL, f"{found} < {needed} needed{suffix}", f"{request}{needed}")
    if comfortable is not None and value < comfortable:
        return CheckResult(check, WARN, f"{found}: enough for {needed}{suffix}, but < {comfortable}"
                           " for a blue/green rollout while scaled out to the maximum",
                           f"{request}{comfortable}")
    return CheckResult(check, PASS, f"{found} >= {comfortable or needed} needed{suffix}")


def check_training_quota(servicequotas: Any, cfg: EnvironmentConfig) -> CheckResult:
    """``"<training.instanceType> for training job usage"`` >= one instance."""
    return check_sagemaker_quota(servicequotas, "quota-training", cfg.training.instance_type,
                                 "training job usage", TRAINING_INSTANCES,
                                 why="1 instance per job, the jobs run one after the other")


def check_endpoint_quota(servicequotas: Any, cfg: EnvironmentConfig) -> CheckResult:
    """``"<endpoint.instanceType> for endpoint usage"`` against :func:`endpoint_instances_needed`
    (PASS without a check in batch serving mode: no endpoint)."""
    if not cfg.realtime:
        return CheckResult("quota-endpoint", PASS, "not needed: servingMode is batch (no endpoint)")
    needed, comfortable = endpoint_instances_needed(cfg)
    ep = cfg.endpoint
    return check_sagemaker_quota(
        servicequotas, "quota-endpoint", ep.instance_type, "endpoint usage", needed, comfortable,
        why=f"maxInstances {ep.max_instances}, 2 x instanceCount {ep.instance_count} for blue/green")


def existing_reservations(cloudformation: Any, lambda_: Any, stack_name: str) -> int:
    """Reserved concurrency the stack's Lambda functions already hold (0 before the first
    deploy): a redeploy re-uses it, so it counts as available."""
    try:
        resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError as exc:
        if _code(exc) == "ValidationError" and "does not exist" in _message(exc):
            return 0
        raise
    total = 0
    for resource in resources:
        if resource.get("ResourceType") != "AWS::Lambda::Function":
            continue
        physical = resource.get("PhysicalResourceId")
        if not physical:
            continue
        try:
            answer = lambda_.get_function_concurrency(FunctionName=physical)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                continue
            raise
        total += int(answer.get("ReservedConcurrentExecutions") or 0)
    return total


def lambda_concurrency_result(cfg: EnvironmentConfig, functions: int, limit: int,
                              unreserved: int, already_ours: int = 0) -> CheckResult:
    """The verdict on Lambda concurrency from the account's numbers (pure).

    Args:
        cfg: The environment (``lambdas.reservedConcurrency``).
        functions: How many functions reserve it (the API functions).
        limit: The account's concurrent executions (``AccountLimit.ConcurrentExecutions``).
        unreserved: ``AccountLimit.UnreservedConcurrentExecutions``.
        already_ours: What this app's functions reserve today (a redeploy frees it first).
    """
    check = "lambda-concurrency"
    request = (f"aws service-quotas request-service-quota-increase --service-code "
               f"{LAMBDA_SERVICE_CODE} --quota-code {LAMBDA_CONCURRENCY_QUOTA_CODE} --desired-value ")
    per_function = cfg.lambdas.reserved_concurrency
    if per_function is None:
        if limit < LAMBDA_MIN_UNRESERVED:
            return CheckResult(check, WARN, f"no reservation; the account runs at most {limit} "
                               "concurrent executions, so the API throttles above that",
                               f"request an increase: {request}1000")
        return CheckResult(check, PASS, f"no reservation; the API shares the account's {limit} "
                           f"concurrent executions ({unreserved} unreserved)")
    wanted = functions * per_function
    available = unreserved + already_ours - LAMBDA_MIN_UNRESERVED
    detail = (f"{functions} functions x reservedConcurrency {per_function} = {wanted}; the account "
              f"has {limit} concurrent executions, {unreserved} unreserved"
              + (f" ({already_ours} already held by this app)" if already_ours else "")
              + f", and AWS keeps {LAMBDA_MIN_UNRESERVED} unreserved")
    if wanted > available:
        needed_limit = limit + (wanted - available)
        most = max(available, 0) // max(functions, 1)
        lower = f"to at most {most} or to null" if most >= 1 else "to null"
        return CheckResult(check, FAIL, f"{detail}: {max(available, 0)} can be reserved",
                           f"set lambdas.reservedConcurrency {lower} in cdk.json, or request "
                           f"an increase: {request}{needed_limit}")
    return CheckResult(check, PASS, f"{detail}: {available} can be reserved")


def check_lambda_concurrency(lambda_: Any, cloudformation: Any, cfg: EnvironmentConfig,
                             functions: Optional[int] = None) -> CheckResult:
    """Lambda's account concurrency against the API functions' reserved concurrency."""
    if functions is None:
        from recsys_lambdas import routes

        functions = len(routes.FUNCTIONS)
    check = "lambda-concurrency"
    try:
        limits = lambda_.get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        return _cannot_check(check, "lambda:GetAccountSettings", exc,
                             "aws lambda get-account-settings")
    try:
        ours = (existing_reservations(cloudformation, lambda_, cfg.stack_name("api"))
                if cfg.lambdas.reserved_concurrency is not None else 0)
    except (ClientError, BotoCoreError) as exc:
        return _cannot_check(check, "cloudformation:DescribeStackResources / "
                             "lambda:GetFunctionConcurrency", exc,
                             f"aws cloudformation describe-stack-resources --stack-name "
                             f"{cfg.stack_name('api')}")
    return lambda_concurrency_result(cfg, functions, int(limits.get("ConcurrentExecutions", 0)),
                                     int(limits.get("UnreservedConcurrentExecutions", 0)), ours)


def run_preflight(cfg: EnvironmentConfig, clients: Clients,
                  requirement: Union[BootstrapRequirement, Callable[[], BootstrapRequirement]],
                  region: Optional[str] = None) -> List[CheckResult]:
    """Every check, in order; stops after ``credentials`` when the credentials do not work.

    Args:
        cfg: The environment to deploy.
        clients: Clients in the deployment's region.
        requirement: What the synthesizer needs of the bootstrap stack, or a function that
            works it out (called only once the credentials work).
        region: The region checked (default ``cfg.region``).
    """
    region = region or cfg.region
    first, account = check_credentials(clients.sts, cfg)
    results = [first]
    if account is None:
        return results
    if callable(requirement):
        try:
            requirement = requirement()
        except Exception as exc:  # a probe synth that cannot run (no node, ...): say so, go on
            requirement = BootstrapRequirement(0, DEFAULT_BOOTSTRAP_PARAMETER,
                                               f"nothing (the requirement is unknown: {exc})")
    bootstrap = check_bootstrap(clients.ssm, clients.cloudformation, requirement, account, region)
    if bootstrap.status == PASS and requirement.version == 0:
        bootstrap = CheckResult(bootstrap.check, WARN, f"{bootstrap.detail}; {requirement.source}",
                                "run cdk synth and pass --cdk-out cdk.out")
    results.append(bootstrap)
    results.extend(check_images(clients.ecr, region))
    results.append(check_training_quota(clients.servicequotas, cfg))
    results.append(check_endpoint_quota(clients.servicequotas, cfg))
    results.append(check_lambda_concurrency(clients.lambda_, clients.cloudformation, cfg))
    return results


def exit_status(results: Iterable[CheckResult]) -> int:
    """1 when any check FAILed, else 0 (WARNs do not fail the preflight)."""
    return 1 if any(r.status == FAIL for r in results) else 0
