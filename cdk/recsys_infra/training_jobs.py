"""The two SageMaker training jobs as Step Functions tasks: channels, hyperparameters, metrics.

Both jobs run the scikit-learn framework image with the ``sagemaker/`` bundle; job 1 trains the
retrieval model (embeddings, HNSW index, graphs), job 2 the ranker on job 1's model. Both run
network-isolated: the bundle arrives as the ``code`` input channel (as the SageMaker SDK sends
it) and installs its wheels offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import data_key_by_alias
from recsys_infra.images import CODE_CHANNEL, SourceAsset

# The METRIC lines the training scripts print (contracts.METRIC_LINE_FORMAT), per job.
METRICS = {
    "retrieval": ("index_recall_at_10",),
    "ranker": (
        "two_stage_HR@10",
        "two_stage_NDCG@10",
        "two_stage_HR@20",
        "two_stage_NDCG@20",
        "retrieval_NDCG@10",
        "candidate_recall",
    ),
}


class StateS3Uri(tasks.S3Location):
    """An S3 URI read from the execution state, granting nothing.

    ``S3Location.from_json_expression`` would add s3:GetObject/ListBucket/PutObject on ``*`` to
    the training role; the role already has exactly the prefixes it needs.
    """

    def __init__(self, json_path: str) -> None:
        super().__init__()
        self._json_path = json_path

    def bind(self, task, *, for_reading=None, for_writing=None) -> tasks.S3LocationConfig:
        return tasks.S3LocationConfig(uri=sfn.JsonPath.string_at(self._json_path))


class FixedS3Uri(tasks.S3Location):
    """A fixed S3 URI, granting nothing (the role's grants are explicit)."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self._uri = uri

    def bind(self, task, *, for_reading=None, for_writing=None) -> tasks.S3LocationConfig:
        return tasks.S3LocationConfig(uri=self._uri)


def code_channel(source: SourceAsset) -> tasks.Channel:
    """The ``code`` channel: the bundle object, at ``source.container_path`` in the job."""
    return tasks.Channel(
        channel_name=CODE_CHANNEL,
        data_source=tasks.DataSource(
            s3_data_source=tasks.S3DataSource(
                s3_location=FixedS3Uri(source.s3_uri),
                s3_data_type=tasks.S3DataType.S3_PREFIX,
                s3_data_distribution_type=tasks.S3DataDistributionType.FULLY_REPLICATED,
            )
        ),
    )


def metric_regex(name: str) -> str:
    """The SageMaker metric regex for one ``METRIC name=value`` line."""
    return "METRIC " + re.escape(name) + "=([-+0-9.eE]+)"


def framework_hyperparameters(
    script: str, submit_directory: str, region: str, extra: Mapping[str, Any]
) -> dict:
    """Framework-container hyperparameters, JSON-encoded as the SageMaker SDK sends them."""
    values = {
        **dict(extra.items()),
        "sagemaker_program": script,
        "sagemaker_submit_directory": submit_directory,
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
    }
    return {key: json.dumps(value) for key, value in values.items()}


def s3_channel(name: str, uri_path: str) -> tasks.Channel:
    """A fully replicated S3-prefix input channel whose URI is read from the execution state."""
    return tasks.Channel(
        channel_name=name,
        data_source=tasks.DataSource(
            s3_data_source=tasks.S3DataSource(
                s3_location=StateS3Uri(uri_path),
                s3_data_type=tasks.S3DataType.S3_PREFIX,
                s3_data_distribution_type=tasks.S3DataDistributionType.FULLY_REPLICATED,
            )
        ),
    )


def training_job(
    scope: Construct,
    construct_id: str,
    *,
    cfg: EnvironmentConfig,
    role: iam.IRole,
    job_suffix: str,
    script: str,
    source: SourceAsset,
    image_uri: str,
    hyperparameters: Mapping[str, Any],
    channels: list[tasks.Channel],
    result_path: str,
) -> tasks.SageMakerCreateTrainingJob:
    """One training job task (``.sync``: the state waits for the job to end).

    The job is named ``<prefix>-<job_suffix>-<runId>`` and writes under ``$.run.outputUri``; its
    result is ``{jobName, modelDataUrl}`` at ``result_path``. It runs network-isolated with
    ``source`` as its ``code`` channel (``role`` is granted read on that one object).
    """
    source.grant_channel_read(role)
    instance_type = cfg.training.instance_type.removeprefix("ml.")
    data_key = data_key_by_alias(scope, cfg)  # encryption: kms -> volumes and output
    return tasks.SageMakerCreateTrainingJob(
        scope,
        construct_id,
        training_job_name=sfn.JsonPath.format(
            f"{cfg.prefix}-{job_suffix}-{{}}", sfn.JsonPath.string_at("$.run.runId")
        ),
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        role=role,
        algorithm_specification=tasks.AlgorithmSpecification(
            training_image=tasks.DockerImage.from_registry(image_uri),
            training_input_mode=tasks.InputMode.FILE,
            metric_definitions=[
                tasks.MetricDefinition(name=name, regex=metric_regex(name))
                for name in METRICS[job_suffix]
            ],
        ),
        hyperparameters=framework_hyperparameters(
            script, source.container_path, cfg.region, hyperparameters
        ),
        input_data_config=[*channels, code_channel(source)],
        enable_network_isolation=True,
        output_data_config=tasks.OutputDataConfig(
            s3_output_location=StateS3Uri("$.run.outputUri"), encryption_key=data_key
        ),
        resource_config=tasks.ResourceConfig(
            instance_count=1,
            instance_type=ec2.InstanceType(instance_type),
            volume_size=Size.gibibytes(cfg.training.volume_size_gb),
            volume_encryption_key=data_key,
        ),
        stopping_condition=tasks.StoppingCondition(
            max_runtime=Duration.minutes(cfg.training.max_runtime_minutes)
        ),
        result_selector={
            "jobName": sfn.JsonPath.string_at("$.TrainingJobName"),
            "modelDataUrl": sfn.JsonPath.string_at("$.ModelArtifacts.S3ModelArtifacts"),
        },
        result_path=result_path,
    )
