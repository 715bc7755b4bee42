"""The offline pipeline: a Step Functions state machine that trains (two SageMaker training jobs),
gates, loads the batch output into DynamoDB and promotes the model; scheduled by EventBridge.

    PrepareRun -> TrainRetrieval (job 1) -> TrainRanker (job 2, job 1's model as channel
    "retrieval") -> EvaluationGate -> [not better: KeptServingModel]
    -> LoadBatchOutput -> Promote -> (WaitForRollout -> CheckPromotion)* -> Promoted
    any error -> PipelineFailed (Fail) -> alarm on ExecutionsFailed / ExecutionsTimedOut
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Optional

from aws_cdk import ArnFormat, Duration, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import gate, promote

from recsys_infra.config import EnvironmentConfig
from recsys_infra.functions import FunctionSpec, RecsysFunction, log_retention, removal_policy
from recsys_infra.images import (
    TRAINING_SCRIPTS,
    SourceAsset,
    grant_image_pull,
    sklearn_image_uri,
)
from recsys_infra.nag import acknowledge, finding

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
PIPELINE_LAMBDA_TIMEOUT_S = 900  # loading a large catalogue into DynamoDB takes minutes
ROLLOUT_POLL_S = 60


class _StateS3Uri(tasks.S3Location):
    """An S3 URI read from the execution state, granting nothing.

    ``S3Location.from_json_expression`` would add s3:GetObject/ListBucket/PutObject on ``*`` to
    the training role; the role already has exactly the prefixes it needs.
    """

    def __init__(self, json_path: str) -> None:
        super().__init__()
        self._json_path = json_path

    def bind(self, task, *, for_reading=None, for_writing=None) -> tasks.S3LocationConfig:
        return tasks.S3LocationConfig(uri=sfn.JsonPath.string_at(self._json_path))


def metric_regex(name: str) -> str:
    """The SageMaker metric regex for one ``METRIC name=value`` line."""
    return "METRIC " + re.escape(name) + "=([-+0-9.eE]+)"


def _hyperparameters(script: str, source_uri: str, region: str, extra: Mapping[str, Any]) -> dict:
    """Framework-container hyperparameters, JSON-encoded as the SageMaker SDK sends them."""
    values = {
        **dict(extra.items()),
        "sagemaker_program": script,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
    }
    return {key: json.dumps(value) for key, value in values.items()}


class TrainingPipeline(Construct):
    """State machine, its Lambda steps, the training role, schedule and failure alarm.

    Attributes:
        state_machine: The pipeline (start it by hand with ``aws stepfunctions start-execution``).
        training_role: The role both SageMaker training jobs run with.
        functions: ``gate``, ``load``, ``promote`` -> function construct.
        failure_alarm: Fires when an execution fails or times out.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        events_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        tables: Mapping[str, dynamodb.ITable],
        alarm_topic: sns.ITopic,
        serving_stack_name: str = "",
        model_role_arn: Optional[str] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._cfg = cfg
        image_uri = sklearn_image_uri(cfg.region, "training")
        source = SourceAsset(self, "Source")
        self.training_role = self._training_role(
            cfg, image_uri, events_bucket, artifacts_bucket, source.object_arn
        )
        self.serving_deploy_role = (
            self._serving_deploy_role(cfg, serving_stack_name, model_role_arn)
            if serving_stack_name and model_role_arn
            else None
        )
        self.functions = self._functions(
            cfg, artifacts_bucket, tables, serving_stack_name, self.serving_deploy_role
        )

        # --- states -----------------------------------------------------------------------
        failed = sfn.Fail(
            self,
            "PipelineFailed",
            comment="A step failed; the execution's error and cause say which and why.",
            error_path="$.error.Error",
            cause_path="$.error.Cause",
        )
        prepare = sfn.Pass(
            self,
            "PrepareRun",
            comment="One id per run names the training jobs and their output folders.",
            parameters={
                "runId": sfn.JsonPath.uuid(),
                "eventsUri": f"s3://{events_bucket.bucket_name}/{contracts.EVENTS_PREFIX}",
                "itemsUri": f"s3://{events_bucket.bucket_name}/{contracts.ITEMS_PREFIX}",
                "outputUri": f"s3://{artifacts_bucket.bucket_name}/{contracts.MODELS_PREFIX}",
            },
            result_path="$.run",
        )
        events_channel = self._channel(contracts.TRAINING_CHANNEL_EVENTS, "$.run.eventsUri")
        items_channel = self._channel(contracts.TRAINING_CHANNEL_ITEMS, "$.run.itemsUri")
        train_retrieval = self._training_job(
            "TrainRetrieval",
            job_suffix="retrieval",
            script=TRAINING_SCRIPTS["retrieval"],
            source_uri=source.s3_uri,
            image_uri=image_uri,
            hyperparameters=cfg.training.retrieval_hyperparameters,
            channels=[events_channel, items_channel],
            result_path="$.retrieval",
        )
        train_ranker = self._training_job(
            "TrainRanker",
            job_suffix="ranker",
            script=TRAINING_SCRIPTS["ranker"],
            source_uri=source.s3_uri,
            image_uri=image_uri,
            hyperparameters=cfg.training.ranker_hyperparameters,
            channels=[
                events_channel,
                items_channel,
                self._channel(contracts.TRAINING_CHANNEL_RETRIEVAL, "$.retrieval.modelDataUrl"),
            ],
            result_path="$.ranker",
        )
        evaluation_gate = self._invoke(
            "EvaluationGate",
            "gate",
            {
                "modelDataUrl": sfn.JsonPath.string_at("$.ranker.modelDataUrl"),
                "tolerance": cfg.training.ndcg_tolerance,
            },
            "$.gate",
        )
        load = self._invoke(
            "LoadBatchOutput",
            "load",
            {"outputDataUrl": sfn.JsonPath.string_at("$.gate.candidate.outputDataUrl")},
            "$.load",
        )
        start_promotion = self._invoke(
            "Promote",
            "promote",
            {"action": "start", "candidate": sfn.JsonPath.object_at("$.gate.candidate")},
            "$.promotion",
        )
        check_promotion = self._invoke(
            "CheckPromotion",
            "promote",
            {"action": "check", "candidate": sfn.JsonPath.object_at("$.gate.candidate")},
            "$.promotion",
        )
        wait = sfn.Wait(
            self,
            "WaitForRollout",
            comment="Blue/green rollout with bake time: poll the serving stack.",
            time=sfn.WaitTime.duration(Duration.seconds(ROLLOUT_POLL_S)),
        )
        promoted = sfn.Succeed(self, "Promoted", comment="The new model serves.")
        kept = sfn.Succeed(
            self,
            "KeptServingModel",
            comment="The evaluation gate kept the serving model; $.gate.reason says why.",
        )
        promotion_failed = sfn.Fail(
            self,
            "PromotionFailed",
            error="PromotionFailed",
            cause_path="$.promotion.reason",
        )
        rollout = (
            sfn.Choice(self, "PromotionDone?")
            .when(sfn.Condition.string_equals("$.promotion.status", promote.SUCCEEDED), promoted)
            .when(
                sfn.Condition.string_equals("$.promotion.status", promote.FAILED), promotion_failed
            )
            .otherwise(wait.next(check_promotion))
        )
        check_promotion.next(rollout)
        for task in (
            train_retrieval,
            train_ranker,
            evaluation_gate,
            load,
            start_promotion,
            check_promotion,
        ):
            task.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")

        definition = (
            prepare.next(train_retrieval)
            .next(train_ranker)
            .next(evaluation_gate)
            .next(
                sfn.Choice(self, "Promote?")
                .when(
                    sfn.Condition.boolean_equals("$.gate.promote", True),
                    load.next(start_promotion).next(rollout),
                )
                .otherwise(kept)
            )
        )
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(cfg),
            removal_policy=removal_policy(cfg),
        )
        runtime = Duration.minutes(2 * cfg.training.max_runtime_minutes + 120)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{cfg.prefix}-training",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=runtime,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        self.failure_alarm = cloudwatch.Alarm(
            self,
            "FailedAlarm",
            alarm_description=f"{cfg.prefix} training pipeline execution failed or timed out",
            metric=cloudwatch.MathExpression(
                expression="failed + timedOut",
                using_metrics={
                    "failed": self.state_machine.metric_failed(statistic="Sum"),
                    "timedOut": self.state_machine.metric_timed_out(statistic="Sum"),
                },
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failure_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        self.schedule: Optional[events.Rule] = None
        if cfg.training.schedule:
            self.schedule = events.Rule(
                self,
                "Schedule",
                description=f"{cfg.prefix}: retrain on {cfg.training.schedule}",
                schedule=events.Schedule.expression(cfg.training.schedule),
                targets=[targets.SfnStateMachine(self.state_machine)],
            )
        self._acknowledge(stack, events_bucket, artifacts_bucket, serving_stack_name)

    # --- building blocks ------------------------------------------------------------------

    @staticmethod
    def _channel(name: str, uri_path: str) -> tasks.Channel:
        return tasks.Channel(
            channel_name=name,
            data_source=tasks.DataSource(
                s3_data_source=tasks.S3DataSource(
                    s3_location=_StateS3Uri(uri_path),
                    s3_data_type=tasks.S3DataType.S3_PREFIX,
                    s3_data_distribution_type=tasks.S3DataDistributionType.FULLY_REPLICATED,
                )
            ),
        )

    def _training_job(
        self,
        construct_id: str,
        *,
        job_suffix: str,
        script: str,
        source_uri: str,
        image_uri: str,
        hyperparameters: Mapping[str, Any],
        channels: list[tasks.Channel],
        result_path: str,
    ) -> tasks.SageMakerCreateTrainingJob:
        cfg = self._cfg
        instance_type = cfg.training.instance_type.removeprefix("ml.")
        return tasks.SageMakerCreateTrainingJob(
            self,
            construct_id,
            training_job_name=sfn.JsonPath.format(
                f"{cfg.prefix}-{job_suffix}-{{}}", sfn.JsonPath.string_at("$.run.runId")
            ),
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            role=self.training_role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(image_uri),
                training_input_mode=tasks.InputMode.FILE,
                metric_definitions=[
                    tasks.MetricDefinition(name=name, regex=metric_regex(name))
                    for name in METRICS[job_suffix]
                ],
            ),
            hyperparameters=_hyperparameters(script, source_uri, cfg.region, hyperparameters),
            input_data_config=channels,
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=_StateS3Uri("$.run.outputUri")
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=1,
                instance_type=ec2.InstanceType(instance_type),
                volume_size=Size.gibibytes(cfg.training.volume_size_gb),
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

    def _invoke(
        self, construct_id: str, function: str, payload: Mapping[str, Any], result_path: str
    ) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=self.functions[function].function,
            payload=sfn.TaskInput.from_object(dict(payload)),
            payload_response_only=True,
            result_path=result_path,
            retry_on_service_exceptions=True,
        )

    def _functions(
        self,
        cfg: EnvironmentConfig,
        artifacts_bucket: s3.IBucket,
        tables: Mapping[str, dynamodb.ITable],
        serving_stack_name: str,
        deploy_role: Optional[iam.IRole],
    ) -> dict[str, RecsysFunction]:
        stack = Stack.of(self)
        bucket_env = {gate.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name}
        table_env = {
            contracts.ENV_USERS_TABLE: tables[contracts.USERS.logical_name].table_name,
            contracts.ENV_ITEMS_TABLE: tables[contracts.ITEMS.logical_name].table_name,
            contracts.ENV_BATCH_TABLE: tables[
                contracts.BATCH_RECOMMENDATIONS.logical_name
            ].table_name,
        }

        def make(
            name: str, handler: str, description: str, env: dict, memory: int
        ) -> RecsysFunction:
            return RecsysFunction(
                self,
                f"{name.capitalize()}Function",
                cfg=cfg,
                spec=FunctionSpec(
                    name=f"pipeline-{name}",
                    handler=handler,
                    description=f"{cfg.prefix} training pipeline: {description}",
                    timeout_s=PIPELINE_LAMBDA_TIMEOUT_S,
                    memory_mb=memory,
                ),
                environment=env,
            )

        functions = {
            "gate": make(
                "gate",
                "recsys_lambdas.pipeline.gate.handler",
                "evaluation gate",
                {**bucket_env, gate.ENV_NDCG_TOLERANCE: f"{cfg.training.ndcg_tolerance:g}"},
                256,
            ),
            "load": make(
                "load",
                "recsys_lambdas.pipeline.load.handler",
                "load batch output into DynamoDB",
                {**bucket_env, **table_env},
                1024,
            ),
            "promote": make(
                "promote",
                "recsys_lambdas.pipeline.promote.handler",
                "promote the model to serving",
                {
                    **bucket_env,
                    promote.ENV_SERVING_STACK: serving_stack_name,
                    promote.ENV_CFN_ROLE_ARN: deploy_role.role_arn if deploy_role else "",
                },
                256,
            ),
        }
        models_objects = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")
        for name in ("gate", "load"):
            functions[name].role.add_to_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[models_objects])
            )
        serving_record = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}serving.json")
        functions["promote"].role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[serving_record])
        )
        functions["load"].role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[
                    tables[spec.logical_name].table_arn
                    for spec in (contracts.USERS, contracts.ITEMS, contracts.BATCH_RECOMMENDATIONS)
                ],
            )
        )
        if serving_stack_name and deploy_role is not None:
            stack_arn = stack.format_arn(
                service="cloudformation", resource="stack", resource_name=f"{serving_stack_name}/*"
            )
            functions["promote"].role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                    resources=[stack_arn],
                )
            )
            functions["promote"].role.add_to_policy(
                iam.PolicyStatement(actions=["iam:PassRole"], resources=[deploy_role.role_arn])
            )
        return functions

    def _training_role(
        self,
        cfg: EnvironmentConfig,
        image_uri: str,
        events_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        source_object_arn: str,
    ) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "TrainingRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{cfg.prefix} SageMaker training jobs",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    events_bucket.arn_for_objects(f"{contracts.EVENTS_PREFIX}*"),
                    events_bucket.arn_for_objects(f"{contracts.ITEMS_PREFIX}*"),
                    artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*"),
                    source_object_arn,
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")],
            )
        )
        for bucket, prefixes in (
            (events_bucket, [contracts.EVENTS_PREFIX, contracts.ITEMS_PREFIX]),
            (artifacts_bucket, [contracts.MODELS_PREFIX]),
        ):
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
                )
            )
        grant_image_pull(role, image_uri)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/TrainingJobs",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self._training_log_streams = f"{log_group_arn}:log-stream:{cfg.prefix}-*"
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group_arn, self._training_log_streams],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={
                    "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
                },
            )
        )
        return role

    def _serving_deploy_role(
        self, cfg: EnvironmentConfig, serving_stack_name: str, model_role_arn: str
    ) -> iam.Role:
        """The CloudFormation service role the promote step updates the serving stack with.

        The promote Lambda may only pass this role; the role may only do what a model change
        of the serving stack makes CloudFormation do.
        """
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ServingDeployRole",
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description=f"{cfg.prefix}: CloudFormation updates of {serving_stack_name} on promotion",
        )

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        endpoint = arn("endpoint", cfg.endpoint_name.lower())
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[arn("model", "*"), arn("endpoint-config", "*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[endpoint],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[model_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # First promotion creates the autoscaling target and policy (condition HasModel flips).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                    "application-autoscaling:DescribeScalingPolicies",
                    "cloudwatch:DescribeAlarms",
                ],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
                    "sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                ],
                conditions={
                    "StringLike": {
                        "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                    }
                },
            )
        )
        # The CDK bootstrap version parameter (default qualifier) is re-resolved on every update.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameters"],
                resources=[
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name="cdk-bootstrap/hnb659fds/version",
                    )
                ],
            )
        )
        return role

    def _acknowledge(
        self,
        stack: Stack,
        events_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        serving_stack_name: str,
    ) -> None:
        """Record the wildcard findings AWS makes unavoidable here, each with its reason."""
        role = self.training_role
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
            "permissions; PutMetricData is limited to SageMaker's namespace by a condition.",
        )
        for bucket, prefix, why in (
            (events_bucket, contracts.EVENTS_PREFIX, "reads the event log Firehose writes"),
            (events_bucket, contracts.ITEMS_PREFIX, "reads the item catalogue files"),
            (artifacts_bucket, contracts.MODELS_PREFIX, "writes its model and reads job 1's"),
        ):
            acknowledge(
                role,
                finding("AwsSolutions-IAM5", bucket.arn_for_objects(f"{prefix}*"), stack),
                f"Training {why}; object names are generated, access is limited to {prefix}.",
            )
        acknowledge(
            role,
            finding("AwsSolutions-IAM5", self._training_log_streams, stack),
            "SageMaker names a training job's log streams <job name>/algo-N-<time>; the jobs of "
            "this deployment start with its prefix.",
        )
        models = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")
        for name in ("gate", "load"):
            acknowledge(
                self.functions[name].role,
                finding("AwsSolutions-IAM5", models, stack),
                "Reads the training output of the run (models/<job>/output/*.tar.gz) and the "
                "serving record; read-only, limited to the models/ prefix.",
            )
        sm_role = self.state_machine.role
        acknowledge(
            sm_role,
            "AwsSolutions-IAM5[Resource::*]",
            "Added by the Step Functions SageMaker .sync integration: sagemaker:ListTags has no "
            "resource scoping for it, and X-Ray tracing needs '*'.",
        )
        acknowledge(
            sm_role,
            finding(
                "AwsSolutions-IAM5",
                stack.format_arn(service="sagemaker", resource="training-job", resource_name="*"),
                stack,
            ),
            "Training job names are generated per run (<prefix>-<stage>-<uuid>); the .sync "
            "integration creates, describes and stops them.",
        )
        for function in self.functions.values():
            acknowledge(
                sm_role,
                finding("AwsSolutions-IAM5", f"{function.function.function_arn}:*", stack),
                "Invoke permission on the function's versions/aliases, added by LambdaInvoke.",
            )
        if serving_stack_name:
            acknowledge(
                self.functions["promote"].role,
                finding(
                    "AwsSolutions-IAM5",
                    stack.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"{serving_stack_name}/*",
                    ),
                    stack,
                ),
                "The serving stack's ARN ends in a stack id CloudFormation assigns; the name "
                "part is exact.",
            )
        deploy = self.serving_deploy_role
        if deploy is not None:
            acknowledge(
                deploy,
                "AwsSolutions-IAM5[Resource::*]",
                "Application Auto Scaling target/policy APIs and cloudwatch:DescribeAlarms "
                "have no resource-level permissions.",
            )
            for resource in ("model", "endpoint-config"):
                acknowledge(
                    deploy,
                    finding(
                        "AwsSolutions-IAM5",
                        stack.format_arn(service="sagemaker", resource=resource, resource_name="*"),
                        stack,
                    ),
                    f"CloudFormation generates a new {resource} name on each promotion "
                    "(replacement); the endpoint itself is scoped by name.",
                )
