"""Fixtures for the API tests (moto-backed AWS, a real trained model behind the in-process
endpoint). Names start with ``api_`` so they do not collide with the pipeline tests' fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator

import api_support as sup
import boto3
import pytest
from recsys_lambdas import aws, contracts

# Small enough to train in seconds on a shared laptop core, big enough for real answers.
MODEL_DATA = {"n_users": 300, "n_items": 200, "n_events": 8000, "seed": 0}
FAST_HYPERPARAMETERS = {"dim": 16, "epochs": 2, "ef_construction": 50, "ranker_users": 300,
                        "ranker_negatives": 10, "ranker_hard_negatives": 5}


@pytest.fixture(scope="session")
def api_trained_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The project's real model, trained once per session (recsys.synth + recsys.train.train).

    Reuses the repository-wide ``trained_model_dir`` fixture when there is one, so ``make test``
    trains once for all suites.
    """
    try:
        model_dir = Path(request.getfixturevalue("trained_model_dir"))
        batch_root = Path(request.getfixturevalue("batch_output_dir"))
        if (batch_root / contracts.BATCH_OUTPUT_DIR / "recommendations.jsonl").exists():
            return {"model_dir": model_dir, "batch_dir": batch_root / contracts.BATCH_OUTPUT_DIR}
    except pytest.FixtureLookupError:
        pass
    synth = pytest.importorskip("recsys.synth")
    train = pytest.importorskip("recsys.train")
    root = tmp_path_factory.mktemp("api-model")
    events, items = synth.write_dataset(root / "data", **MODEL_DATA)
    train.train(events, items, root / "model", root / "output",
                hyperparameters=FAST_HYPERPARAMETERS, log=lambda *_: None)
    return {"model_dir": root / "model", "batch_dir": root / "output" / contracts.BATCH_OUTPUT_DIR}


@pytest.fixture(scope="session")
def api_endpoint_model(api_trained_model: Dict[str, Path]) -> sup.InProcessEndpoint:
    """The model loaded through sagemaker/inference.py's model_fn (once per session)."""
    return sup.InProcessEndpoint(api_trained_model["model_dir"])


def _env(**overrides: str) -> Dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": sup.REGION, "AWS_REGION": sup.REGION,
        contracts.ENV_USERS_TABLE: sup.table(contracts.USERS),
        contracts.ENV_ITEMS_TABLE: sup.table(contracts.ITEMS),
        contracts.ENV_BATCH_TABLE: sup.table(contracts.BATCH_RECOMMENDATIONS),
        contracts.ENV_IDEMPOTENCY_TABLE: sup.table(contracts.IDEMPOTENCY),
        contracts.ENV_ENDPOINT_NAME: sup.ENDPOINT,
        contracts.ENV_EVENTS_STREAM: sup.STREAM,
        contracts.ENV_EVENTS_BUCKET: sup.BUCKET,
        contracts.ENV_SERVING_MODE: "realtime",
        contracts.ENV_ENDPOINT_TIMEOUT_S: "2",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "RecsysTest",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


class ApiWorld:
    """The moto-backed AWS the handlers see, plus handles the tests poke at."""

    def __init__(self) -> None:
        self.loaded = False
        self.ddb = boto3.client("dynamodb", region_name=sup.REGION)
        self.s3 = boto3.client("s3", region_name=sup.REGION)
        self.firehose = boto3.client("firehose", region_name=sup.REGION)

    def create(self) -> None:
        for spec in contracts.ALL_TABLES:
            self.ddb.create_table(
                TableName=sup.table(spec), BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}])
        self.s3.create_bucket(Bucket=sup.BUCKET)
        self.firehose.create_delivery_stream(
            DeliveryStreamName=sup.STREAM,
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{sup.BUCKET}", "Prefix": contracts.EVENTS_PREFIX})

    # what the handlers' own (container-cached) clients are
    def handler_client(self, service: str) -> Any:
        return aws.client(service)

    def user_row(self, user_id: str) -> Dict[str, Any]:
        return self.ddb.get_item(TableName=sup.table(contracts.USERS),
                                 Key={"userId": {"S": user_id}}, ConsistentRead=True).get("Item", {})

    def logged_events(self) -> list:
        import json

        rows = []
        for obj in self.s3.list_objects_v2(Bucket=sup.BUCKET, Prefix=contracts.EVENTS_PREFIX).get("Contents", []):
            text = self.s3.get_object(Bucket=sup.BUCKET, Key=obj["Key"])["Body"].read().decode()
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
        return rows


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dict[str, str]]:
    env = _env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in (contracts.ENV_AWS_ENDPOINT_URL, contracts.ENV_SAGEMAKER_ENDPOINT_URL, "NAMED_FILTERS"):
        monkeypatch.delenv(key, raising=False)
    aws.reset()
    yield env
    aws.reset()


@pytest.fixture(scope="module")
def api_moto() -> Iterator[ApiWorld]:
    """moto's AWS with the tables, bucket and delivery stream, once per test module (creating
    them costs seconds on a busy machine); tests keep apart by using their own user ids."""
    from moto import mock_aws

    with mock_aws():
        world = ApiWorld()
        world.create()
        yield world


@pytest.fixture
def api_world(api_moto: ApiWorld, api_env: Dict[str, str]) -> Iterator[ApiWorld]:
    """The module's moto world, with the handlers' cached clients and settings reset."""
    aws.reset()
    yield api_moto
    aws.reset()


@pytest.fixture
def api_live(api_world: ApiWorld, api_trained_model: Dict[str, Path],
             api_endpoint_model: sup.InProcessEndpoint) -> ApiWorld:
    """api_world with the trained model's batch output loaded and the endpoint routed to it."""
    if not getattr(api_world, "loaded", False):
        sup.load_batch_output(api_world.ddb, api_trained_model["batch_dir"])
        api_world.loaded = True  # type: ignore[attr-defined]
    api_endpoint_model.requests.clear()
    api_endpoint_model.attach(aws.client("sagemaker-runtime"))
    api_world.model = api_endpoint_model  # type: ignore[attr-defined]
    api_world.model_paths = api_trained_model  # type: ignore[attr-defined]
    return api_world
