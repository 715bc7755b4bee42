"""Alarm notifications: one encrypted SNS topic every alarm of the deployment publishes to."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from recsys_infra.config import EnvironmentConfig
from recsys_infra.functions import removal_policy


class AlarmTopic(Construct):
    """An SNS topic for alarms, encrypted with a customer managed key CloudWatch may use.

    CloudWatch alarms cannot publish to a topic encrypted with the AWS managed ``aws/sns`` key,
    hence the customer managed key with a grant to ``cloudwatch.amazonaws.com``.

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
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
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
            )
        )
        if cfg.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(cfg.alarm_email))
