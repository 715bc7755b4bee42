"""Batch inference like Amazon Personalize's: the ``<prefix>-batch-inference`` state machine.

Start it with ``{"inputUri": "s3://<artifacts bucket>/batch-inference/<job>/in/",
"outputUri": "s3://<artifacts bucket>/batch-inference/<job>/out/", "job": "users", "numResults": 25}``
(``job``: ``users`` | ``items`` | ``ranking``; both optional, these are the defaults). It runs::

    Defaults -> Arguments -> ValidInput? -> [bad: InvalidInput (Fail)]
    -> ReadServingRecord (models/serving.json) -> CreateBatchModel (the serving model.tar.gz,
    network-isolated) -> Transform (SageMaker Batch Transform, .sync) -> DeleteBatchModel -> Done
    a failed transform -> DeleteBatchModelAfterFailure -> BatchInferenceFailed (Fail)

The transform job reads every object under ``inputUri`` as JSON Lines (``SplitType: Line``,
several lines per request: ``MultiRecord``), and writes ``<input file>.out`` under ``outputUri``
(``AssembleWith: Line``): Personalize's batch output layout and line shape
(``recsys.batch_inference``). Inputs and outputs are limited to the artifacts bucket's
``batch-inference/`` prefix, so the model's role is granted exactly that.
"""

from __future__ import annotations

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from recsys_lambdas import contracts

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import ATTACH, READ, WRITE, data_key_by_alias, grant_data_key
from recsys_infra.functions import retained_log_group
from recsys_infra.images import (
    INFERENCE_SCRIPT,
    MODEL_CODE_DIR,
    sklearn_image_uri,
)
from recsys_infra.nag import acknowledge_policy, finding
from recsys_infra.pipeline_roles import grant_job_runtime

BATCH_INFERENCE_PREFIX = "batch-inference/"
JOBS = ("users", "items", "ranking")  # recsys.batch_inference.JOBS
DEFAULT_NUM_RESULTS = 25
MAX_NUM_RESULTS = 500
JSONLINES = "application/jsonlines"
SERVING_RECORD_KEY = contracts.MODELS_PREFIX + "serving.json"
# the container's environment (recsys.batch_inference.ENV_JOB / ENV_NUM_RESULTS)
ENV_JOB = "RECSYS_BATCH_JOB"
ENV_NUM_RESULTS = "RECSYS_BATCH_NUM_RESULTS"
TRANSFORM_TIMEOUT = Duration.hours(12)
MAX_PAYLOAD_MB = 1
INVOCATION_TIMEOUT = Duration.hours(1)  # SageMaker's largest


class BatchInference(Construct):
    """The batch inference state machine and the role its transform jobs' model runs with.

    Attributes:
        state_machine: ``<prefix>-batch-inference``.
        model_role: The SageMaker execution role of the per-run model (reads the model and the
            inputs, writes the outputs, under ``batch-inference/``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        artifacts_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        image_uri = sklearn_image_uri(cfg.region, "inference")
        self.model_role = self._model_role(cfg, image_uri, artifacts_bucket)
        bucket = artifacts_bucket.bucket_name
        area = f"s3://{bucket}/{BATCH_INFERENCE_PREFIX}"

        failed = sfn.Fail(
            self,
            "BatchInferenceFailed",
            comment="A step failed; the execution's error and cause say which and why.",
            error_path="$.error.Error",
            cause_path="$.error.Cause",
        )
        defaults = sfn.Pass(
            self,
            "Defaults",
            parameters={"job": "users", "numResults": DEFAULT_NUM_RESULTS, "runId": sfn.JsonPath.uuid()},
            result_path="$.defaults",
        )
        arguments = sfn.Pass(
            self,
            "Arguments",
            comment="The execution input over the defaults.",
            parameters={
                "args": sfn.JsonPath.json_merge(
                    sfn.JsonPath.object_at("$.defaults"), sfn.JsonPath.object_at("$$.Execution.Input")
                )
            },
            output_path="$.args",
        )
        usage = (
            f'start with {{"inputUri": "{area}<name>/", "outputUri": "{area}<name>/out/", '
            f'"job": "users|items|ranking", "numResults": 1-{MAX_NUM_RESULTS}}}'
        )
        invalid = sfn.Fail(
            self,
            "InvalidInput",
            error="InvalidInput",
            cause=f"inputUri and outputUri must be under {area}, job one of {', '.join(JOBS)}, "
            f"numResults an integer 1-{MAX_NUM_RESULTS}: {usage}",
        )
        valid = sfn.Condition.and_(
            sfn.Condition.is_present("$.inputUri"),
            sfn.Condition.is_present("$.outputUri"),
            sfn.Condition.is_string("$.inputUri"),
            sfn.Condition.string_matches("$.inputUri", f"{area}*"),
            sfn.Condition.is_string("$.outputUri"),
            sfn.Condition.string_matches("$.outputUri", f"{area}*"),
            sfn.Condition.or_(*[sfn.Condition.string_equals("$.job", job) for job in JOBS]),
            sfn.Condition.is_numeric("$.numResults"),
            sfn.Condition.number_greater_than_equals("$.numResults", 1),
            sfn.Condition.number_less_than_equals("$.numResults", MAX_NUM_RESULTS),
        )
        read_record = tasks.CallAwsService(
            self,
            "ReadServingRecord",
            comment=f"The model that serves: s3://<artifacts bucket>/{SERVING_RECORD_KEY}",
            service="s3",
            action="getObject",
            parameters={"Bucket": bucket, "Key": SERVING_RECORD_KEY},
            iam_action="s3:GetObject",
            iam_resources=[artifacts_bucket.arn_for_objects(SERVING_RECORD_KEY)],
            result_selector={"record.$": "States.StringToJson($.Body)"},
            result_path="$.serving",
        )
        read_record.add_retry(errors=["S3.S3Exception"], interval=Duration.seconds(2), max_attempts=3)
        read_record.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")

        model_name = sfn.JsonPath.format(f"{cfg.prefix}-batch-{{}}", sfn.JsonPath.string_at("$.runId"))
        models = stack.format_arn(service="sagemaker", resource="model", resource_name=f"{cfg.prefix}-batch-*")
        create_model = tasks.CallAwsService(
            self,
            "CreateBatchModel",
            comment="A network-isolated model of the serving model.tar.gz, for this run only.",
            service="sagemaker",
            action="createModel",
            parameters={
                "ModelName": model_name,
                "ExecutionRoleArn": self.model_role.role_arn,
                "EnableNetworkIsolation": True,
                "PrimaryContainer": {
                    "Image": image_uri,
                    "ModelDataUrl": sfn.JsonPath.string_at("$.serving.record.modelDataUrl"),
                    "Environment": {
                        "SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
                        "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_DIR,
                        "SAGEMAKER_REGION": cfg.region,
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    },
                },
            },
            iam_action="sagemaker:CreateModel",
            iam_resources=[models],
            additional_iam_statements=[
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.model_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                )
            ],
            result_selector={"modelArn.$": "$.ModelArn"},
            result_path="$.model",
        )
        create_model.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")

        data_key = data_key_by_alias(self, cfg)
        transform = tasks.SageMakerCreateTransformJob(
            self,
            "Transform",
            comment="Personalize's batch output: <input file>.out under outputUri.",
            transform_job_name=model_name,
            model_name=model_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            role=self.model_role,  # passed to nothing; keeps CDK from creating a role
            batch_strategy=tasks.BatchStrategy.MULTI_RECORD,
            # 1 MB of ~30-byte lines is ~35,000 recommendations per request: well inside the
            # hour a request may take (SageMaker's default is 60 s; its largest payload 6 MB)
            max_payload=Size.mebibytes(MAX_PAYLOAD_MB),
            model_client_options=tasks.ModelClientOptions(
                invocations_timeout=INVOCATION_TIMEOUT, invocations_max_retries=1
            ),
            environment={
                ENV_JOB: sfn.JsonPath.string_at("$.job"),
                ENV_NUM_RESULTS: sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.numResults")),
            },
            transform_input=tasks.TransformInput(
                transform_data_source=tasks.TransformDataSource(
                    s3_data_source=tasks.TransformS3DataSource(
                        s3_uri=sfn.JsonPath.string_at("$.inputUri"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
                content_type=JSONLINES,
                split_type=tasks.SplitType.LINE,
            ),
            transform_output=tasks.TransformOutput(
                s3_output_path=sfn.JsonPath.string_at("$.outputUri"),
                accept=JSONLINES,
                assemble_with=tasks.AssembleWith.LINE,
                encryption_key=data_key,
            ),
            transform_resources=tasks.TransformResources(
                instance_count=1,
                instance_type=ec2.InstanceType(cfg.endpoint.instance_type.removeprefix("ml.")),
                volume_encryption_key=data_key,
            ),
            result_selector={
                "transformJobName.$": "$.TransformJobName",
                "outputUri.$": "$.TransformOutput.S3OutputPath",
            },
            result_path="$.transform",
            task_timeout=sfn.Timeout.duration(TRANSFORM_TIMEOUT),
        )

        def delete_model(construct_id: str) -> tasks.CallAwsService:
            return tasks.CallAwsService(
                self,
                construct_id,
                comment="The run's model is not needed once its transform job ended.",
                service="sagemaker",
                action="deleteModel",
                parameters={"ModelName": model_name},
                iam_action="sagemaker:DeleteModel",
                iam_resources=[models],
                result_path=sfn.JsonPath.DISCARD,
            )

        cleanup_after_failure = delete_model("DeleteBatchModelAfterFailure")
        cleanup_after_failure.next(failed)
        cleanup_after_failure.add_catch(failed, errors=[sfn.Errors.ALL], result_path=sfn.JsonPath.DISCARD)
        transform.add_catch(cleanup_after_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        cleanup = delete_model("DeleteBatchModel")
        done = sfn.Succeed(self, "Done", comment="$.transform.outputUri holds <input file>.out.")
        check = (
            sfn.Choice(self, "ValidInput?")
            .when(valid, read_record.next(create_model).next(transform).next(cleanup).next(done))
            .otherwise(invalid)
        )
        definition = defaults.next(arguments).next(check)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{cfg.prefix}-batch-inference",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.minutes(TRANSFORM_TIMEOUT.to_minutes() + 30),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=retained_log_group(self, "Logs", cfg),
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        # ReadServingRecord reads the (possibly data-key-encrypted) artifacts bucket
        grant_data_key(self.state_machine.role, cfg, actions=READ, via=["s3"])
        self._acknowledge(stack, models)

    def _model_role(self, cfg: EnvironmentConfig, image_uri: str, artifacts_bucket: s3.IBucket) -> iam.Role:
        """The transform jobs' model role: read models/ and batch-inference/, write
        batch-inference/, pull the image, write the transform jobs' logs and metrics."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description=f"{cfg.prefix} batch inference: read the model and inputs, write the outputs",
        )
        models_objects = artifacts_bucket.arn_for_objects(f"{contracts.MODELS_PREFIX}*")
        area_objects = artifacts_bucket.arn_for_objects(f"{BATCH_INFERENCE_PREFIX}*")
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[models_objects, area_objects]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[area_objects]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{BATCH_INFERENCE_PREFIX}*"]}},
            )
        )
        log_streams = grant_job_runtime(role, stack, image_uri, "TransformJobs", f"{cfg.prefix}-batch-")
        # The model and the inputs/outputs in the data-key-encrypted bucket; the volume's grant.
        grant_data_key(role, cfg, actions=WRITE, via=["s3"])
        grant_data_key(role, cfg, actions=ATTACH, via=["sagemaker"])
        acknowledge_policy(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
            "permissions; PutMetricData is limited to SageMaker's namespace by a condition.",
        )
        stack_ = Stack.of(self)
        for resource, why in (
            (models_objects, "Reads the serving model.tar.gz, whose key names its training job."),
            (area_objects, f"Reads the batch inputs and writes <input>.out, only under {BATCH_INFERENCE_PREFIX}."),
            (log_streams, "SageMaker names a transform job's log streams <job name>/<instance>; this "
                          "deployment's batch jobs start with its prefix."),
        ):
            acknowledge_policy(role, finding("AwsSolutions-IAM5", resource, stack_), why)
        return role

    def _acknowledge(self, stack: Stack, models: str) -> None:
        sm_role = self.state_machine.role
        acknowledge_policy(
            sm_role,
            "AwsSolutions-IAM5[Resource::*]",
            "Added by the Step Functions SageMaker .sync integration: sagemaker:ListTags has no "
            "resource scoping for it, and X-Ray tracing needs '*'.",
        )
        acknowledge_policy(
            sm_role,
            finding("AwsSolutions-IAM5", models, stack),
            "One model per run, named <prefix>-batch-<run id>; created and deleted by the run.",
        )
        acknowledge_policy(
            sm_role,
            finding(
                "AwsSolutions-IAM5",
                stack.format_arn(service="sagemaker", resource="transform-job", resource_name="*"),
                stack,
            ),
            "Transform job names are generated per run (<prefix>-batch-<run id>); the .sync "
            "integration creates, describes and stops them.",
        )
