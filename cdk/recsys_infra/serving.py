"""The SageMaker real-time endpoint: model, endpoint config (>= 2 instances), endpoint with
blue/green deployment and automatic rollback, target-tracking autoscaling, and alarms.

CloudFormation owns the endpoint. The model artifact is the ``ModelDataUrl`` parameter of the
serving stack: the training pipeline promotes a model by updating that parameter
(``UpdateStack`` with ``UsePreviousTemplate``), and ``cdk deploy`` keeps the parameter's previous
value, so neither undoes the other. Before the first model the parameter is empty and the
``HasModel`` condition leaves out the model, endpoint config, endpoint and autoscaling; the API
then answers from the batch table and the popular-items fallback.
"""

from __future__ import annotations

from aws_cdk import (
    ArnFormat,
    CfnCondition,
    CfnParameter,
    Duration,
    Fn,
    Stack,
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import promote

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import ATTACH, READ, data_key_alias_arn, grant_data_key
from recsys_infra.functions import retained_log_group
from recsys_infra.images import (
    INFERENCE_SCRIPT,
    MODEL_CODE_DIR,
    grant_image_pull,
    sklearn_image_uri,
)
from recsys_infra.nag import acknowledge_policy, finding

VARIANT_INSTANCE_COUNT = "sagemaker:variant:DesiredInstanceCount"  # the scaled dimension
VARIANT_NAME = "AllTraffic"  # stable: autoscaling and alarms address the variant by name
# The parameter names the promote step sets (one home: the Lambda that updates them).
MODEL_DATA_PARAMETER = promote.MODEL_DATA_PARAMETER
MODEL_VERSION_PARAMETER = promote.MODEL_VERSION_PARAMETER


class Serving(Construct):
    """The endpoint and its guardrails.

    Attributes:
        model_data_url: The ``ModelDataUrl`` CloudFormation parameter ("" = no model yet).
        has_model: The condition on every resource that needs a model.
        execution_role: The role SageMaker runs the model container with.
        endpoint: The endpoint (conditional on ``has_model``).
        alarms: The 5xx and latency alarms (also the blue/green rollback triggers).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        artifacts_bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        ep = cfg.endpoint
        endpoint_name = cfg.endpoint_name

        self.model_data_url = CfnParameter(
            stack,
            MODEL_DATA_PARAMETER,
            type="String",
            default="",
            allowed_pattern=r"^$|^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+\.tar\.gz$",
            description=(
                "S3 URI of the serving model.tar.gz; set by the training pipeline's promote step. "
                "Empty = no model yet (no endpoint; the API serves the fallbacks)."
            ),
        )
        self.model_version = CfnParameter(
            stack,
            MODEL_VERSION_PARAMETER,
            type="String",
            default="none",
            description="model_version of the serving model (for people and dashboards).",
        )
        self.has_model = CfnCondition(
            stack,
            "HasModel",
            expression=Fn.condition_not(
                Fn.condition_equals(self.model_data_url.value_as_string, "")
            ),
        )

        image_uri = sklearn_image_uri(cfg.region, "inference")
        self.execution_role = self._execution_role(cfg, image_uri, artifacts_bucket)

        self.alarms = self._alarms(cfg, alarm_topic)

        # Network-isolated: the container reaches nothing. Its code comes inside model.tar.gz
        # (code/, copied there by training job 2 with the wheels it installed), so the model
        # and its code are promoted together.
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.execution_role.role_arn,
            enable_network_isolation=True,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                model_data_url=self.model_data_url.value_as_string,
                environment={
                    "SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
                    "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_DIR,
                    "SAGEMAKER_REGION": cfg.region,
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "RECSYS_MODEL_VERSION": self.model_version.value_as_string,
                },
            ),
        )
        model.node.add_dependency(self.execution_role)
        endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=model.attr_model_name,
                    initial_instance_count=ep.instance_count,
                    instance_type=ep.instance_type,
                    initial_variant_weight=1.0,
                )
            ],
            # The instances' ML storage volumes, with encryption: kms.
            kms_key_id=data_key_alias_arn(self, cfg) if cfg.kms else None,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            # Keep the autoscaled instance count when a new model rolls out.
            retain_all_variant_properties=True,
            deployment_config=sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                        type="CANARY",
                        canary_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                            type="INSTANCE_COUNT", value=1
                        ),
                        wait_interval_in_seconds=ep.blue_green_wait_s,
                    ),
                    termination_wait_in_seconds=ep.blue_green_wait_s,
                    maximum_execution_timeout_in_seconds=max(1800, 4 * ep.blue_green_wait_s),
                ),
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[
                        sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name)
                        for alarm in self.alarms
                    ]
                ),
            ),
        )

        scalable_target = appscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="sagemaker",
            scalable_dimension=VARIANT_INSTANCE_COUNT,
            resource_id=f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}",
            min_capacity=ep.min_instances,
            max_capacity=ep.max_instances,
            # No RoleARN: Application Auto Scaling uses its service-linked role for SageMaker.
        )
        scalable_target.node.add_dependency(self.endpoint)
        scaling_policy = appscaling.CfnScalingPolicy(
            self,
            "InvocationsScaling",
            policy_name=f"{endpoint_name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=scalable_target.ref,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(ep.target_invocations_per_instance),
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=ep.scale_in_cooldown_s,
                scale_out_cooldown=ep.scale_out_cooldown_s,
            ),
        )
        for resource in (model, endpoint_config, self.endpoint, scalable_target, scaling_policy):
            resource.cfn_options.condition = self.has_model

    def _execution_role(
        self,
        cfg: EnvironmentConfig,
        image_uri: str,
        artifacts_bucket: s3.IBucket,
    ) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description=f"{cfg.prefix} SageMaker endpoint: read model artifacts, pull the image",
        )
        models_objects = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[models_objects])
        )
        grant_image_pull(role, image_uri)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{cfg.endpoint_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # SageMaker would create the group without retention on the endpoint's first start:
        # create it first (outside HasModel, so it exists before the first model).
        retained_log_group(self, "EndpointLogs", cfg, f"/aws/sagemaker/Endpoints/{cfg.endpoint_name}")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group_arn, f"{log_group_arn}:log-stream:*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            )
        )
        # Model artifacts in the data-key-encrypted bucket; the ML volumes' grant.
        grant_data_key(role, cfg, actions=READ, via=["s3"])
        grant_data_key(role, cfg, actions=ATTACH, via=["sagemaker"])
        acknowledge_policy(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
            "permissions; PutMetricData is limited to SageMaker's namespace by a condition.",
        )
        acknowledge_policy(
            role,
            finding("AwsSolutions-IAM5", models_objects, stack),
            "Model artifacts are written under models/<training job>/ with generated names; "
            "read-only on that prefix.",
        )
        acknowledge_policy(
            role,
            finding("AwsSolutions-IAM5", f"{log_group_arn}:log-stream:*", stack),
            "SageMaker names the endpoint's log streams per instance; scoped to this "
            "endpoint's log group.",
        )
        return role

    def _alarms(self, cfg: EnvironmentConfig, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        ep = cfg.endpoint
        dims = {"EndpointName": cfg.endpoint_name, "VariantName": VARIANT_NAME}
        errors = cloudwatch.Alarm(
            self,
            "Errors5xxAlarm",
            alarm_description=f"{cfg.endpoint_name}: model container 5xx errors",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="Invocation5XXErrors",
                dimensions_map=dims,
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            threshold=ep.errors_5xx_alarm_threshold,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        latency = cloudwatch.Alarm(
            self,
            "LatencyAlarm",
            alarm_description=f"{cfg.endpoint_name}: p90 model latency above {ep.latency_alarm_ms} ms",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",  # microseconds
                dimensions_map=dims,
                statistic="p90",
                period=Duration.minutes(1),
            ),
            threshold=ep.latency_alarm_ms * 1000,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (errors, latency):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return [errors, latency]
