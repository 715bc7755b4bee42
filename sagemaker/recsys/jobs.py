"""SageMaker training-job entry points (``train_retrieval.py`` and ``train_ranker.py`` call these).

They read what SageMaker provides: channels as ``SM_CHANNEL_<NAME>`` directories, the model
directory ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR`` for extra outputs, and hyperparameters as
``--name value`` arguments. Metrics are printed as ``METRIC name=value`` lines (the regex
``METRIC name=([0-9.]+)`` picks them up). On failure the reason goes to ``/opt/ml/output/failure``
(``SM_OUTPUT_DIR``), which SageMaker shows as the job's FailureReason, and the exit code is 1.

Job 2 also copies the code it runs (its code directory: ``inference.py``, ``recsys/``,
``requirements.txt``, ``wheels/``) into ``SM_MODEL_DIR/code``, SageMaker's layout for inference
code inside ``model.tar.gz``: the network-isolated endpoint installs and runs exactly that code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

from . import data as data_mod
from .batch_inference import write_histories
from .model import Recommender
from .schemas import parse_column_map
from .train import (
    apply_event_value_threshold,
    fit_ranker,
    fit_retrieval,
    load_data,
    load_users,
    split_hyperparameters,
    write_batch_output,
)


def _log(message: str) -> None:
    print(message, flush=True)


def parse_hyperparameter_args(argv: List[str]) -> Dict[str, str]:
    """``--name value`` pairs (as SageMaker passes hyperparameters) -> dict."""
    out: Dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; hyperparameters are --name value pairs")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ValueError(f"hyperparameter {arg} has no value")
            key, value = arg[2:], argv[i + 1]
            i += 2
        out[key] = value.strip('"')
    return out


def _env_dir(name: str, default: Optional[str] = None, required: bool = True) -> Optional[Path]:
    value = os.environ.get(name, default)
    if value is None or (not Path(value).exists() and not required):
        if required:
            raise ValueError(f"{name} is not set: the job needs this channel/directory")
        return None
    return Path(value)


def _channel(name: str, required: bool) -> Optional[Path]:
    """A channel's folder; an optional one that is missing, empty or holds only markers (files
    named ``_...``, which the pipeline writes so SageMaker accepts the prefix) is None."""
    path = _env_dir(f"SM_CHANNEL_{name.upper()}", required=required)
    if path is not None and not required and (
        not path.is_dir() or not any(f.is_file() and not f.name.startswith(("_", "."))
                                     for f in path.rglob("*"))
    ):
        return None
    return path


def _required_channel(name: str) -> Path:
    path = _channel(name, required=True)
    assert path is not None  # _env_dir raised otherwise
    return path


def _run(job, argv: List[str]) -> int:
    started = time.time()
    try:
        job(parse_hyperparameter_args(argv))
    except Exception as exc:
        expected = isinstance(exc, (data_mod.DataError, ValueError, FileNotFoundError))
        message = f"{type(exc).__name__}: {exc}" if not expected else str(exc)
        print(f"[job] FAILED: {message}", file=sys.stderr, flush=True)
        if not expected:
            traceback.print_exc()
        out = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "failure").write_text(message[:1000])
        except OSError:
            pass
        return 1
    _log(f"[job] done in {time.time() - started:.1f}s")
    return 0


def retrieval_job(hyperparameters: Dict[str, str]) -> None:
    """Job 1: embeddings, HNSW index, graphs, popularity and the text index -> SM_MODEL_DIR."""
    rparams, kparams = split_hyperparameters(hyperparameters)
    events_dir = _channel("events", required=True)
    items_dir = _channel("items", required=False)
    deletions_dir = _channel("deletions", required=False)
    users_dir = _channel("users", required=False)
    model_dir = _env_dir("SM_MODEL_DIR", "/opt/ml/model")
    assert model_dir is not None
    _, items, seqs, summary = load_data(events_dir, items_dir, kparams.max_bad_fraction, _log,
                                        deletions_path=deletions_dir,
                                        event_value_threshold=rparams.event_value_threshold,
                                        column_map=kparams.column_map)
    users = load_users(users_dir, kparams.max_bad_fraction, kparams.column_map, _log) if users_dir else None
    rec = fit_retrieval(seqs, items, rparams, summary, _log,
                        users=dict(zip(users.user_ids, users.attributes)) if users is not None else None)
    if kparams.column_map:
        rec.manifest["column_map"] = kparams.column_map  # job 2 reads the events with it too
    rec.save(model_dir)
    if users is not None:  # carried to job 2 and into the serving model
        data_mod.write_users(users, model_dir / data_mod.USERS_MODEL_FILE)
    _log(f"[job] retrieval model {rec.model_version} saved to {model_dir}")


def extract_model(channel: Path, into: Path) -> Path:
    """A channel holding ``model.tar.gz`` (or an extracted model) -> the model directory."""
    if (channel / "manifest.json").exists():
        return channel
    archives = sorted(channel.rglob("model.tar.gz"))
    if not archives:
        raise FileNotFoundError(f"{channel}: no model.tar.gz from the retrieval job")
    with tarfile.open(archives[0], "r:gz") as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()) or member.name.startswith(("/", "..")) or ".." in Path(member.name).parts:
                raise ValueError(f"{archives[0]}: unsafe member {member.name!r} in the model archive")
        tar.extractall(into)  # noqa: S202 - members checked above
    return into


MODEL_CODE_DIR = "code"  # SageMaker's place for inference code inside model.tar.gz
_NOT_CODE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache",
                                   ".ruff_cache")


def copy_code(code_dir: Path, model_dir: Path) -> Path:
    """Copy the job's code directory into ``model_dir/code`` (replacing an earlier copy).

    Raises:
        FileNotFoundError: ``code_dir`` has no ``inference.py`` (not a bundle of this project).
    """
    code_dir, target = Path(code_dir), Path(model_dir) / MODEL_CODE_DIR
    if not (code_dir / "inference.py").is_file():
        raise FileNotFoundError(f"{code_dir} has no inference.py: not the recsys code directory")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(code_dir, target, ignore=_NOT_CODE)
    return target


def ranker_job(hyperparameters: Dict[str, str], code_dir: Optional[Path] = None) -> None:
    """Job 2: the ranker on job 1's output -> the serving model + manifest + batch outputs.

    Stage 1 is refitted inside job 2 (without the ranker's targets) with job 1's own
    hyperparameters, read from its artifact, so both jobs need only their own settings.
    ``code_dir`` (the entry point's folder) is copied into the model as ``code/``.
    """
    _, kparams = split_hyperparameters(hyperparameters)
    events_dir = _required_channel("events")
    retrieval_dir = _required_channel("retrieval")
    model_dir = _env_dir("SM_MODEL_DIR", "/opt/ml/model")
    output_dir = _env_dir("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    with tempfile.TemporaryDirectory() as tmp:
        job1_dir = extract_model(retrieval_dir, Path(tmp))
        rec = Recommender.load(job1_dir)
        # the users table: job 2's own users channel, else the one job 1 carried
        users_source = _channel("users", required=False) or (job1_dir / data_mod.USERS_MODEL_FILE)
        users = data_mod.load_users(users_source, kparams.max_bad_fraction) if users_source.exists() else None
        column_map = parse_column_map(kparams.column_map or str(rec.manifest.get("column_map", "")))
        deletions = data_mod.load_deletions(_channel("deletions", required=False))
        events = data_mod.load_events(events_dir, kparams.max_bad_fraction, deletions, column_map=column_map)
        if deletions:
            _log(f"[data] {len(deletions):,} deletion record(s): dropped {events.report.deleted_rows:,} "
                 f"event(s) of {events.report.deleted_users:,} deleted user(s)")
        # job 1's event_value_threshold, read from its artifact like its other hyperparameters
        events = apply_event_value_threshold(events, rec.retrieval.params.event_value_threshold, _log)
        seqs = data_mod.encode(events, rec.catalogue.item_ids)
        if seqs.n_items != len(rec.catalogue):
            raise ValueError(
                f"the events hold {seqs.n_items - len(rec.catalogue)} item(s) that job 1's model does not know; "
                "run both jobs on the same events"
            )
        _log(f"[data] {len(events):,} events, {seqs.n_users:,} users")
        final = fit_ranker(rec, seqs, rec.retrieval.params, kparams, _log)
    final.save(model_dir)
    if model_dir is not None:  # the users' histories, for batch inference (Batch Transform)
        write_histories(seqs.user_ids, seqs.item_ids, seqs.items, model_dir)
    if users is not None and model_dir is not None:
        data_mod.write_users(users, model_dir / data_mod.USERS_MODEL_FILE)
        _log(f"[job] users table ({len(users):,} users) carried into {model_dir / data_mod.USERS_MODEL_FILE}")
    if code_dir is not None and model_dir is not None:
        _log(f"[job] inference code {copy_code(code_dir, model_dir)} from {code_dir}")
    write_batch_output(final, seqs, output_dir, kparams.batch_k, log=_log, workers=kparams.workers)
    _log(f"[job] serving model {final.model_version} saved to {model_dir}")


def main_retrieval(argv: Optional[List[str]] = None) -> int:
    return _run(retrieval_job, sys.argv[1:] if argv is None else argv)


def main_ranker(argv: Optional[List[str]] = None, code_dir: Optional[Path] = None) -> int:
    """Job 2's entry point; ``code_dir`` (``train_ranker.py``'s folder) goes into the model."""
    return _run(lambda hps: ranker_job(hps, code_dir), sys.argv[1:] if argv is None else argv)
