"""Observability: the encrypted SNS topic every alarm notifies, the API's alarms and a dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from recsys_infra.config import EnvironmentConfig
from recsys_infra.functions import removal_policy
from recsys_infra.serving import VARIANT_NAME


class AlarmTopic(Construct):
    """An SNS topic for alarms, encrypted with a customer managed key CloudWatch may use.

    CloudWatch alarms cannot publish to a topic encrypted with the AWS managed ``aws/sns`` key,
    hence the customer managed key with a grant to ``cloudwatch.amazonaws.com``. Both that grant
    and the topic policy hold the service to this account's alarms of this deployment
    (``aws:SourceAccount`` and ``aws:SourceArn``): CloudFormation names every alarm of the app
    ``<stack name>-...`` and every stack name starts with the prefix. This key stays separate
    from the data key (``encryption.py``), which trusts no service principal.

    Attributes:
        topic: The topic (subscribe e-mail, chat or paging integrations to it).
    """

    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(
            self,
            "Key",
            description=f"{cfg.prefix} alarm topic encryption",
            enable_key_rotation=True,
            removal_policy=removal_policy(cfg),
        )
        stack = Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{cfg.prefix}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        from_alarms = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": alarms},
        }
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions=from_alarms,
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=cfg.alarm_topic_name,
            display_name=f"{cfg.prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_alarms,
            )
        )
        if cfg.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(cfg.alarm_email))


class ServiceMonitoring(Construct):
    """Alarms on what a caller notices (API 5xx, slow API, failing or throttled functions) and
    one dashboard with the API, its functions, the endpoint and the training pipeline.

    Attributes:
        alarms: The alarms (all notify ``topic``).
        dashboard: The CloudWatch dashboard ``<prefix>-recsys``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        rest_api: apigw.RestApi,
        functions: Mapping[str, lambda_.IFunction],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        five_min = Duration.minutes(5)
        action = cw_actions.SnsAction(topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(
            construct_id: str, description: str, metric: cloudwatch.IMetric, threshold: float
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_description=f"{cfg.prefix}: {description}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)
            self.alarms.append(created)

        alarm(
            "Api5xxAlarm",
            "API answered 5xx (a caller saw a server error)",
            rest_api.metric_server_error(period=five_min, statistic="Sum"),
            cfg.api.errors_5xx_alarm_threshold,
        )
        alarm(
            "ApiLatencyAlarm",
            f"API p99 latency above {cfg.api.latency_alarm_ms} ms",
            rest_api.metric_latency(period=five_min, statistic="p99"),
            cfg.api.latency_alarm_ms,
        )
        for name, function in functions.items():
            label = name.capitalize()
            alarm(
                f"{label}ErrorsAlarm",
                f"{name} function errors (unhandled exceptions or timeouts)",
                function.metric_errors(period=five_min, statistic="Sum"),
                1,
            )
            alarm(
                f"{label}ThrottlesAlarm",
                f"{name} function throttled (reserved concurrency exhausted)",
                function.metric_throttles(period=five_min, statistic="Sum"),
                1,
            )

        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=f"{cfg.prefix}-training",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        def pipeline(metric_name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/States",
                metric_name=metric_name,
                dimensions_map={"StateMachineArn": state_machine_arn},
                statistic="Sum",
                period=Duration.hours(1),
            )

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{cfg.prefix}-recsys"
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    rest_api.metric_count(period=five_min),
                    rest_api.metric_client_error(period=five_min),
                    rest_api.metric_server_error(period=five_min),
                ],
            ),
            cloudwatch.GraphWidget(
                title="API latency (ms)",
                left=[
                    rest_api.metric_latency(period=five_min, statistic=s)
                    for s in ("p50", "p90", "p99")
                ],
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[f.metric_errors(period=five_min) for f in functions.values()],
                right=[f.metric_throttles(period=five_min) for f in functions.values()],
            ),
        )
        if cfg.realtime:
            dims = {"EndpointName": cfg.endpoint_name, "VariantName": VARIANT_NAME}

            def endpoint(metric_name: str, statistic: str) -> cloudwatch.Metric:
                return cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name=metric_name,
                    dimensions_map=dims,
                    statistic=statistic,
                    period=five_min,
                )

            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Endpoint invocations and errors",
                    left=[
                        endpoint("Invocations", "Sum"),
                        endpoint("InvocationsPerInstance", "Sum"),
                    ],
                    right=[
                        endpoint("Invocation4XXErrors", "Sum"),
                        endpoint("Invocation5XXErrors", "Sum"),
                    ],
                ),
                cloudwatch.GraphWidget(
                    title="Endpoint model latency (us)",
                    left=[endpoint("ModelLatency", s) for s in ("p50", "p90", "p99")],
                ),
            )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Training pipeline executions",
                left=[
                    pipeline(m)
                    for m in ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
                ],
            )
        )
