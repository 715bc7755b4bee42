"""Session-wide fixtures: a small synthetic dataset and a model trained on it once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from iamcheck import recorder as iam_recorder

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
# Every AWS call the Lambda code makes in tests/lambdas is recorded and then evaluated against the
# synthesized IAM policies by tests/infra/test_iam_policies.py (which runs last).
iam_recorder.install()
RECORDED_DIR = "tests/lambdas/"
IAM_RECORDED_TEST = "tests/infra/test_iam_policies.py::test_every_recorded_call_is_allowed"

# Small but real: both jobs train on it in a few seconds.
SMALL = {"n_users": 300, "n_items": 200, "n_events": 8000, "seed": 0}
SMALL_HYPERPARAMETERS = {"dim": 32, "ranker_users": 2000}


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> tuple:
    """(events_csv, items_csv) of the small synthetic dataset."""
    from recsys.synth import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic"), **SMALL)


@pytest.fixture(scope="session")
def trained_model_dir(synthetic_dataset, tmp_path_factory) -> Path:
    """A model directory trained by the same code the training jobs run (plus batch outputs)."""
    from recsys.train import train

    events, items = synthetic_dataset
    root = tmp_path_factory.mktemp("model")
    train(events, items, root / "model", root / "output", SMALL_HYPERPARAMETERS, log=lambda m: None)
    return root / "model"


@pytest.fixture(scope="session")
def batch_output_dir(trained_model_dir) -> Path:
    """manifest.json and batch/*.jsonl written next to the trained model."""
    return trained_model_dir.parent / "output"


@pytest.fixture(scope="session")
def recommender(trained_model_dir):
    from recsys import Recommender

    return Recommender.load(trained_model_dir)


def pytest_collection_modifyitems(session, config, items) -> None:
    """Run the check of the recorded AWS calls after the tests that record them."""
    iam_recorder.RECORDER.collected = {item.nodeid.split("::")[0] for item in items}
    last = [item for item in items if item.nodeid.startswith(IAM_RECORDED_TEST)]
    if last:
        items[:] = [item for item in items if item not in last] + last


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Record AWS calls only while a test of tests/lambdas runs (setup, call and teardown)."""
    iam_recorder.RECORDER.test = item.nodeid if item.nodeid.startswith(RECORDED_DIR) else None
    try:
        yield
    finally:
        iam_recorder.RECORDER.test = None
