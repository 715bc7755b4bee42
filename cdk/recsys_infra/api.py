"""The HTTP API: API Gateway REST API (IAM auth, throttling, request validation, access logs,
X-Ray) in front of one Lambda function per route group of ``recsys_lambdas.routes``.
"""

from __future__ import annotations

from typing import Optional

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct
from recsys_lambdas import contracts, routes, settings

from recsys_infra.config import EnvironmentConfig
from recsys_infra.encryption import READ, WRITE, grant_data_key
from recsys_infra.functions import (
    FunctionSpec,
    RecsysFunction,
    removal_policy,
    retained_log_group,
)
from recsys_infra.nag import acknowledge, acknowledge_policy, checkov_skip, finding, resource_of
from recsys_infra.openapi_models import load_openapi, operation_validation

STAGE_NAME = "v1"
_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem"]
_WRITE = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
_DESCRIPTIONS = {
    "recommendations": "Recommendations, ranking, similar items and search",
    "events": "PutEvents (durable event log, real-time user history) and DELETE /users",
    "meta": "Health and the OpenAPI document",
}


class Api(Construct):
    """The REST API and its functions.

    Attributes:
        rest_api: The API Gateway REST API.
        functions: Route group (``routes.FUNCTIONS`` key) -> function construct.
        api_key: The API key when ``api.auth`` is ``iam+api_key``, else None.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        tables: dict[str, dynamodb.ITable],
        delivery_stream_name: str,
        delivery_stream_arn: str,
        events_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        env = {
            contracts.ENV_USERS_TABLE: tables[contracts.USERS.logical_name].table_name,
            contracts.ENV_ITEMS_TABLE: tables[contracts.ITEMS.logical_name].table_name,
            contracts.ENV_BATCH_TABLE: tables[
                contracts.BATCH_RECOMMENDATIONS.logical_name
            ].table_name,
            contracts.ENV_IDEMPOTENCY_TABLE: tables[contracts.IDEMPOTENCY.logical_name].table_name,
            contracts.ENV_EVENTS_STREAM: delivery_stream_name,
            contracts.ENV_EVENTS_BUCKET: events_bucket.bucket_name,
            contracts.ENV_SERVING_MODE: cfg.serving_mode,
            contracts.ENV_ENDPOINT_NAME: cfg.endpoint_name,
            contracts.ENV_ENDPOINT_TIMEOUT_S: f"{cfg.endpoint.invoke_timeout_s:g}",
        }
        if cfg.filters:
            env[settings.ENV_NAMED_FILTERS] = cfg.named_filters_json
        self.functions: dict[str, RecsysFunction] = {}
        for name, handler in routes.FUNCTIONS.items():
            self.functions[name] = RecsysFunction(
                self,
                f"{name.capitalize()}Function",
                cfg=cfg,
                spec=FunctionSpec(
                    name=name,
                    handler=handler,
                    description=f"{cfg.prefix}: {_DESCRIPTIONS.get(name, name)}",
                    timeout_s=cfg.lambdas.timeout_s,
                    memory_mb=cfg.lambdas.memory_mb,
                    reserved_concurrency=cfg.lambdas.reserved_concurrency,
                ),
                environment=env,
            )
        self._grant(cfg, stack, tables, delivery_stream_arn, events_bucket)

        access_logs = retained_log_group(self, "AccessLogs", cfg)
        api_key_required = cfg.api.auth == "iam+api_key"
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{cfg.prefix}-api",
            description="Recommendations and search (Amazon Personalize-compatible routes)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=removal_policy(cfg),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=cfg.api.throttle_rate_limit,
                throttling_burst_limit=cfg.api.throttle_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies may carry user ids: keep them out of logs
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM,
                api_key_required=api_key_required,
            ),
            disable_execute_api_endpoint=False,
        )
        self._execution_logs(cfg)
        self._gateway_responses()
        self._routes()
        self.api_key: Optional[apigw.IApiKey] = None
        if api_key_required:
            self._usage_plan(cfg)
        # API Gateway's invoke permissions already name the method's execute-api ARN (which
        # holds the account); SourceAccount states the account for every permission too.
        for construct in self.rest_api.node.find_all():
            if isinstance(construct, lambda_.CfnPermission):
                construct.source_account = stack.account

        stage = resource_of(self.rest_api.deployment_stage)
        checkov_skip(
            stage,
            "CKV_AWS_120",
            "No API cache: answers are per user and change with each event the user sends; a "
            "cache would serve stale or another caller's recommendations (and bills per hour).",
        )
        acknowledge(
            stage,
            "AwsSolutions-APIG3",
            (
                "Every method requires SigV4 (IAM) signatures and stage throttling applies; add "
                "AWS WAF in front when the API is exposed to untrusted networks."
            ),
        )
        acknowledge(
            self.rest_api.node.find_child("CloudWatchRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            (
                "The account-level API Gateway logging role; AWS's managed policy is the "
                "documented policy for it and only allows writing CloudWatch Logs."
            ),
        )

    def _grant(
        self,
        cfg: EnvironmentConfig,
        stack: Stack,
        tables: dict[str, dynamodb.ITable],
        stream_arn: str,
        events_bucket: s3.IBucket,
    ) -> None:
        def allow(function: str, actions: list[str], resources: list[str]) -> None:
            if function in self.functions:
                self.functions[function].role.add_to_policy(
                    iam.PolicyStatement(actions=actions, resources=resources)
                )

        arn = {name: table.table_arn for name, table in tables.items()}
        users = arn[contracts.USERS.logical_name]
        items = arn[contracts.ITEMS.logical_name]
        batch = arn[contracts.BATCH_RECOMMENDATIONS.logical_name]
        idempotency = arn[contracts.IDEMPOTENCY.logical_name]

        # GET /health and /openapi.json touch no AWS service: the meta function gets no grant.
        allow("recommendations", _READ, [users, items, batch])
        # PutEvents updates the user's history, records idempotency keys, checks items exist.
        allow("events", [*_READ, *_WRITE], [users, idempotency])
        allow("events", _READ, [items])
        allow(
            "events",
            ["firehose:PutRecord", "firehose:PutRecordBatch"],
            [stream_arn],
        )
        # DELETE /users/{userId}: the user's batch row, and the deletion record for training.
        allow("events", ["dynamodb:DeleteItem"], [batch])
        deletions = events_bucket.arn_for_objects(f"{contracts.DELETIONS_PREFIX}*")
        allow("events", ["s3:PutObject"], [deletions])
        if "events" in self.functions:
            acknowledge_policy(
                self.functions["events"].role,
                finding("AwsSolutions-IAM5", deletions, stack),
                "DELETE /users/{userId} writes one deletion record per user (a hash of the id) "
                f"under {contracts.DELETIONS_PREFIX}; nothing else in the bucket.",
            )
        if cfg.realtime:
            endpoint_arn = stack.format_arn(
                service="sagemaker", resource="endpoint", resource_name=cfg.endpoint_name.lower()
            )
            allow("recommendations", ["sagemaker:InvokeEndpoint"], [endpoint_arn])
        # With encryption: kms the tables are encrypted with the data key.
        for function, actions, via in (
            ("recommendations", READ, ["dynamodb"]),
            ("events", WRITE, ["dynamodb", "s3"]),
        ):
            if function in self.functions:
                grant_data_key(self.functions[function].role, cfg, actions=actions, via=via)

    def _execution_logs(self, cfg: EnvironmentConfig) -> None:
        """Create the stage's execution log group (API Gateway names it
        ``API-Gateway-Execution-Logs_<restApiId>/<stage>`` and would create it without a
        retention period on the first error it logs) before the stage exists."""
        group = retained_log_group(
            self,
            "ExecutionLogs",
            cfg,
            f"API-Gateway-Execution-Logs_{self.rest_api.rest_api_id}/{STAGE_NAME}",
        )
        self.rest_api.deployment_stage.node.add_dependency(group)

    def _gateway_responses(self) -> None:
        """Requests API Gateway rejects get the API's error shape: JSON ``message`` + error type."""
        for response_type, error_type in (
            (apigw.ResponseType.BAD_REQUEST_BODY, "InvalidInputException"),
            (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "InvalidInputException"),
        ):
            self.rest_api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                status_code="400",
                response_headers={"x-amzn-ErrorType": f"'{error_type}'"},
                templates={
                    "application/json": (
                        '{"message": "$util.escapeJavaScript($context.error.validationErrorString)"}'
                    )
                },
            )
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                templates={"application/json": '{"message": $context.error.messageString}'},
            )

    def _routes(self) -> None:
        document = load_openapi()
        validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integrations: dict[str, apigw.LambdaIntegration] = {}
        for route in routes.ROUTES:
            resource = self.rest_api.root.resource_for_path(route.path)
            validation = operation_validation(document, route.method, route.path)
            models = None
            if validation.body_schema is not None:
                model = self.rest_api.add_model(
                    f"{route.operation_id}Model",
                    model_name=f"{route.operation_id}Request",
                    content_type="application/json",
                    schema=_json_schema(validation.body_schema),
                )
                models = {"application/json": model}
            if route.function not in integrations:
                integrations[route.function] = apigw.LambdaIntegration(
                    self.functions[route.function].function, proxy=True
                )
            method = resource.add_method(
                route.method,
                integrations[route.function],
                operation_name=route.operation_id,
                request_validator=validator,
                request_models=models,
                request_parameters=validation.required_parameters or None,
            )
            acknowledge(
                resource_of(method),
                "AwsSolutions-COG4",
                "The API authorises every method with IAM (SigV4), the AWS-native choice for "
                "service-to-service callers; a Cognito user pool authorizer is not needed.",
            )

    def _usage_plan(self, cfg: EnvironmentConfig) -> None:
        self.api_key = self.rest_api.add_api_key("ApiKey", api_key_name=f"{cfg.prefix}-api-key")
        plan = self.rest_api.add_usage_plan(
            "UsagePlan",
            name=f"{cfg.prefix}-usage-plan",
            throttle=apigw.ThrottleSettings(
                rate_limit=cfg.api.throttle_rate_limit, burst_limit=cfg.api.throttle_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=cfg.api.api_key_quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_stage(stage=self.rest_api.deployment_stage)
        plan.add_api_key(self.api_key)


def _json_schema(schema: dict) -> apigw.JsonSchema:
    """An API Gateway ``JsonSchema`` from a plain draft-4 dict (keeps every keyword)."""
    return _JsonSchemaFromDict.build(schema)


class _JsonSchemaFromDict:
    """Map a draft-4 dict onto CDK's ``JsonSchema`` struct (which uses snake_case keywords)."""

    _KEYWORDS = {
        "$schema": "schema",
        "$ref": "ref",
        "type": "type",
        "title": "title",
        "description": "description",
        "enum": "enum",
        "default": "default",
        "format": "format",
        "multipleOf": "multiple_of",
        "maximum": "maximum",
        "exclusiveMaximum": "exclusive_maximum",
        "minimum": "minimum",
        "exclusiveMinimum": "exclusive_minimum",
        "maxLength": "max_length",
        "minLength": "min_length",
        "pattern": "pattern",
        "items": "items",
        "additionalItems": "additional_items",
        "maxItems": "max_items",
        "minItems": "min_items",
        "uniqueItems": "unique_items",
        "contains": "contains",
        "maxProperties": "max_properties",
        "minProperties": "min_properties",
        "required": "required",
        "properties": "properties",
        "additionalProperties": "additional_properties",
        "patternProperties": "pattern_properties",
        "dependencies": "dependencies",
        "propertyNames": "property_names",
        "allOf": "all_of",
        "anyOf": "any_of",
        "oneOf": "one_of",
        "not": "not_",
        "definitions": "definitions",
    }
    _SCHEMA_VALUED = {"items", "additionalItems", "contains", "not", "propertyNames"}
    _SCHEMA_MAPS = {"properties", "patternProperties", "definitions"}
    _SCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}

    @classmethod
    def build(cls, schema: dict) -> apigw.JsonSchema:
        kwargs = {}
        for key, value in schema.items():
            if key not in cls._KEYWORDS:
                raise ValueError(
                    f"openapi.json: JSON schema keyword {key!r} is not supported by API Gateway models"
                )
            if key == "$schema":
                value = apigw.JsonSchemaVersion.DRAFT4
            elif key == "type":
                value = (
                    [apigw.JsonSchemaType[v.upper()] for v in value]
                    if isinstance(value, list)
                    else apigw.JsonSchemaType[value.upper()]
                )
            elif key in cls._SCHEMA_VALUED or (
                key == "additionalProperties" and isinstance(value, dict)
            ):
                value = (
                    cls.build(value)
                    if isinstance(value, dict)
                    else [cls.build(v) for v in value]
                    if isinstance(value, list)
                    else value
                )
            elif key in cls._SCHEMA_MAPS:
                value = {name: cls.build(s) for name, s in value.items()}
            elif key in cls._SCHEMA_LISTS:
                value = [cls.build(s) for s in value]
            kwargs[cls._KEYWORDS[key]] = value
        return apigw.JsonSchema(**kwargs)
