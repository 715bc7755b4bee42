"""The local training runner: SageMaker's environment for a job, reuse keys, model archives."""

from __future__ import annotations

import json
import tarfile

import pytest
from recsys_tools.local import training
from recsys_tools.local.training import TrainingFailed, TrainingInputs

pytestmark = pytest.mark.e2e

JOB = '''
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as fh:
    json.dump({"env": env, "argv": sys.argv[1:],
               "channel_files": sorted(os.listdir(os.environ["SM_CHANNEL_EVENTS"]))}, fh)
print("METRIC fake=1.000000")
if "--fail" in sys.argv:
    print("bad input in events.csv row 3")
    sys.exit(2)
'''


@pytest.fixture
def inputs(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu1,i1,1\n")
    return TrainingInputs(events, None, {"dim": "8"})


def test_job_gets_the_sagemaker_environment_and_arguments(tmp_path, inputs, capsys):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    model_dir = training.run_job("job-1", script, tmp_path / "opt-ml", {
        "events": training._copy_channel(inputs.events)}, {"dim": "8", "window": "3"})
    seen = json.loads((model_dir / "seen.json").read_text())
    env = seen["env"]
    assert env["SM_MODEL_DIR"] == str(tmp_path / "opt-ml" / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(tmp_path / "opt-ml" / "output" / "data")
    assert env["SM_CHANNEL_EVENTS"] == str(tmp_path / "opt-ml" / "input" / "data" / "events")
    assert json.loads(env["SM_HPS"]) == {"dim": "8", "window": "3"}
    assert seen["argv"] == ["--dim", "8", "--window", "3"]
    assert seen["channel_files"] == ["events.csv"]
    config = tmp_path / "opt-ml" / "input" / "config" / "hyperparameters.json"
    assert json.loads(config.read_text()) == {"dim": "8", "window": "3"}
    assert "[job-1] METRIC fake=1.000000" in capsys.readouterr().out  # streamed, prefixed


def test_failed_job_names_itself_and_shows_its_last_output(tmp_path, inputs):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    with pytest.raises(TrainingFailed, match=r"(?s)job-2 \(job.py\) exited with status 2.*row 3"):
        training.run_job("job-2", script, tmp_path / "opt-ml", {
            "events": training._copy_channel(inputs.events)}, {"fail": "yes"}, echo=False)
    assert "row 3" in (tmp_path / "opt-ml" / "output" / "failure").read_text()


def test_reuse_key_changes_with_data_settings_and_code(tmp_path, inputs, monkeypatch):
    monkeypatch.setenv(training.CODE_VERSION_ENV, "v1")
    base = training.run_key(inputs)["key"]
    assert training.run_key(inputs)["key"] == base
    assert training.run_key(TrainingInputs(inputs.events, None, {"dim": "16"}))["key"] != base
    monkeypatch.setenv(training.CODE_VERSION_ENV, "v2")
    assert training.run_key(inputs)["key"] != base
    monkeypatch.setenv(training.CODE_VERSION_ENV, "v1")
    inputs.events.write_text("user_id,item_id,timestamp\nu1,i2,1\n")
    assert training.run_key(inputs)["key"] != base


def test_code_version_hashes_the_training_code():
    assert len(training.code_version()) == 16
    assert training.code_version() == training.code_version()


def test_model_archive_round_trip_and_unsafe_members_refused(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "manifest.json").write_text("{}")
    (model / "sub" / "vectors.npy").write_bytes(b"\x93NUMPY")
    archive = training.make_tarball(model, tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["manifest.json", "sub", "sub/vectors.npy"]
    out = training.extract_tarball(archive, tmp_path / "serving")
    assert (out / "sub" / "vectors.npy").read_bytes() == b"\x93NUMPY"

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(model / "manifest.json", arcname="../escape.json")
    with pytest.raises(ValueError, match="escapes"):
        training.extract_tarball(evil, tmp_path / "serving2")
    assert not (tmp_path / "escape.json").exists()


def test_given_model_archive_is_extracted_and_its_batch_outputs_found(tmp_path):
    from recsys_tools.local.stack import LocalStack, StackOptions

    job = tmp_path / "job"
    (job / "model").mkdir(parents=True)
    (job / "model" / "manifest.json").write_text(json.dumps({"model_version": "v-given"}))
    (job / "output" / "data" / "batch").mkdir(parents=True)
    archive = training.make_tarball(job / "model", job / "model.tar.gz")
    stack = LocalStack(StackOptions(work_dir=tmp_path / "work"))

    from_dir = stack._given_model(job / "model")
    assert from_dir.model_version == "v-given"
    assert from_dir.batch_dir == (job / "output" / "data" / "batch").resolve()  # SageMaker's layout

    from_archive = stack._given_model(archive)
    assert from_archive.model_dir == (tmp_path / "work" / "given-model" / "model").resolve()
    assert from_archive.model_version == "v-given"
    assert from_archive.batch_dir is None  # nothing next to the archive: DynamoDB stays empty


def test_the_deletions_channel_without_records_holds_the_pipelines_marker(tmp_path):
    from recsys import data
    from recsys_lambdas import contracts

    dest = tmp_path / "input" / "data" / contracts.TRAINING_CHANNEL_DELETIONS
    training._deletions_marker(contracts.TRAINING_CHANNEL_DELETIONS, dest)
    assert [p.name for p in dest.iterdir()] == [contracts.DELETIONS_MARKER.rsplit("/", 1)[1]]
    assert data.load_deletions(dest) == {}  # the marker deletes nobody
