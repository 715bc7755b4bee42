"""Helpers of the pipeline Lambda tests (S3 layouts as SageMaker writes them)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from typing import Any

from recsys_lambdas import contracts

REGION = "us-east-1"
PREFIX = "recsys-test"
BUCKET = "recsys-test-artifacts"
STACK = "recsys-test-serving"
DEPLOY_ROLE = "arn:aws:iam::123456789012:role/deploy"


def manifest(ndcg: float, version: str = "v1") -> dict[str, Any]:
    """A manifest as job 2 writes it (only the fields the pipeline reads)."""
    metrics = {"HR@10": 0.2, "NDCG@10": ndcg, "HR@20": 0.3, "NDCG@20": ndcg + 0.02}
    return {
        "model_version": version,
        "format_version": 1,
        "offline_metrics": {"popularity": dict(metrics, **{"NDCG@10": 0.01}), "two_stage": metrics},
        "index": {"recall_at_10": 0.99},
        "training_data": {"events": 100},
    }


def tar_gz(files: Mapping[str, bytes | str]) -> bytes:
    """A tar.gz with ``files`` (name -> content), like SageMaker's output.tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def put_training_output(s3, job: str, files: Mapping[str, bytes | str]) -> str:
    """Upload ``output.tar.gz`` (and a model.tar.gz) of a job; return the model.tar.gz URI."""
    base = f"{contracts.MODELS_PREFIX}{job}/output/"
    s3.put_object(Bucket=BUCKET, Key=base + "output.tar.gz", Body=tar_gz(files))
    s3.put_object(Bucket=BUCKET, Key=base + "model.tar.gz", Body=tar_gz({"manifest.json": "{}"}))
    return f"s3://{BUCKET}/{base}model.tar.gz"
