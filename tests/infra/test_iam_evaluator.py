"""The policy evaluator behind tests/infra/test_iam_policies.py decides like AWS: explicit Deny
wins, IAM wildcards, case-insensitive actions, conditions with AWS's semantics for missing keys,
IfExists, negated operators and multivalued keys, and KMS key policies."""

from __future__ import annotations

import pytest
from iamcheck.evaluator import (
    Request,
    ResourcePolicy,
    UnsupportedCondition,
    conditions_match,
    decide,
)

ROLE = "arn:aws:iam::111122223333:role/r"
BUCKET = "arn:aws:s3:::b"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, condition=None, effect="Allow"):
    st = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        st["Condition"] = condition
    return st


def allowed(request, *docs, resource_policies=()):
    return decide(request, list(docs), list(resource_policies), principal=ROLE,
                  account="111122223333").allowed


def test_allow_implicit_deny_and_explicit_deny_wins():
    get = Request("s3:GetObject", f"{BUCKET}/models/a")
    assert allowed(get, policy(allow("s3:GetObject", f"{BUCKET}/models/*")))
    assert not allowed(get, policy(allow("s3:GetObject", f"{BUCKET}/events/*")))
    assert not allowed(get, policy(allow("s3:*", "*"), allow("s3:GetObject", f"{BUCKET}/models/*",
                                                               effect="Deny")))


def test_wildcards_are_iam_globs_and_actions_ignore_case():
    doc = policy(allow("S3:get*", "arn:aws:s3:::b/m?dels/*"))
    assert allowed(Request("s3:GetObject", "arn:aws:s3:::b/models/x"), doc)
    # '.' is literal (moto's own matcher treats it as a regex dot)
    assert not allowed(Request("s3:GetObject", "arn:aws:s3:::b/models/x"),
                       policy(allow("s3:GetObject", "arn:aws:s3:::b/models.x")))
    assert not allowed(Request("s3:PutObject", "arn:aws:s3:::b/models/x"), doc)


def test_a_condition_on_a_missing_key_does_not_match_unless_if_exists_or_negated():
    cond = {"StringLike": {"s3:prefix": ["models/*"]}}
    doc = policy(allow("s3:ListBucket", BUCKET, cond))
    assert allowed(Request("s3:ListBucket", BUCKET, {"s3:prefix": "models/serving.json"}), doc)
    assert not allowed(Request("s3:ListBucket", BUCKET, {"s3:prefix": "events/"}), doc)
    assert not allowed(Request("s3:ListBucket", BUCKET), doc)  # moto lets this pass
    assert conditions_match({"StringLikeIfExists": {"s3:prefix": "models/*"}}, {})
    assert conditions_match({"StringNotEquals": {"aws:SourceAccount": "1"}}, {})
    assert not conditions_match({"StringNotEquals": {"aws:SourceAccount": "1"}},
                                {"aws:SourceAccount": "1"})


def test_a_failed_condition_on_an_allow_is_no_allow_not_a_deny():
    # moto turns it into DENIED, which would hide a second statement that does allow
    doc = policy(allow("iam:PassRole", ROLE, {"StringEquals": {"iam:PassedToService": "x"}}),
                 allow("iam:PassRole", ROLE))
    assert allowed(Request("iam:PassRole", ROLE, {"iam:PassedToService": "y"}), doc)


def test_role_arn_and_multivalued_conditions():
    doc = policy(allow("cloudformation:UpdateStack", "*",
                       {"StringEquals": {"cloudformation:RoleArn": ROLE}}))
    assert allowed(Request("cloudformation:UpdateStack", "s", {"cloudformation:RoleArn": ROLE}), doc)
    assert not allowed(Request("cloudformation:UpdateStack", "s"), doc)
    aliases = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/data"}}
    assert conditions_match(aliases, {"kms:ResourceAliases": ["alias/other", "alias/data"]})
    assert not conditions_match(aliases, {"kms:ResourceAliases": ["alias/other"]})
    assert not conditions_match(aliases, {})
    with pytest.raises(UnsupportedCondition):
        conditions_match({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}},
                         {"aws:CurrentTime": "2021-01-01"})


def test_a_bucket_policy_deny_applies_to_the_role():
    deny_plain_http = ResourcePolicy(policy({
        "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
        "Resource": [BUCKET, f"{BUCKET}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}), "bucket")
    doc = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    tls = Request("s3:GetObject", f"{BUCKET}/k", {"aws:SecureTransport": "true"})
    plain = Request("s3:GetObject", f"{BUCKET}/k", {"aws:SecureTransport": "false"})
    assert allowed(tls, doc, resource_policies=[deny_plain_http])
    assert not allowed(plain, doc, resource_policies=[deny_plain_http])


def test_a_key_policy_must_trust_the_account_or_the_role():
    key = "arn:aws:kms:us-east-1:111122223333:key/k"
    decrypt = Request("kms:Decrypt", key)
    identity = policy(allow("kms:Decrypt", key))
    root = ResourcePolicy(policy({"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                  "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}), "kms")
    other = ResourcePolicy(policy({"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                   "Principal": {"AWS": "arn:aws:iam::111122223333:role/x"}}), "kms")
    direct = ResourcePolicy(policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                                    "Principal": {"AWS": ROLE}}), "kms")
    assert allowed(decrypt, identity, resource_policies=[root])
    assert not allowed(decrypt, policy(), resource_policies=[root])  # the account alone is not enough
    assert not allowed(decrypt, identity, resource_policies=[other])
    assert allowed(decrypt, policy(), resource_policies=[direct])
