"""The local stack runs the code the way the network-isolated SageMaker containers get it: the
training runner installs the ``code`` channel's bundle, the endpoint serves the model's code/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from recsys_infra.source_bundle import build_source_tarball
from recsys_tools.local import training
from recsys_tools.local.endpoint import default_inference_path


def test_endpoint_serves_the_models_own_code_when_it_has_one(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    fallback = default_inference_path(model)
    assert fallback.parent.name == "sagemaker" and fallback.name == "inference.py"
    (model / "code").mkdir()
    (model / "code" / "inference.py").write_text("def model_fn(d):\n    return d\n")
    assert default_inference_path(model) == (model / "code" / "inference.py").resolve()


def _job_with_bundle(tmp_path: Path, requirements: str) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train_x.py").write_text("print('ran')\n")
    (src / "requirements.txt").write_text(requirements)
    job = tmp_path / "job"
    channel = job / "input" / "data" / training.CODE_CHANNEL
    channel.mkdir(parents=True)
    build_source_tarball(src, channel / "deadbeef.gz")  # any name: the toolkit tests is_tarfile
    return job


def _env(tmp_path: Path) -> dict:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull}


def test_the_code_channel_is_unpacked_and_its_requirements_installed_offline(tmp_path):
    job = _job_with_bundle(tmp_path, "--no-index\n--find-links wheels\n")
    code = training.install_code(job, sys.executable, _env(tmp_path))
    assert code == job / "code" and (code / "train_x.py").is_file()


def test_an_uninstallable_requirement_fails_the_job_with_pips_reason(tmp_path):
    job = _job_with_bundle(tmp_path, "--no-index\nno-such-package-recsys==1.0\n")
    with pytest.raises(training.TrainingFailed, match=r"(?s)requirements\.txt failed.*no-such-package-recsys"):
        training.install_code(job, sys.executable, _env(tmp_path))


def test_a_code_channel_without_one_tarball_is_refused(tmp_path):
    channel = tmp_path / "input" / "data" / training.CODE_CHANNEL
    channel.mkdir(parents=True)
    (channel / "notes.txt").write_text("not a tarball")
    with pytest.raises(training.TrainingFailed, match="expected one code tarball, found 0"):
        training.install_code(tmp_path, sys.executable, _env(tmp_path))
