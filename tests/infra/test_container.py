"""The code bundle fits the container it runs in: the SageMaker scikit-learn image has no
compiler and the jobs and the endpoint run network-isolated, so every package the code needs
beyond the image must come as a wheel built for the image's Python and platform.

The bundle checked is the file asset the synthesized app ships (the session ``synth``), the one
the training template's ``sagemaker_submit_directory`` names.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename
from recsys_infra import container, images, source_bundle
from recsys_infra.container import SKLEARN_IMAGE, WHEEL_LOCK, LockedWheel, WheelLockError


def one(template: dict, type_: str) -> dict:
    found = [r for r in template["Resources"].values() if r["Type"] == type_]
    assert len(found) == 1, f"{len(found)} {type_}"
    return found[0]


def definition(template: dict) -> dict:
    """The state machine definition, tokens rendered as TOKEN."""
    (sm,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
             and str(r["Properties"].get("StateMachineName", "")).endswith("-training")]
    body = sm["Properties"]["DefinitionString"]
    if isinstance(body, dict):
        body = "".join(_render(p) for p in body["Fn::Join"][1])
    return json.loads(body)


def _render(part) -> str:
    """Strings as they are, an Fn::Sub's text with its variables as TOKEN, else TOKEN."""
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and isinstance(part.get("Fn::Sub"), str):
        return re.sub(r"\$\{[^}]+\}", "TOKEN", part["Fn::Sub"])
    return "TOKEN"


def bundle_problems(tar: tarfile.TarFile, image: container.ImageFacts = SKLEARN_IMAGE,
                    lock=WHEEL_LOCK) -> list:
    """What keeps a bundle from installing offline in ``image`` (empty: nothing)."""
    problems = []
    supported = image.supported_tags()
    by_file = {w.filename: w for w in lock}
    wheels = {}
    for member in tar.getmembers():
        if not member.name.startswith("wheels/"):
            continue
        filename = member.name.split("/", 1)[1]
        name, version, _, tags = parse_wheel_filename(filename)
        wheels[canonicalize_name(name)] = str(version)
        if not set(tags) & supported:
            problems.append(f"{filename}: tags {sorted(map(str, tags))} do not install on CPython "
                            f"{image.python_version} glibc {image.glibc} {image.machine}")
        locked = by_file.get(filename)
        data = tar.extractfile(member).read()
        if locked is None:
            problems.append(f"{filename}: not in the wheel lock")
        elif hashlib.sha256(data).hexdigest() != locked.sha256:
            problems.append(f"{filename}: sha256 differs from the lock")
    for name in container.RUNTIME_REQUIREMENTS + container.BUILD_REQUIREMENTS:
        if canonicalize_name(name) not in wheels:
            problems.append(f"{name}: required, but the bundle has no wheel for it")
    requirements = tar.extractfile("requirements.txt").read().decode().splitlines()
    options = [line for line in requirements if line.startswith("--")]
    for needed in ("--no-index", "--find-links wheels", "--only-binary :all:"):
        if needed not in options:
            problems.append(f"requirements.txt lacks {needed}")
    for line in requirements:
        if line and not line.startswith(("#", "--")):
            pin = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
            if pin is None:
                problems.append(f"requirements.txt: {line!r} is not a name==version pin")
            elif wheels.get(canonicalize_name(pin[1])) != pin[2]:
                problems.append(f"requirements.txt: {line} has no matching wheel in wheels/")
            if "--hash" in line:
                problems.append("requirements.txt: --hash breaks the serving `pip install .`")
    return problems


@pytest.fixture(scope="module")
def shipped_bundle(synth) -> Path:
    """The bundle file in cdk.out that the training jobs' code channel points at."""
    training = synth.templates[f"{synth.realtime_cfg.prefix}-training"]
    job = definition(training)["States"]["TrainRetrieval"]["Parameters"]
    submit = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
    asset_hash = re.fullmatch(r"/opt/ml/input/data/code/([0-9a-f]{64})\.\w+", submit)
    assert asset_hash, submit
    found = sorted(synth.outdir.glob(f"asset.{asset_hash[1]}*"))
    assert len(found) == 1, f"no single file asset for {submit} in {synth.outdir}"
    return found[0]


def test_the_shipped_bundle_installs_in_the_image_without_compiler_or_network(shipped_bundle):
    with tarfile.open(shipped_bundle, "r:gz") as tar:
        assert bundle_problems(tar) == []
        names = tar.getnames()
    assert "wheels/" + container.wheels_for("3.12")[0].filename in names


def _bundle_with(tmp_path, wheels) -> tarfile.TarFile:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "inference.py").write_text("")
    extra = {f"wheels/{w.filename}": b"not really a wheel" for w in wheels}
    extra["requirements.txt"] = source_bundle.container_requirements(wheels)
    out = source_bundle.build_source_tarball(src, tmp_path / "b.tar.gz", extra)
    return tarfile.open(out, "r:gz")


def test_bundle_check_rejects_a_wheel_for_another_python_or_a_missing_package(tmp_path):
    cp311 = next(w for w in WHEEL_LOCK if w.python_version == "3.11")
    setuptools = next(w for w in WHEEL_LOCK if w.name == "setuptools")
    problems = bundle_problems(_bundle_with(tmp_path, [cp311, setuptools]))
    assert any("cp311" in p and "do not install on CPython 3.12" in p for p in problems)
    assert any("sha256 differs" in p for p in problems)
    problems = bundle_problems(_bundle_with(tmp_path, [cp311]))
    assert "setuptools: required, but the bundle has no wheel for it" in problems


def test_supported_tags_follow_the_images_glibc_and_python():
    tags = {str(t) for t in SKLEARN_IMAGE.supported_tags()}
    assert "cp312-cp312-manylinux_2_17_x86_64" in tags
    assert "cp312-cp312-manylinux2014_x86_64" in tags
    assert "cp312-cp312-manylinux_2_34_x86_64" in tags
    assert "cp312-abi3-manylinux_2_28_x86_64" in tags
    assert "py3-none-any" in tags
    assert "cp312-cp312-manylinux_2_35_x86_64" not in tags  # newer glibc than AL2023's 2.34
    assert "cp311-cp311-manylinux_2_17_x86_64" not in tags
    assert "cp312-cp312-musllinux_1_2_x86_64" not in tags
    assert "cp312-cp312-manylinux_2_17_aarch64" not in tags


def test_lock_picks_one_wheel_per_package_for_each_python_and_refuses_a_gap():
    assert [w.filename.split("-")[2] for w in container.wheels_for("3.12")] == ["cp312", "py3"]
    assert [w.filename.split("-")[2] for w in container.wheels_for("3.11")] == ["cp311", "py3"]
    with pytest.raises(WheelLockError, match=r"no chroma-hnswlib wheel for CPython 3\.13"):
        container.wheels_for("3.13")
    assert images.SKLEARN_FRAMEWORK_VERSION == SKLEARN_IMAGE.framework_version == "1.9-0"


def test_fetch_uses_the_cache_downloads_what_is_missing_and_refuses_other_bytes(tmp_path, monkeypatch):
    body = b"wheel bytes"
    wheel = LockedWheel("demo", "1.0", "demo-1.0-py3-none-any.whl", hashlib.sha256(body).hexdigest())
    calls = []

    def fake_download(w, image, dest):
        calls.append(w.filename)
        (dest / w.filename).write_bytes(body)

    monkeypatch.setattr(source_bundle, "_download", fake_download)
    cache = tmp_path / "cache"
    assert source_bundle.fetch_wheels([wheel], cache) == [cache / wheel.filename]
    assert source_bundle.fetch_wheels([wheel], cache) == [cache / wheel.filename]
    assert calls == [wheel.filename]  # the second call found it in the cache
    (cache / wheel.filename).write_bytes(b"tampered")
    with pytest.raises(source_bundle.WheelError, match=r"sha256 .* does not match the lock"):
        source_bundle.fetch_wheels([wheel], cache)

    def wrong_file(w, image, dest):
        (dest / "demo-2.0-py3-none-any.whl").write_bytes(body)

    monkeypatch.setattr(source_bundle, "_download", wrong_file)
    with pytest.raises(source_bundle.WheelError, match=r"gave demo-2\.0-py3-none-any\.whl"):
        source_bundle.fetch_wheels([wheel], tmp_path / "other")


def test_code_bundle_is_byte_deterministic_and_has_no_hash_pins(tmp_path):
    cache = images.wheel_cache()
    a = source_bundle.build_code_bundle(images.SAGEMAKER_SOURCE_DIR, tmp_path / "a.tar.gz", "3.12", cache)
    b = source_bundle.build_code_bundle(images.SAGEMAKER_SOURCE_DIR, tmp_path / "b.tar.gz", "3.12", cache)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(a.read_bytes()), mode="r:gz") as tar:
        assert bundle_problems(tar) == []
        assert {m.mode for m in tar.getmembers() if m.name.startswith("wheels/")} == {0o644}


def test_both_jobs_run_network_isolated_with_the_code_as_their_code_channel(synth):
    training = synth.templates[f"{synth.realtime_cfg.prefix}-training"]
    states = definition(training)["States"]
    submits = set()
    for name in ("TrainRetrieval", "TrainRanker"):
        job = states[name]["Parameters"]
        assert job["EnableNetworkIsolation"] is True, name
        channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
        source = channels[images.CODE_CHANNEL]["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "S3Prefix"
        key = re.fullmatch(r"s3://cdk-[a-z0-9]+-assets-TOKEN-us-east-1/([0-9a-f]{64}\.gz)",
                           source["S3Uri"])
        assert key, source["S3Uri"]
        submit = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
        assert submit == f"/opt/ml/input/data/code/{key[1]}"  # where SageMaker puts that object
        submits.add(submit)
    assert len(submits) == 1
    # the role may list exactly that key (S3Prefix channels list before they get)
    role_policies = [r["Properties"]["PolicyDocument"]["Statement"]
                     for r in training["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    lists = [s for statements in role_policies for s in statements
             if s["Action"] == "s3:ListBucket" and "StringEquals" in s.get("Condition", {})]
    assert [s["Condition"]["StringEquals"]["s3:prefix"] for s in lists] == [key[1]]


def test_the_model_is_network_isolated_and_runs_the_code_inside_its_artifact(synth):
    serving = synth.templates[f"{synth.realtime_cfg.prefix}-serving"]
    model = one(serving, "AWS::SageMaker::Model")["Properties"]
    assert model["EnableNetworkIsolation"] is True
    env = model["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code" == images.MODEL_CODE_DIR
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    # no source asset left in the serving stack: nothing reads the CDK assets bucket
    assert "-assets-" not in json.dumps(serving)
