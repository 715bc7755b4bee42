"""The stacks: each only wires constructs together.

- ``<prefix>-storage``: buckets, feature store tables, event delivery stream, alarm topic;
- ``<prefix>-serving`` (real-time mode only): the SageMaker endpoint, owned by CloudFormation and
  updated by the pipeline's promote step through its ``ModelDataUrl`` parameter;
- ``<prefix>-api``: API Gateway and the API Lambda functions;
- ``<prefix>-training``: the Step Functions pipeline and its schedule, and the batch inference
  state machine (``batch_inference``).

The serving stack is separate so a promotion (``UpdateStack`` of that stack) can touch nothing
but the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aws_cdk import App, CfnOutput, Environment, Stack, Tags
from constructs import Construct

from recsys_infra.api import Api
from recsys_infra.batch_inference import BatchInference
from recsys_infra.config import EnvironmentConfig
from recsys_infra.monitoring import AlarmTopic, ServiceMonitoring
from recsys_infra.serving import Serving
from recsys_infra.shared import shared_resources
from recsys_infra.storage import Storage
from recsys_infra.training_pipeline import TrainingPipeline


class StorageStack(Stack):
    """Data that outlives every other stack."""

    def __init__(
        self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = Storage(self, "Storage", cfg=cfg)
        self.alarms = AlarmTopic(self, "Alarms", cfg=cfg)
        CfnOutput(self, "EventsBucketName", value=self.storage.events_bucket.bucket_name)
        CfnOutput(self, "ArtifactsBucketName", value=self.storage.artifacts_bucket.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn)


class ServingStack(Stack):
    """The real-time endpoint."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        storage: StorageStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        shared = shared_resources(self, cfg)
        self.serving = Serving(
            self,
            "Serving",
            cfg=cfg,
            artifacts_bucket=shared.artifacts_bucket,
            alarm_topic=shared.alarm_topic,
        )
        CfnOutput(self, "EndpointName", value=cfg.endpoint_name)
        # The one cross-stack value: the training stack's deploy role may pass this role. A
        # promotion never changes the role, so the export never blocks an update.
        self.model_role_arn = self.serving.execution_role.role_arn


class ApiStack(Stack):
    """The HTTP API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        storage: StorageStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        shared = shared_resources(self, cfg)
        self.api = Api(
            self,
            "Api",
            cfg=cfg,
            tables=shared.tables,
            delivery_stream_name=shared.delivery_stream_name,
            delivery_stream_arn=shared.delivery_stream_arn,
            events_bucket=shared.events_bucket,
        )
        self.monitoring = ServiceMonitoring(
            self,
            "Monitoring",
            cfg=cfg,
            rest_api=self.api.rest_api,
            functions={name: f.function for name, f in self.api.functions.items()},
            topic=shared.alarm_topic,
        )
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{cfg.region}.console.aws.amazon.com/cloudwatch/home?region={cfg.region}"
            f"#dashboards:name={cfg.prefix}-recsys",
        )
        if self.api.api_key is not None:
            CfnOutput(self, "ApiKeyId", value=self.api.api_key.key_id)


class TrainingStack(Stack):
    """The offline pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        storage: StorageStack,
        serving: Optional[ServingStack],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(storage)
        if serving is not None:
            self.add_stack_dependency(serving)
        shared = shared_resources(self, cfg)
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            cfg=cfg,
            events_bucket=shared.events_bucket,
            artifacts_bucket=shared.artifacts_bucket,
            tables=shared.tables,
            alarm_topic=shared.alarm_topic,
            serving_stack_name=serving.stack_name if serving else "",
            model_role_arn=serving.model_role_arn if serving else None,
        )
        CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        # on-demand batch recommendations from the serving model (docs/DEPLOY.md, Batch inference)
        self.batch_inference = BatchInference(
            self, "BatchInference", cfg=cfg, artifacts_bucket=shared.artifacts_bucket
        )
        CfnOutput(
            self,
            "BatchInferenceStateMachineArn",
            value=self.batch_inference.state_machine.state_machine_arn,
        )


@dataclass
class RecsysStacks:
    """The stacks of one environment (``serving`` is None in batch mode)."""

    storage: StorageStack
    serving: Optional[ServingStack]
    api: ApiStack
    training: TrainingStack

    def all(self) -> list[Stack]:
        """Every stack, in deployment order."""
        return [s for s in (self.storage, self.serving, self.api, self.training) if s is not None]


def build(app: App, cfg: EnvironmentConfig) -> RecsysStacks:
    """Add one environment's stacks to ``app``.

    Stack names are ``<prefix>-<concern>``; the region is concrete (synth needs no lookups),
    the account is the deploying credentials' unless ``account`` is set in ``cdk.json``.
    """
    env = Environment(account=cfg.account, region=cfg.region)

    def kwargs(concern: str, description: str) -> dict:
        return {
            "stack_name": cfg.stack_name(concern),
            "env": env,
            "description": f"Recommendation and search template ({cfg.name}): {description}",
        }

    storage = StorageStack(
        app, f"{cfg.prefix}-storage", cfg=cfg, **kwargs("storage", "storage and feature store")
    )
    serving = None
    if cfg.realtime:
        serving = ServingStack(
            app,
            f"{cfg.prefix}-serving",
            cfg=cfg,
            storage=storage,
            **kwargs("serving", "SageMaker endpoint"),
        )
    api = ApiStack(app, f"{cfg.prefix}-api", cfg=cfg, storage=storage, **kwargs("api", "HTTP API"))
    training = TrainingStack(
        app,
        f"{cfg.prefix}-training",
        cfg=cfg,
        storage=storage,
        serving=serving,
        **kwargs("training", "training pipeline"),
    )
    for stack in (storage, serving, api, training):
        if stack is not None:
            Tags.of(stack).add("project", "recsys")
            Tags.of(stack).add("environment", cfg.name)
    return RecsysStacks(storage, serving, api, training)
