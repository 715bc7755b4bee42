"""cdk.json context -> typed config: every bad value fails synth with the key named."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from recsys_infra import config
from recsys_infra.config import ConfigError

CONTEXT = config.load_cdk_json_context()
DEV = CONTEXT[config.ENVIRONMENTS_CONTEXT_KEY]["dev"]


def parse(**changes):
    raw = copy.deepcopy(DEV)
    for path, value in changes.items():
        target = raw
        *parents, leaf = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return config.parse_environment("dev", raw)


def test_every_environment_in_cdk_json_parses():
    for name in CONTEXT[config.ENVIRONMENTS_CONTEXT_KEY]:
        cfg = config.from_context(CONTEXT, env=name)
        assert cfg.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.prefix = "x"  # type: ignore[misc]
    assert config.from_context(CONTEXT).name == CONTEXT[config.ENV_CONTEXT_KEY]


def test_defaults_are_what_the_docs_promise():
    cfg = config.from_context(CONTEXT, env="dev")
    assert cfg.serving_mode == "realtime" and cfg.realtime
    assert cfg.endpoint.instance_count >= 2
    assert cfg.api.auth == "iam"
    assert cfg.endpoint_name == "recsys-dev-endpoint"
    batch = config.from_context(CONTEXT, env="batch")
    assert batch.endpoint_name == "" and not batch.realtime


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint__instanceCount": 1}, r"endpoint\.instanceCount: 1 < 2"),
        ({"endpoint__minInstances": 3}, r"minInstances \(3\) <= instanceCount \(2\)"),
        (
            {"endpoint__instanceType": "c5.large"},
            r"endpoint\.instanceType: 'c5\.large' must be a SageMaker type",
        ),
        (
            {"lambdas__timeoutSeconds": 29},
            r"lambdas\.timeoutSeconds: 29 must be below API Gateway's 29 s",
        ),
        (
            {"lambdas__timeoutSeconds": "10"},
            r"lambdas\.timeoutSeconds: expected an integer, got '10'",
        ),
        ({"lambdas__logRetentionDays": 31}, r"logRetentionDays: 31 is not one of CloudWatch's"),
        ({"lambdas__reservedConcurrency": 0}, r"reservedConcurrency: 0 must be >= 1"),
        ({"encryption": "sse"}, r"encryption: 'sse' is not one of \('kms', 'aws-managed'\)"),
        ({"encryption": True}, r"encryption: expected a string, got True"),
        ({"servingMode": "hybrid"}, r"servingMode: 'hybrid' is not one of \('realtime', 'batch'\)"),
        ({"api__auth": "none"}, r"api\.auth: 'none' is not one of \('iam', 'iam\+api_key'\)"),
        (
            {"training__schedule": "daily"},
            r"training\.schedule: 'daily' must be rate\(\.\.\.\) or cron",
        ),
        ({"training__ndcgTolerance": -1}, r"ndcgTolerance: -1\.0 must be >= 0"),
        ({"endpoint__instanceCuont": 2}, r"endpoint: unknown key\(s\) \['instanceCuont'\]"),
        ({"regoin": "x"}, r"unknown key\(s\) \['regoin'\]"),
        ({"region": "mars-1"}, r"region: 'mars-1' is not an AWS region name"),
        ({"prefix": "Recsys_Dev"}, r"prefix: 'Recsys_Dev' must be 3-16 characters"),
        ({"account": "12345"}, r"account: '12345' is not a 12-digit account id"),
        (
            {"endpoint__invokeTimeoutSeconds": 10},
            r"invokeTimeoutSeconds: 10\.0 must be positive and below",
        ),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse(**changes)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["x"], r"filters: expected an object of named filters"),
        ({"bad name": {}}, r"filters: filter name 'bad name' must be"),
        ({"ok": "EXCLUDE ItemID"}, r"filters: NAMED_FILTERS must be a JSON object of filter objects"),
        ({f"f{n}": {"excludeItemIds": ["i" * 40]} for n in range(60)}, r"filters: \d+ bytes as JSON"),
    ],
)
def test_bad_named_filters_name_the_key(filters, message):
    with pytest.raises(ConfigError, match=message):
        parse(filters=filters)


def test_the_dev_block_ships_the_two_example_filters_the_api_functions_get():
    cfg = parse()
    assert set(cfg.filters) == {"exclude-categories", "include-categories"}
    from recsys_lambdas.settings import named_filters

    assert named_filters(cfg.named_filters_json) == cfg.filters
    assert parse(filters={}).named_filters_json == ""


def test_reserved_concurrency_can_be_switched_off_for_small_accounts():
    assert parse(lambdas__reservedConcurrency=None).lambdas.reserved_concurrency is None
    assert parse(lambdas__reservedConcurrency=5).lambdas.reserved_concurrency == 5


def test_dev_reserves_no_concurrency_and_prod_does():
    # A new account's concurrency quota (10) cannot give any function a reservation.
    assert config.from_context(CONTEXT, env="dev").lambdas.reserved_concurrency is None
    assert config.from_context(CONTEXT, env="prod").lambdas.reserved_concurrency == 100


def test_customer_managed_key_is_on_in_prod_and_off_in_dev():
    prod = config.from_context(CONTEXT, env="prod")
    dev = config.from_context(CONTEXT, env="dev")
    assert (prod.encryption, prod.kms) == ("kms", True)
    assert (dev.encryption, dev.kms) == ("aws-managed", False)
    assert prod.data_key_alias == "alias/recsys-prod-data"
    raw = copy.deepcopy(DEV)
    del raw["encryption"]
    assert config.parse_environment("dev", raw).encryption == "kms"  # secure when unset


def test_region_is_required_because_synth_runs_offline():
    raw = copy.deepcopy(DEV)
    del raw["region"]
    with pytest.raises(ConfigError, match=r"dev\.region is required"):
        config.parse_environment("dev", raw)


def test_environment_selection_errors():
    with pytest.raises(ConfigError, match=r"recsys:env='qa' is not one of"):
        config.from_context(CONTEXT, env="qa")
    with pytest.raises(ConfigError, match="recsys:environments is missing"):
        config.from_context({})


def test_names_fit_aws_limits():
    cfg = parse(prefix="a" * 16)
    assert len(f"{cfg.prefix}-retrieval-{'0' * 36}") <= 63  # SageMaker training job name limit
    assert len(cfg.bucket_name("access-logs", "123456789012")) <= 63  # S3 bucket name limit
