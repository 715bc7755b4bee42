"""The offline pipeline: a Step Functions state machine that trains (two SageMaker training jobs),
gates, loads the batch output into DynamoDB and promotes the model; scheduled by EventBridge.

    Rollback? -> [input {"rollback": record}: RollbackCandidate -> LoadBatchOutput -> ...]
    PrepareRun -> ListEvents -> ListItems -> [an empty prefix: NoEvents / NoItems (Fail)]
    -> MarkDeletions, MarkUsers (deletions/ and users/ never empty: the jobs' optional channels)
    -> PurgeDeletedUsers (the event log rewritten without users deleted since the last run)
    -> TrainRetrieval (job 1, retried with backoff on quota and throttling errors) -> TrainRanker (job 2, job 1's model as channel
    "retrieval") -> EvaluationGate -> [not better: KeptServingModel]
    -> LoadBatchOutput -> Promote -> (WaitForRollout -> CheckPromotion)* -> Promoted
    any error -> PipelineFailed (Fail) -> alarm on ExecutionsFailed / ExecutionsTimedOut

This module wires the states; the jobs (``training_jobs``), the roles (``pipeline_roles``) and the
Lambda steps (``pipeline_functions``) are built in their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import promote

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import WRITE, grant_data_key
from recsys_infra.functions import retained_log_group
from recsys_infra.images import TRAINING_SCRIPTS, SourceAsset, sklearn_image_uri
from recsys_infra.nag import acknowledge_policy, finding
from recsys_infra.pipeline_functions import pipeline_functions
from recsys_infra.pipeline_roles import serving_deploy_role, training_role
from recsys_infra.training_jobs import s3_channel, training_job

ROLLOUT_POLL_S = 60
# SageMaker refuses CreateTrainingJob while the account's instance quota is in use (another run,
# another team) or when its API throttles: wait and retry with jittered exponential backoff,
# at most 45 minutes in all (full jitter), before the run fails.
CAPACITY_ERRORS = (
    "SageMaker.ResourceLimitExceededException",
    "SageMaker.ResourceInUseException",
    "SageMaker.AmazonSageMakerException",  # ThrottlingException ("Rate exceeded") arrives as this
    "SageMaker.ThrottlingException",
)


def add_s3_retry_and_catch(task: tasks.CallAwsService, failed: sfn.Fail) -> None:
    """An S3 SDK step retries S3's transient errors briefly, then fails the run with its error."""
    task.add_retry(
        errors=["S3.S3Exception", "States.Timeout"],
        interval=Duration.seconds(2),
        backoff_rate=2.0,
        max_attempts=3,
    )
    task.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")


@dataclass(frozen=True)
class InputChecks:
    """The first and the deciding state of the input checks."""

    start: tasks.CallAwsService
    check: sfn.Choice


def add_capacity_retry(job: tasks.SageMakerCreateTrainingJob) -> None:
    """Retry a training job's creation on quota and throttling errors, with backoff."""
    job.add_retry(
        errors=list(CAPACITY_ERRORS),
        interval=Duration.seconds(60),
        backoff_rate=2.0,
        max_attempts=6,
        max_delay=Duration.minutes(15),
        jitter_strategy=sfn.JitterType.FULL,
    )


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
        image_uri = sklearn_image_uri(cfg.region, "training")
        source = SourceAsset(self, "Source")
        self.training_role = training_role(
            self,
            cfg,
            image_uri=image_uri,
            events_bucket=events_bucket,
            artifacts_bucket=artifacts_bucket,
        )
        self.serving_deploy_role = (
            serving_deploy_role(
                self, cfg, serving_stack_name=serving_stack_name, model_role_arn=model_role_arn
            )
            if serving_stack_name and model_role_arn
            else None
        )
        self.functions = pipeline_functions(
            self,
            cfg,
            artifacts_bucket=artifacts_bucket,
            events_bucket=events_bucket,
            tables=tables,
            serving_stack_name=serving_stack_name,
            deploy_role=self.serving_deploy_role,
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
                "deletionsUri": f"s3://{events_bucket.bucket_name}/{contracts.DELETIONS_PREFIX}",
                "usersUri": f"s3://{events_bucket.bucket_name}/{contracts.USERS_PREFIX}",
                "outputUri": f"s3://{artifacts_bucket.bucket_name}/{contracts.MODELS_PREFIX}",
            },
            result_path="$.run",
        )
        events_channel = s3_channel(contracts.TRAINING_CHANNEL_EVENTS, "$.run.eventsUri")
        items_channel = s3_channel(contracts.TRAINING_CHANNEL_ITEMS, "$.run.itemsUri")
        deletions_channel = s3_channel(contracts.TRAINING_CHANNEL_DELETIONS, "$.run.deletionsUri")
        # user metadata for job 1, which carries it into the model (job 2 reads job 1's copy)
        users_channel = s3_channel(contracts.TRAINING_CHANNEL_USERS, "$.run.usersUri")
        train_retrieval = training_job(
            self,
            "TrainRetrieval",
            cfg=cfg,
            role=self.training_role,
            job_suffix="retrieval",
            script=TRAINING_SCRIPTS["retrieval"],
            source=source,
            image_uri=image_uri,
            hyperparameters=cfg.training.retrieval_hyperparameters,
            channels=[events_channel, items_channel, deletions_channel, users_channel],
            result_path="$.retrieval",
        )
        train_ranker = training_job(
            self,
            "TrainRanker",
            cfg=cfg,
            role=self.training_role,
            job_suffix="ranker",
            script=TRAINING_SCRIPTS["ranker"],
            source=source,
            image_uri=image_uri,
            hyperparameters=cfg.training.ranker_hyperparameters,
            channels=[
                events_channel,
                items_channel,
                deletions_channel,
                s3_channel(contracts.TRAINING_CHANNEL_RETRIEVAL, "$.retrieval.modelDataUrl"),
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

        for job in (train_retrieval, train_ranker):
            add_capacity_retry(job)
        inputs_present = self._input_checks(events_bucket, failed)
        # SageMaker fails a job whose S3Prefix channel matches no object: a marker ({}, which the
        # loaders skip) keeps deletions/ and users/ non-empty before any user was deleted or uploaded.
        mark_deletions, mark_users = (
            self._marker_step(construct_id, key, channel, result, events_bucket, failed)
            for construct_id, key, channel, result in (
                ("MarkDeletions", contracts.DELETIONS_MARKER, "deletions", "deletionsMarker"),
                ("MarkUsers", contracts.USERS_MARKER, "optional users", "usersMarker"),
            )
        )
        purge_deleted_users = self._invoke("PurgeDeletedUsers", "purge", {}, "$.purge")
        purge_deleted_users.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")
        training = (
            mark_deletions.next(mark_users)
            .next(purge_deleted_users)
            .next(train_retrieval)
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
        inputs_present.check.otherwise(training)
        # A rollback (``recsys deploy rollback``) starts the machine with {"rollback": <an earlier
        # serving record>}: that record becomes the gate's candidate, and the promotion path runs
        # for it as for a newly trained model (batch tables, rollout, serving record).
        rollback_candidate = sfn.Pass(
            self,
            "RollbackCandidate",
            comment="Serve an earlier model again: skip training and the gate.",
            parameters={
                "candidate.$": "$.rollback",
                "promote": True,
                "reason": "rollback to an earlier serving model",
            },
            result_path="$.gate",
        )
        definition = (
            sfn.Choice(self, "Rollback?")
            .when(sfn.Condition.is_present("$.rollback"), rollback_candidate.next(load))
            .otherwise(prepare.next(inputs_present.start))
        )
        log_group = retained_log_group(self, "Logs", cfg)
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
        # MarkDeletions writes into the (possibly data-key-encrypted) events bucket
        grant_data_key(self.state_machine.role, cfg, actions=WRITE, via=["s3"])
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
                targets=[targets.SfnStateMachine(self.state_machine, role=self._schedule_role(cfg))],
            )
        self._acknowledge(stack)

    # --- building blocks ------------------------------------------------------------------

    def _schedule_role(self, cfg: EnvironmentConfig) -> iam.Role:
        """The role EventBridge starts executions with, for this deployment's rules only
        (CloudFormation names the rule ``<stack name>-...``; stack names start with the prefix)."""
        stack = Stack.of(self)
        rules = stack.format_arn(service="events", resource="rule", resource_name=f"{cfg.prefix}-*")
        return iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": rules},
                },
            ),
            description=f"{cfg.prefix}: EventBridge starts the training pipeline on its schedule",
        )

    def _input_checks(self, events_bucket: s3.IBucket, failed: sfn.Fail) -> InputChecks:
        """List one object under events/ and items/ before any training job starts: an empty
        prefix fails the run at once with a cause that says what to upload, instead of a
        training job failing minutes later with SageMaker's "no S3 objects found"."""
        listings = []
        for name, prefix, what in (
            ("Events", contracts.EVENTS_PREFIX, "the event log (Firehose writes it from POST /events)"),
            ("Items", contracts.ITEMS_PREFIX, "the item catalogue (item_id,title[,category] CSV or JSON Lines)"),
        ):
            listing = tasks.CallAwsService(
                self,
                f"List{name}",
                comment=f"Is there anything under s3://<events bucket>/{prefix}?",
                service="s3",
                action="listObjectsV2",
                parameters={"Bucket": events_bucket.bucket_name, "Prefix": prefix, "MaxKeys": 1},
                iam_action="s3:ListBucket",
                iam_resources=[events_bucket.bucket_arn],
                result_selector={"keyCount.$": "$.KeyCount"},
                result_path=f"$.inputs.{name.lower()}",
            )
            add_s3_retry_and_catch(listing, failed)
            listings.append((name, prefix, what, listing))
        check = sfn.Choice(self, "InputsPresent?")
        for name, prefix, what, _ in listings:
            check.when(
                sfn.Condition.number_equals(f"$.inputs.{name.lower()}.keyCount", 0),
                sfn.Fail(
                    self,
                    f"No{name}",
                    comment=f"Nothing under {prefix}: no training job was started.",
                    error=f"No{name}",
                    cause=(
                        f"s3://{events_bucket.bucket_name}/{prefix} is empty: upload {what} "
                        "and start the pipeline again; no training job was started."
                    ),
                ),
            )
        listings[0][3].next(listings[1][3]).next(check)
        return InputChecks(start=listings[0][3], check=check)

    def _marker_step(
        self,
        construct_id: str,
        key: str,
        channel: str,
        result: str,
        events_bucket: s3.IBucket,
        failed: sfn.Fail,
    ) -> tasks.CallAwsService:
        """An S3 PutObject of the ``{}`` marker at ``key`` (retried, caught like the other S3 steps)."""
        task = tasks.CallAwsService(
            self,
            construct_id,
            comment=f"Write {key} so the {channel} channel is never empty.",
            service="s3",
            action="putObject",
            parameters={"Bucket": events_bucket.bucket_name, "Key": key, "Body": "{}"},
            iam_action="s3:PutObject",
            iam_resources=[events_bucket.arn_for_objects(key)],
            result_selector={"eTag.$": "$.ETag"},
            result_path=f"$.inputs.{result}",
        )
        add_s3_retry_and_catch(task, failed)
        return task

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

    def _acknowledge(self, stack: Stack) -> None:
        """Record the wildcard findings the Step Functions integrations add to the state
        machine's role, each with its reason."""
        sm_role = self.state_machine.role
        acknowledge_policy(
            sm_role,
            "AwsSolutions-IAM5[Resource::*]",
            "Added by the Step Functions SageMaker .sync integration: sagemaker:ListTags has no "
            "resource scoping for it, and X-Ray tracing needs '*'.",
        )
        acknowledge_policy(
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
            acknowledge_policy(
                sm_role,
                finding("AwsSolutions-IAM5", f"{function.function.function_arn}:*", stack),
                "Invoke permission on the function's versions/aliases, added by LambdaInvoke.",
            )
