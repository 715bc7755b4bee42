"""SageMaker container images and the packaged ``sagemaker/`` sources, resolved offline at synth."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from recsys_infra.config import REPO_ROOT
from recsys_infra.source_bundle import build_source_tarball

SKLEARN_FRAMEWORK_VERSION = "1.9-0"  # matches scikit-learn 1.9.x in pyproject.toml
SAGEMAKER_SOURCE_DIR = REPO_ROOT / "sagemaker"
TRAINING_SCRIPTS = {"retrieval": "train_retrieval.py", "ranker": "train_ranker.py"}
INFERENCE_SCRIPT = "inference.py"


@functools.lru_cache(maxsize=None)
def sklearn_image_uri(region: str, scope: str) -> str:
    """The SageMaker scikit-learn framework image for ``region`` (``training`` or ``inference``).

    Uses the SageMaker SDK's bundled image table: no AWS call, no credentials.
    """
    from sagemaker.core import image_uris  # slow import (~several s): only when synthesising

    return str(
        image_uris.retrieve(
            "sklearn", region=region, version=SKLEARN_FRAMEWORK_VERSION, image_scope=scope
        )
    )


def image_repository_arn(image_uri: str) -> str:
    """The ECR repository ARN of an image URI, for a pull permission scoped to that repository.

    ``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3`` ->
    ``arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn``.
    """
    registry, _, repo_and_tag = image_uri.partition("/")
    account, _, rest = registry.partition(".dkr.ecr.")
    region = rest.split(".", 1)[0]
    repository = repo_and_tag.split(":", 1)[0].split("@", 1)[0]
    if not (account.isdigit() and region and repository):
        raise ValueError(f"{image_uri!r} is not an ECR image URI")
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"


@functools.lru_cache(maxsize=None)
def source_tarball() -> Path:
    """Build ``sourcedir.tar.gz`` of ``sagemaker/`` once per process (deterministic bytes)."""
    out_dir = Path(tempfile.gettempdir()) / f"recsys-sagemaker-source-{os.getpid()}"
    return build_source_tarball(SAGEMAKER_SOURCE_DIR, out_dir / "sourcedir.tar.gz")


class SourceAsset(Construct):
    """The ``sagemaker/`` tarball as a file asset, with its exact S3 URI and object ARN.

    Attributes:
        asset: The CDK file asset.
        s3_uri: ``s3://bucket/key`` for ``sagemaker_submit_directory``.
        object_arn: The ARN of that one object, to grant read on it and nothing else.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(self, "Asset", path=str(source_tarball()))
        self.s3_uri = self.asset.s3_object_url
        self.object_arn = f"{self.asset.bucket.bucket_arn}/{self.asset.s3_object_key}"
