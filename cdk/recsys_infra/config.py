"""Deployment configuration: the ``cdk.json`` context read into one typed, frozen dataclass per
environment.

``cdk.json`` holds ``"recsys:environments"`` (one block per environment: ``dev``, ``prod``, ...)
and ``"recsys:env"`` (the one to synthesise; override with ``cdk synth -c recsys:env=prod``).
Every value is checked here, so a typo in ``cdk.json`` fails ``cdk synth`` with a message naming
the key instead of deploying something unexpected. Nothing here calls AWS: synth works offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from recsys_lambdas import contracts
from recsys_lambdas.settings import MIN_EVENTS_TIMEOUT_S

ENV_CONTEXT_KEY = "recsys:env"
ENVIRONMENTS_CONTEXT_KEY = "recsys:environments"
API_AUTH_MODES = ("iam", "iam+api_key")
REMOVAL_POLICIES = ("retain", "destroy")
# "kms": one customer managed key (rotation on) for the data stores, the event stream, training
# volumes/outputs and the endpoint; "aws-managed": S3-managed and AWS owned/managed keys.
ENCRYPTION_MODES = ("kms", "aws-managed")
REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = REPO_ROOT / "cdk.json"

# Resource names are built from the prefix (tables, stacks, endpoint, training jobs). SageMaker
# training job names are at most 63 characters and carry a 36-character run id, so the prefix
# stays short.
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_SCHEDULE_RE = re.compile(r"^(rate|cron)\(.+\)$")
API_GATEWAY_TIMEOUT_S = 29
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)


class ConfigError(ValueError):
    """``cdk.json`` context is missing a value or holds a bad one; the message names the key."""


@dataclass(frozen=True)
class EndpointConfig:
    """The SageMaker real-time endpoint (ignored in batch serving mode)."""

    instance_type: str = "ml.c5.large"
    instance_count: int = 2
    min_instances: int = 2
    max_instances: int = 4
    target_invocations_per_instance: int = 600
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60
    latency_alarm_ms: int = 300
    errors_5xx_alarm_threshold: int = 5
    blue_green_wait_s: int = 300
    invoke_timeout_s: float = 2.0


@dataclass(frozen=True)
class TrainingConfig:
    """The offline pipeline: two SageMaker training jobs, the gate and the schedule."""

    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = 30
    max_runtime_minutes: int = 120
    schedule: str = "rate(1 day)"  # EventBridge expression; "" disables the schedule
    ndcg_tolerance: float = 0.005  # promote unless NDCG@10 drops by more than this
    retrieval_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    ranker_hyperparameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiConfig:
    """The API Gateway REST API."""

    auth: str = "iam"  # "iam" or "iam+api_key" (an API key on top of SigV4, never instead)
    throttle_rate_limit: float = 100.0
    throttle_burst_limit: int = 200
    api_key_quota_per_day: int = 100_000
    errors_5xx_alarm_threshold: int = 5  # 5xx answers per 5 minutes
    latency_alarm_ms: int = 3000  # p99 over 5 minutes


@dataclass(frozen=True)
class LambdaConfig:
    """Settings shared by the API Lambda functions."""

    memory_mb: int = 512
    timeout_s: int = contracts.API_FUNCTION_TIMEOUT_S  # the handlers' budgets assume it (one source)
    reserved_concurrency: Optional[int] = 20  # None: no reservation (accounts with a low quota)
    log_retention_days: int = 30
    powertools_layer_version: int = 27


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything one deployment (one environment) needs, validated."""

    name: str
    region: str
    prefix: str
    account: Optional[str] = None
    serving_mode: str = "realtime"
    removal_policy: str = "retain"
    encryption: str = "kms"
    alarm_email: str = ""
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    lambdas: LambdaConfig = field(default_factory=LambdaConfig)
    # Named filters, addressed by a request's filterArn (.../filter/<name>); the API functions
    # get them as NAMED_FILTERS (recsys_lambdas.settings.named_filters).
    filters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def named_filters_json(self) -> str:
        """The ``NAMED_FILTERS`` value of the API functions ("" when there are none)."""
        return json.dumps(dict(self.filters), sort_keys=True, separators=(",", ":")) if self.filters else ""

    @property
    def realtime(self) -> bool:
        """True when a SageMaker endpoint is deployed."""
        return self.serving_mode == "realtime"

    @property
    def kms(self) -> bool:
        """True when the data is encrypted with the deployment's customer managed key."""
        return self.encryption == "kms"

    @property
    def data_key_alias(self) -> str:
        """The data key's alias (``alias/<prefix>-data``): how the other stacks address it."""
        return f"alias/{self.prefix}-data"

    @property
    def endpoint_name(self) -> str:
        """The endpoint's fixed name ("" in batch mode): the API reads it before any model exists."""
        return f"{self.prefix}-endpoint" if self.realtime else ""

    def stack_name(self, concern: str) -> str:
        """The CloudFormation stack name of one concern (``storage``, ``serving``, ...)."""
        return f"{self.prefix}-{concern}"

    def bucket_name(self, purpose: str, account: str) -> str:
        """A globally unique bucket name (``account`` may be the ``AWS::AccountId`` token).

        Names are fixed so other stacks address the storage by name, without cross-stack
        exports that would pin the storage stack.
        """
        return f"{self.prefix}-{purpose}-{account}-{self.region}"

    @property
    def delivery_stream_name(self) -> str:
        """The Firehose delivery stream of accepted events."""
        return f"{self.prefix}-events"

    @property
    def alarm_topic_name(self) -> str:
        """The SNS topic every alarm notifies."""
        return f"{self.prefix}-alarms"

    def table_name(self, spec: contracts.TableSpec) -> str:
        """The physical DynamoDB table name of a contract table."""
        return contracts.table_name(self.prefix, spec)


# --- parsing ------------------------------------------------------------------------------

_SECTIONS: dict[str, tuple[type, dict[str, str]]] = {
    "endpoint": (
        EndpointConfig,
        {
            "instanceType": "instance_type",
            "instanceCount": "instance_count",
            "minInstances": "min_instances",
            "maxInstances": "max_instances",
            "targetInvocationsPerInstance": "target_invocations_per_instance",
            "scaleInCooldownSeconds": "scale_in_cooldown_s",
            "scaleOutCooldownSeconds": "scale_out_cooldown_s",
            "latencyAlarmMs": "latency_alarm_ms",
            "errors5xxAlarmThreshold": "errors_5xx_alarm_threshold",
            "blueGreenWaitSeconds": "blue_green_wait_s",
            "invokeTimeoutSeconds": "invoke_timeout_s",
        },
    ),
    "training": (
        TrainingConfig,
        {
            "instanceType": "instance_type",
            "volumeSizeGb": "volume_size_gb",
            "maxRuntimeMinutes": "max_runtime_minutes",
            "schedule": "schedule",
            "ndcgTolerance": "ndcg_tolerance",
            "retrievalHyperparameters": "retrieval_hyperparameters",
            "rankerHyperparameters": "ranker_hyperparameters",
        },
    ),
    "api": (
        ApiConfig,
        {
            "auth": "auth",
            "throttleRateLimit": "throttle_rate_limit",
            "throttleBurstLimit": "throttle_burst_limit",
            "apiKeyQuotaPerDay": "api_key_quota_per_day",
            "errors5xxAlarmThreshold": "errors_5xx_alarm_threshold",
            "latencyAlarmMs": "latency_alarm_ms",
        },
    ),
    "lambdas": (
        LambdaConfig,
        {
            "memoryMb": "memory_mb",
            "timeoutSeconds": "timeout_s",
            "reservedConcurrency": "reserved_concurrency",
            "logRetentionDays": "log_retention_days",
            "powertoolsLayerVersion": "powertools_layer_version",
        },
    ),
}
_TOP_LEVEL = {
    "region": "region",
    "prefix": "prefix",
    "account": "account",
    "servingMode": "serving_mode",
    "removalPolicy": "removal_policy",
    "encryption": "encryption",
    "alarmEmail": "alarm_email",
}


def _check_type(where: str, value: Any, default: Any) -> Any:
    """Coerce ``value`` to the type of the dataclass default, or raise naming ``where``."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    return value


def _build(cls: type, raw: Mapping[str, Any], keys: Mapping[str, str], where: str) -> Any:
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(keys)}")
    defaults = cls()
    kwargs = {
        attr: _check_type(f"{where}.{key}", raw[key], getattr(defaults, attr))
        for key, attr in keys.items()
        if key in raw
    }
    return cls(**kwargs)


def parse_environment(name: str, raw: Mapping[str, Any]) -> EnvironmentConfig:
    """Build and validate one environment's config from its ``cdk.json`` block.

    Args:
        name: The environment name (the key under ``recsys:environments``).
        raw: The block itself (camelCase keys, as written in ``cdk.json``).

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: A key is unknown, missing or has a bad value; the message names it.
    """
    where = f"cdk.json context {ENVIRONMENTS_CONTEXT_KEY}.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object, got {raw!r}")
    unknown = sorted(set(raw) - set(_TOP_LEVEL) - set(_SECTIONS) - {"filters"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; known keys: "
            f"{sorted([*_TOP_LEVEL, *_SECTIONS, 'filters'])}"
        )
    for required in ("region", "prefix"):
        if not raw.get(required):
            raise ConfigError(f"{where}.{required} is required (synth runs offline, no lookups)")
    sections = {
        section: _build(cls, raw.get(section) or {}, keys, f"{where}.{section}")
        for section, (cls, keys) in _SECTIONS.items()
    }
    top = {
        attr: _check_type(f"{where}.{key}", raw[key], "")
        for key, attr in _TOP_LEVEL.items()
        if key in raw and raw[key] is not None
    }
    filters = _filters(raw.get("filters"), f"{where}.filters")
    cfg = EnvironmentConfig(name=name, **top, **sections, filters=filters)
    validate(cfg, where)
    return cfg


# Lambda allows 4 KB of environment variables per function in all: the filters get half.
MAX_NAMED_FILTERS_BYTES = 2048


def _filters(raw: Any, where: str) -> dict[str, Any]:
    """The ``filters`` block: ``{name: filter}``, checked as the API functions will read it."""
    from recsys_lambdas.settings import named_filters

    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object of named filters, got {raw!r}")
    for name in raw:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", str(name)):
            raise ConfigError(f"{where}: filter name {name!r} must be 1-63 letters, digits, '.', '_' or '-'")
    text = json.dumps(dict(raw), sort_keys=True, separators=(",", ":"))
    try:
        named_filters(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if len(text.encode()) > MAX_NAMED_FILTERS_BYTES:
        raise ConfigError(f"{where}: {len(text.encode())} bytes as JSON, more than the "
                          f"{MAX_NAMED_FILTERS_BYTES} the API functions' environment leaves for them")
    return dict(raw)


def validate(cfg: EnvironmentConfig, where: str = "config") -> None:
    """Check cross-field rules; raise ConfigError naming the offending key."""
    if not _REGION_RE.match(cfg.region):
        raise ConfigError(f"{where}.region: {cfg.region!r} is not an AWS region name")
    if not _PREFIX_RE.match(cfg.prefix):
        raise ConfigError(
            f"{where}.prefix: {cfg.prefix!r} must be 3-16 characters of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    if cfg.account is not None and not _ACCOUNT_RE.match(cfg.account):
        raise ConfigError(f"{where}.account: {cfg.account!r} is not a 12-digit account id")
    if cfg.serving_mode not in contracts.SERVING_MODES:
        raise ConfigError(
            f"{where}.servingMode: {cfg.serving_mode!r} is not one of {contracts.SERVING_MODES}"
        )
    if cfg.removal_policy not in REMOVAL_POLICIES:
        raise ConfigError(
            f"{where}.removalPolicy: {cfg.removal_policy!r} is not one of {REMOVAL_POLICIES}"
        )
    if cfg.encryption not in ENCRYPTION_MODES:
        raise ConfigError(
            f"{where}.encryption: {cfg.encryption!r} is not one of {ENCRYPTION_MODES}"
        )
    ep = cfg.endpoint
    if ep.instance_count < 2:
        raise ConfigError(
            f"{where}.endpoint.instanceCount: {ep.instance_count} < 2; two instances are the "
            "minimum for SageMaker to spread the endpoint over Availability Zones"
        )
    if not 2 <= ep.min_instances <= ep.instance_count <= ep.max_instances:
        raise ConfigError(
            f"{where}.endpoint: need 2 <= minInstances ({ep.min_instances}) <= instanceCount "
            f"({ep.instance_count}) <= maxInstances ({ep.max_instances})"
        )
    for key, value in (
        ("endpoint.instanceType", ep.instance_type),
        ("training.instanceType", cfg.training.instance_type),
    ):
        if not value.startswith("ml."):
            raise ConfigError(f"{where}.{key}: {value!r} must be a SageMaker type like ml.m5.large")
    if not 0 < ep.invoke_timeout_s < cfg.lambdas.timeout_s:
        raise ConfigError(
            f"{where}.endpoint.invokeTimeoutSeconds: {ep.invoke_timeout_s} must be positive and "
            f"below lambdas.timeoutSeconds ({cfg.lambdas.timeout_s}) to leave time for the fallback"
        )
    tr = cfg.training
    if tr.schedule and not _SCHEDULE_RE.match(tr.schedule):
        raise ConfigError(
            f"{where}.training.schedule: {tr.schedule!r} must be rate(...) or cron(...), or '' "
            "for no schedule"
        )
    if tr.ndcg_tolerance < 0:
        raise ConfigError(f"{where}.training.ndcgTolerance: {tr.ndcg_tolerance} must be >= 0")
    if cfg.api.auth not in API_AUTH_MODES:
        raise ConfigError(f"{where}.api.auth: {cfg.api.auth!r} is not one of {API_AUTH_MODES}")
    if cfg.api.throttle_rate_limit <= 0 or cfg.api.throttle_burst_limit <= 0:
        raise ConfigError(f"{where}.api: throttling limits must be positive")
    lam = cfg.lambdas
    if not 1 <= lam.timeout_s < API_GATEWAY_TIMEOUT_S:
        raise ConfigError(
            f"{where}.lambdas.timeoutSeconds: {lam.timeout_s} must be below API Gateway's "
            f"{API_GATEWAY_TIMEOUT_S} s integration timeout"
        )
    if lam.timeout_s < MIN_EVENTS_TIMEOUT_S:
        raise ConfigError(
            f"{where}.lambdas.timeoutSeconds: {lam.timeout_s} is too short for PutEvents, whose "
            f"slowest path (one read, one Firehose call, one history attempt) needs {MIN_EVENTS_TIMEOUT_S:g} s"
        )
    if not 128 <= lam.memory_mb <= 10240:
        raise ConfigError(f"{where}.lambdas.memoryMb: {lam.memory_mb} is outside 128..10240")
    if lam.log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{where}.lambdas.logRetentionDays: {lam.log_retention_days} is not one of "
            f"CloudWatch's {LOG_RETENTION_DAYS}"
        )
    if lam.reserved_concurrency is not None and lam.reserved_concurrency < 1:
        raise ConfigError(
            f"{where}.lambdas.reservedConcurrency: {lam.reserved_concurrency} must be >= 1 "
            "(or null for no reservation)"
        )


def load_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json``, so ``python cdk/app.py`` works without the CDK CLI."""
    try:
        return dict(json.loads(path.read_text())["context"])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read its 'context' block ({exc})") from exc


def from_context(context: Mapping[str, Any], env: Optional[str] = None) -> EnvironmentConfig:
    """Select and parse one environment from the app's context.

    Args:
        context: A mapping with ``recsys:environments`` (and ``recsys:env`` unless ``env``).
        env: The environment to use; defaults to ``context["recsys:env"]``.
    """
    environments = context.get(ENVIRONMENTS_CONTEXT_KEY)
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(f"cdk.json context {ENVIRONMENTS_CONTEXT_KEY} is missing or empty")
    name = env or context.get(ENV_CONTEXT_KEY)
    if not name:
        raise ConfigError(
            f"cdk.json context {ENV_CONTEXT_KEY} is missing (e.g. -c {ENV_CONTEXT_KEY}=dev)"
        )
    if name not in environments:
        raise ConfigError(
            f"{ENV_CONTEXT_KEY}={name!r} is not one of {sorted(environments)} in cdk.json"
        )
    return parse_environment(str(name), environments[name])
