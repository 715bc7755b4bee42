"""The two SageMaker training jobs, run locally through the same entry points.

Each job gets what a SageMaker training container gets: an ``/opt/ml``-like folder (input/data/
<channel>, input/config/hyperparameters.json, model, output/data), the ``SM_*`` variables, and
its hyperparameters as ``--name value`` arguments. Job 1's model folder is tarred to
``model.tar.gz`` and handed to job 2 as the ``retrieval`` channel; job 2's ``model.tar.gz`` is
extracted into the folder the endpoint serves (its ``/opt/ml/model``), as SageMaker does.

The code reaches the jobs as it does network-isolated SageMaker jobs: a ``sourcedir.tar.gz`` in
the ``code`` channel, unpacked into the job's ``code/`` (the container's ``/opt/ml/code``), its
``requirements.txt`` (if any) installed with ``pip install -r``, the entry point run from there.
The stack's bundle is ``sagemaker/`` alone (the stack's interpreter already has the packages);
job 2 copies that code into its model as ``code/``, which the local endpoint then runs.

A finished run is stored under ``<work dir>/runs/<key>``, where the key hashes the input files,
the hyperparameters and the code version (the training code's own files), and is reused while
none of them changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

from recsys_tools.local.processes import Child, ChildFailed, python_child_env

STAMP_FILE = "stamp.json"
FetchChannel = Callable[[str, Path], None]  # (channel name, destination folder)


class TrainingFailed(RuntimeError):
    """A training job exited non-zero; the message names the job and shows its last output."""


@dataclass(frozen=True)
class TrainingInputs:
    """What a training run depends on."""

    events: Path
    items: Optional[Path] = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    users: Optional[Path] = None  # user metadata: the optional users channel


@dataclass(frozen=True)
class TrainedModel:
    """A finished run: what the endpoint serves and what the loader writes to DynamoDB."""

    run_dir: Path
    model_dir: Path  # extracted job 2 model (the endpoint's /opt/ml/model)
    batch_dir: Optional[Path]  # job 2's output/data/batch
    manifest: dict[str, Any]
    reused: bool
    seconds: float = 0.0

    @property
    def model_version(self) -> str:
        return str(self.manifest.get("model_version", "unknown"))


def sagemaker_dir() -> Path:
    """The folder holding the SageMaker entry points (``sagemaker/`` of the repository)."""
    import recsys

    return Path(recsys.__file__).resolve().parent.parent


def _sha256_file(path: Path, digest: Optional[Any] = None) -> str:
    h = digest or hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


CODE_VERSION_ENV = "RECSYS_LOCAL_CODE_VERSION"


def code_version() -> str:
    """A hash of the training code: the ``recsys`` package and the entry points.

    ``RECSYS_LOCAL_CODE_VERSION`` overrides it (tests pin it while others edit the tree).
    """
    pinned = os.environ.get(CODE_VERSION_ENV)
    if pinned:
        return pinned
    root = sagemaker_dir()
    files = sorted((root / "recsys").rglob("*.py"))
    files += sorted(root.glob("train_*.py"))
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_key(inputs: TrainingInputs) -> dict[str, Any]:
    """The facts a stored run must match to be reused (and its short hash under ``key``)."""
    facts: dict[str, Any] = {
        "events_sha256": _sha256_file(inputs.events),
        "items_sha256": _sha256_file(inputs.items) if inputs.items else None,
        **({"users_sha256": _sha256_file(inputs.users)} if inputs.users else {}),
        "hyperparameters": {k: str(v) for k, v in sorted(inputs.hyperparameters.items())},
        "code_version": code_version(),
    }
    facts["key"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return facts


def find_reusable(work_dir: Path, inputs: TrainingInputs) -> Optional[TrainedModel]:
    """The stored run for these inputs, settings and code, if complete."""
    facts = run_key(inputs)
    run_dir = work_dir / "runs" / facts["key"]
    stamp_path = run_dir / STAMP_FILE
    if not stamp_path.is_file():
        return None
    try:
        stamp = json.loads(stamp_path.read_text())
    except ValueError:
        return None
    if stamp.get("facts") != facts:
        return None
    model_dir = run_dir / "serving" / "model"
    batch_dir = run_dir / "ranker" / "output" / "data" / "batch"
    if not model_dir.is_dir():
        return None
    return TrainedModel(run_dir, model_dir, batch_dir if batch_dir.is_dir() else None,
                        stamp.get("manifest", {}), reused=True)


def make_tarball(source_dir: Path, tar_path: Path) -> Path:
    """``model.tar.gz`` of the contents of ``source_dir`` (paths relative to it, as SageMaker)."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        for child in sorted(source_dir.iterdir()):
            tar.add(child, arcname=child.name)
    return tar_path


def extract_tarball(tar_path: Path, dest: Path) -> Path:
    """Extract a model archive (refusing members that would land outside ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if root != target and root not in target.parents:
                raise ValueError(f"{tar_path}: member {member.name!r} escapes the archive folder")
            if member.issym() or member.islnk():
                raise ValueError(f"{tar_path}: links are not allowed in a model archive ({member.name})")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202 - members checked above
    return dest


def _copy_channel(source: Path) -> FetchChannel:
    def fetch(channel: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / source.name)

    return fetch


def _deletions_marker(channel: str, dest: Path) -> None:
    """The ``deletions`` channel with only the marker the pipeline writes (no user deleted)."""
    from recsys_lambdas import contracts

    dest.mkdir(parents=True, exist_ok=True)
    (dest / contracts.DELETIONS_MARKER.rsplit("/", 1)[1]).write_text("{}")


def job_environment(job_dir: Path, channels: list[str], hyperparameters: Mapping[str, str],
                    job_name: str) -> dict[str, str]:
    """The ``SM_*`` variables of a training container whose ``/opt/ml`` is ``job_dir``."""
    data = job_dir / "input" / "data"
    env = {
        "SM_MODEL_DIR": str(job_dir / "model"),
        "SM_OUTPUT_DATA_DIR": str(job_dir / "output" / "data"),
        "SM_OUTPUT_DIR": str(job_dir / "output"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(job_dir / "output" / "intermediate"),
        "SM_INPUT_DIR": str(job_dir / "input"),
        "SM_INPUT_CONFIG_DIR": str(job_dir / "input" / "config"),
        "SM_INPUT_DATA_CONFIG": json.dumps({c: {"TrainingInputMode": "File"} for c in channels}),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(dict(hyperparameters)),
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "SM_TRAINING_JOB_NAME": job_name,
        "TRAINING_JOB_NAME": job_name,
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(data / channel)
    for key, value in hyperparameters.items():
        env[f"SM_HP_{key.upper().replace('-', '_')}"] = str(value)
    return env


CODE_CHANNEL = "code"


def install_code(job_dir: Path, python: str, env: Mapping[str, str]) -> Path:
    """The training toolkit's part: unpack the ``code`` channel's tarball into ``job_dir/code``
    and ``pip install -r requirements.txt`` there when the bundle has one.

    Raises:
        TrainingFailed: no single tarball in the channel, or pip failed (its last lines).
    """
    channel = job_dir / "input" / "data" / CODE_CHANNEL
    bundles = sorted(p for p in channel.iterdir() if p.is_file() and tarfile.is_tarfile(p))
    if len(bundles) != 1:
        raise TrainingFailed(f"{channel}: expected one code tarball, found {len(bundles)}")
    code_dir = extract_tarball(bundles[0], job_dir / "code")
    if (code_dir / "requirements.txt").is_file():
        done = subprocess.run(  # noqa: S603 - the job's own interpreter
            [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt"],
            cwd=code_dir, env=dict(env), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise TrainingFailed(f"installing {code_dir / 'requirements.txt'} failed "
                                 f"(status {done.returncode}):\n" + "\n".join(tail))
    return code_dir


def run_job(
    name: str,
    script: Path,
    job_dir: Path,
    channels: Mapping[str, FetchChannel],
    hyperparameters: Mapping[str, str],
    echo: bool = True,
    out: Optional[IO[str]] = None,
    python: Optional[str] = None,
    base_env: Optional[Mapping[str, str]] = None,
) -> Path:
    """Run one training job as SageMaker would; returns its model folder.

    With a ``code`` channel, the code is installed from it (:func:`install_code`) and
    ``script.name`` runs from the unpacked folder; without one, ``script`` runs where it is.

    Args:
        python: The container's interpreter (default: the stack's).
        base_env: The container's environment before the ``SM_*`` variables (default: the
            stack's own, see ``python_child_env``).

    Raises:
        TrainingFailed: the script exited non-zero (message: the job, status and last output),
            or its code could not be installed.
    """
    for sub in ("model", "output/data", "output/intermediate", "input/config"):
        (job_dir / sub).mkdir(parents=True, exist_ok=True)
    for channel, fetch in channels.items():
        fetch(channel, job_dir / "input" / "data" / channel)
    (job_dir / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(dict(hyperparameters), indent=2))
    python = python or sys.executable
    sm_env = job_environment(job_dir, list(channels), hyperparameters, name)
    if base_env is None:
        env = python_child_env(sm_env)
    else:
        env = {**base_env, "PYTHONUNBUFFERED": "1", **sm_env}
    if CODE_CHANNEL in channels:
        script = install_code(job_dir, python, env) / script.name
    argv = [python, str(script)]
    for key, value in hyperparameters.items():
        argv += [f"--{key}", str(value)]
    child = Child(name, argv, env=env, cwd=str(script.parent), echo=echo, out=out).start()
    try:
        status = child.run_to_end()
    finally:
        child.stop(grace=2.0)  # no-op once it has exited; kills it when we are interrupted
    if status != 0:
        (job_dir / "output" / "failure").write_text("".join(child.tail[-50:]))
        raise TrainingFailed(f"training job {name} ({script.name}) exited with status {status}; "
                             "last output:\n" + "".join(child.tail[-15:]))
    return job_dir / "model"


def train(
    work_dir: Path,
    inputs: TrainingInputs,
    fetch_channels: Optional[Mapping[str, FetchChannel]] = None,
    echo: bool = True,
    out: Optional[IO[str]] = None,
    force: bool = False,
    code_bundle: Optional[Path] = None,
    python: Optional[str] = None,
    base_env: Optional[Mapping[str, str]] = None,
) -> TrainedModel:
    """Reuse the stored run for these inputs or run both jobs.

    Args:
        work_dir: the stack's work folder (runs go under ``runs/<key>``).
        inputs: events, items (and users) and hyperparameters.
        fetch_channels: how to fill the ``events``/``items``/``deletions`` channels (default: copy
            the files, and a ``deletions`` channel with only the marker); the stack passes S3
            downloads from the embedded AWS.
        echo: stream the jobs' output.
        force: train even when a stored run matches.
        code_bundle: the ``code`` channel's tarball (default: ``sagemaker/`` packed as the app
            packs it, without wheels: the stack's interpreter has the packages).
        python: the jobs' interpreter (default: the stack's); ``base_env``: their environment.
    """
    from recsys_lambdas import contracts

    out = out or sys.stdout
    if not force:
        found = find_reusable(work_dir, inputs)
        if found is not None:
            return found
    facts = run_key(inputs)
    run_dir = work_dir / "runs" / facts["key"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an incomplete earlier attempt
    run_dir.mkdir(parents=True)
    started = time.monotonic()
    sources: dict[str, FetchChannel] = dict(fetch_channels or {})
    sources.setdefault(contracts.TRAINING_CHANNEL_EVENTS, _copy_channel(inputs.events))
    if inputs.items is not None:
        sources.setdefault(contracts.TRAINING_CHANNEL_ITEMS, _copy_channel(inputs.items))
    else:
        sources.pop(contracts.TRAINING_CHANNEL_ITEMS, None)
    if inputs.users is not None:
        sources.setdefault(contracts.TRAINING_CHANNEL_USERS, _copy_channel(inputs.users))
    else:
        sources.pop(contracts.TRAINING_CHANNEL_USERS, None)
    # as in the pipeline, the deletions channel always has an object (at least the marker)
    sources.setdefault(contracts.TRAINING_CHANNEL_DELETIONS, _deletions_marker)
    scripts = sagemaker_dir()
    if code_bundle is None:
        from recsys_infra.source_bundle import build_source_tarball

        code_bundle = build_source_tarball(scripts, run_dir / "sourcedir.tar.gz")
    sources[CODE_CHANNEL] = _copy_channel(Path(code_bundle))
    stamp_time = time.strftime("%Y%m%dT%H%M%S", time.gmtime())

    retrieval_dir = run_job(f"train-retrieval-{stamp_time}", scripts / "train_retrieval.py",
                            run_dir / "retrieval", sources, inputs.hyperparameters, echo, out,
                            python=python, base_env=base_env)
    retrieval_tar = make_tarball(retrieval_dir, run_dir / "retrieval" / "model.tar.gz")

    def fetch_retrieval(channel: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(retrieval_tar, dest / "model.tar.gz")

    ranker_sources = dict(sources)
    ranker_sources[contracts.TRAINING_CHANNEL_RETRIEVAL] = fetch_retrieval
    ranker_dir = run_job(f"train-ranker-{stamp_time}", scripts / "train_ranker.py",
                         run_dir / "ranker", ranker_sources, inputs.hyperparameters, echo, out,
                         python=python, base_env=base_env)
    ranker_tar = make_tarball(ranker_dir, run_dir / "ranker" / "model.tar.gz")
    model_dir = extract_tarball(ranker_tar, run_dir / "serving" / "model")

    output_data = run_dir / "ranker" / "output" / "data"
    manifest_path = output_data / "manifest.json"
    if not manifest_path.is_file():
        manifest_path = model_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    batch_dir = output_data / contracts.BATCH_OUTPUT_DIR
    seconds = time.monotonic() - started
    (run_dir / STAMP_FILE).write_text(json.dumps({
        "facts": facts,
        "trained_at": stamp_time,
        "seconds": round(seconds, 1),
        "events": str(inputs.events),
        "items": str(inputs.items) if inputs.items else None,
        "users": str(inputs.users) if inputs.users else None,
        "manifest": manifest,
    }, indent=2))
    return TrainedModel(run_dir, model_dir, batch_dir if batch_dir.is_dir() else None, manifest,
                        reused=False, seconds=seconds)


def prune_runs(work_dir: Path, keep: Path, max_runs: int = 3) -> None:
    """Delete the oldest stored runs beyond ``max_runs`` (never ``keep``)."""
    runs_dir = work_dir / "runs"
    if not runs_dir.is_dir():
        return
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir() and p != keep),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[max(0, max_runs - 1):]:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["ChildFailed", "TrainedModel", "TrainingFailed", "TrainingInputs", "find_reusable",
           "prune_runs", "run_key", "train"]
