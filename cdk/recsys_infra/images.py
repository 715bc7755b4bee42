"""SageMaker container images and the packaged ``sagemaker/`` sources, resolved offline at synth."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from aws_cdk import Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from recsys_infra.config import REPO_ROOT, ConfigError
from recsys_infra.container import SKLEARN_IMAGE
from recsys_infra.source_bundle import build_code_bundle

SKLEARN_FRAMEWORK_VERSION = SKLEARN_IMAGE.framework_version
SAGEMAKER_SOURCE_DIR = REPO_ROOT / "sagemaker"
TRAINING_SCRIPTS = {"retrieval": "train_retrieval.py", "ranker": "train_ranker.py"}
INFERENCE_SCRIPT = "inference.py"
# Network isolation: the jobs get the code bundle as this input channel (as the SageMaker SDK
# does), and the endpoint gets it inside model.tar.gz, under code/ (job 2 copies it there).
CODE_CHANNEL = "code"
CODE_CHANNEL_DIR = f"/opt/ml/input/data/{CODE_CHANNEL}"
MODEL_CODE_DIR = "/opt/ml/model/code"
# Where the bundle's wheels are cached (`make install` fills it; synth downloads only what is missing).
WHEEL_CACHE_ENV = "RECSYS_WHEEL_CACHE"
DEFAULT_WHEEL_CACHE = REPO_ROOT / ".cache" / "wheels"


def wheel_cache() -> Path:
    """The wheel cache folder (``$RECSYS_WHEEL_CACHE``, default ``.cache/wheels``)."""
    return Path(os.environ.get(WHEEL_CACHE_ENV) or DEFAULT_WHEEL_CACHE)


@functools.cache
def _sdk_image_table(framework: str) -> dict:
    """The SageMaker SDK's bundled image table (``sagemaker/core/image_uri_config/<fw>.json``).

    Read as data rather than through ``sagemaker.core.image_uris``: importing the SDK costs
    ~10 s of CPU per synth; tests check both give the same URI.
    """
    spec = importlib.util.find_spec("sagemaker")  # a namespace package: nothing heavy runs
    for location in (spec.submodule_search_locations or []) if spec else []:
        table = Path(location) / "core" / "image_uri_config" / f"{framework}.json"
        if table.exists():
            return json.loads(table.read_text())
    raise FileNotFoundError(
        f"the SageMaker Python SDK's image table {framework}.json was not found; install 'sagemaker>=3'"
    )


def sklearn_image_uri(region: str, scope: str) -> str:
    """The SageMaker scikit-learn framework image for ``region`` (``training`` or ``inference``).

    Offline: the SDK's bundled image table, no AWS call, no credentials. Same result as
    ``sagemaker.core.image_uris.retrieve("sklearn", region=..., version="1.9-0", image_scope=...)``.

    Raises:
        ConfigError: The region or scope has no image in the SDK's table.
    """
    table = _sdk_image_table("sklearn")
    try:
        version = table[scope]["versions"][SKLEARN_FRAMEWORK_VERSION]
    except KeyError:
        raise ConfigError(
            f"no scikit-learn {SKLEARN_FRAMEWORK_VERSION} {scope} image in the SageMaker SDK"
        ) from None
    registry = version["registries"].get(region)
    if registry is None:
        raise ConfigError(
            f"region: {region!r} has no SageMaker scikit-learn {SKLEARN_FRAMEWORK_VERSION} image"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    tag = f"{SKLEARN_FRAMEWORK_VERSION}-{version['processors'][0]}-{version['py_versions'][0]}"
    return f"{registry}.dkr.ecr.{region}.{domain}/{version['repository']}:{tag}"


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


@functools.cache
def grant_image_pull(role: iam.IRole, image_uri: str) -> None:
    """Let a SageMaker role pull the framework image: its repository only, plus the
    account-level ECR token call, which has no resource to scope to."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            resources=[image_repository_arn(image_uri)],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
    )


def source_tarball() -> Path:
    """Build ``sourcedir.tar.gz`` for the framework image (deterministic bytes): ``sagemaker/``,
    the image's Python's wheels from the lock and the offline ``requirements.txt``."""
    out_dir = Path(tempfile.gettempdir()) / f"recsys-sagemaker-source-{os.getpid()}"
    return build_code_bundle(SAGEMAKER_SOURCE_DIR, out_dir / "sourcedir.tar.gz",
                             SKLEARN_IMAGE.python_version, wheel_cache())


class SourceAsset(Construct):
    """The code bundle as a file asset, with its exact S3 URI and object ARN, and the path the
    jobs find it at when it arrives as their ``code`` channel.

    Attributes:
        asset: The CDK file asset.
        s3_uri: ``s3://bucket/key`` of the bundle (the ``code`` channel's S3 prefix).
        object_arn: The ARN of that one object, to grant read on it and nothing else.
        container_path: The bundle inside a training container
            (``/opt/ml/input/data/code/<key name>``), for ``sagemaker_submit_directory``.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(self, "Asset", path=str(source_tarball()))
        self.s3_uri = self.asset.s3_object_url
        self.object_arn = f"{self.asset.bucket.bucket_arn}/{self.asset.s3_object_key}"
        key = self.asset.s3_object_key
        if Token.is_unresolved(key):
            raise ConfigError("the code bundle's S3 key is not known at synth; use a stack "
                              "synthesizer with a fixed asset key")
        self.container_path = f"{CODE_CHANNEL_DIR}/{key.rsplit('/', 1)[-1]}"

    def grant_channel_read(self, role: iam.IRole) -> None:
        """Let ``role`` read the bundle as an S3-prefix channel: list that one key, get it."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.object_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.asset.bucket.bucket_arn],
                conditions={"StringEquals": {"s3:prefix": self.asset.s3_object_key}},
            )
        )
