"""The evaluation gate: promote the new model only if it is not worse than the serving one.

The comparison is on ``offline_metrics.two_stage["NDCG@10"]`` of the two manifests (same
leave-last-out protocol, see docs/ML.md). A drop of at most ``tolerance`` still promotes,
because retraining on fresh events is worth a tiny offline regression; with no serving model
yet, any valid candidate is promoted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional

from recsys_lambdas.pipeline import artifacts
from recsys_lambdas.pipeline.artifacts import ArtifactError

GATE_METRIC_GROUP = "two_stage"
GATE_METRIC = "NDCG@10"
ENV_ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET"
ENV_NDCG_TOLERANCE = "NDCG_TOLERANCE"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, as the state machine sees it."""

    promote: bool
    reason: str
    candidate_score: float
    serving_score: Optional[float]
    tolerance: float


def gate_metric(manifest: Mapping[str, Any], where: str) -> float:
    """``offline_metrics.two_stage["NDCG@10"]`` of a manifest.

    Raises:
        ArtifactError: The metric is missing or not a finite number in [0, 1]; names ``where``.
    """
    try:
        value = manifest["offline_metrics"][GATE_METRIC_GROUP][GATE_METRIC]
    except (KeyError, TypeError):
        raise ArtifactError(
            f"{where}: manifest has no offline_metrics.{GATE_METRIC_GROUP}[{GATE_METRIC!r}]"
        ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ArtifactError(f"{where}: {GATE_METRIC} = {value!r} is not a number in [0, 1]")
    return float(value)


def decide(
    candidate: Mapping[str, Any],
    serving: Optional[Mapping[str, Any]],
    tolerance: float,
    *,
    candidate_where: str = "candidate",
    serving_where: str = "serving model",
) -> Decision:
    """Compare two manifests.

    Args:
        candidate: The new model's manifest.
        serving: The serving model's manifest, or None when nothing serves yet.
        tolerance: The largest NDCG@10 drop that still promotes (>= 0).

    Returns:
        The decision; ``promote`` is True when the candidate is not worse than ``serving`` by
        more than ``tolerance``, or when nothing serves.

    Raises:
        ArtifactError: The candidate's metric is missing or invalid (a broken model never
            passes). A broken *serving* manifest does not block: the candidate is promoted.
        ValueError: ``tolerance`` is negative.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    score = gate_metric(candidate, candidate_where)
    if serving is None:
        return Decision(True, "no model serves yet", score, None, tolerance)
    try:
        current = gate_metric(serving, serving_where)
    except ArtifactError as exc:
        return Decision(True, f"serving model has no usable metric ({exc})", score, None, tolerance)
    if score + tolerance >= current:
        verdict = "better than" if score > current else "within tolerance of"
        return Decision(
            True,
            f"{GATE_METRIC} {score:.4f} is {verdict} the serving model's {current:.4f}",
            score,
            current,
            tolerance,
        )
    return Decision(
        False,
        f"{GATE_METRIC} {score:.4f} is worse than the serving model's {current:.4f} by more "
        f"than {tolerance:g}",
        score,
        current,
        tolerance,
    )


def evaluate(s3: Any, bucket: str, model_data_url: str, tolerance: float) -> dict[str, Any]:
    """Read both manifests from S3 and decide.

    Args:
        s3: A boto3 S3 client.
        bucket: The artifacts bucket (holds ``models/serving.json``).
        model_data_url: The candidate's ``model.tar.gz`` URI (job 2's output).
        tolerance: See :func:`decide`.

    Returns:
        ``{"promote", "reason", "candidate": {...}, "serving": {...} | None, ...}`` for the state
        machine; ``candidate`` carries what the load and promote steps need.
    """
    output_url = artifacts.output_data_url(model_data_url)
    manifest = artifacts.read_manifest(s3, output_url)
    record = artifacts.read_serving_record(s3, bucket)
    decision = decide(
        manifest,
        record.get("manifest") if record else None,
        tolerance,
        candidate_where=output_url,
        serving_where=f"s3://{bucket}/{artifacts.SERVING_RECORD_KEY}",
    )
    candidate = {
        "modelDataUrl": model_data_url,
        "outputDataUrl": output_url,
        "modelVersion": str(manifest.get("model_version", "")),
        "manifest": _summary(manifest),
    }
    serving = None
    if record:
        serving = {k: record.get(k) for k in ("modelDataUrl", "modelVersion", "promotedAt")}
    return {**asdict(decision), "candidate": candidate, "serving": serving}


def _summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the next gate needs of this manifest (the state stays well below 256 KB)."""
    keys = ("model_version", "format_version", "offline_metrics", "index", "training_data")
    return {k: manifest[k] for k in keys if k in manifest}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Step Functions task: ``{"modelDataUrl": "s3://.../model.tar.gz"}`` -> the decision."""
    import boto3

    if not isinstance(event, Mapping) or not event.get("modelDataUrl"):
        raise ValueError("gate input needs modelDataUrl (job 2's model.tar.gz URI)")
    return evaluate(
        boto3.client("s3"),
        os.environ[ENV_ARTIFACTS_BUCKET],
        str(event["modelDataUrl"]),
        float(event.get("tolerance", os.environ.get(ENV_NDCG_TOLERANCE, "0"))),
    )
