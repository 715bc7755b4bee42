"""Two independent scanners hold the synthesized templates: cdk-nag (during the ``synth`` fixture,
see conftest.py) and checkov, run once per session over every template the fixture wrote. Each
exception is narrow and carries its reason: checkov skips in the resource's own metadata,
cdk-nag acknowledgements on the one construct of the finding, for the one finding."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from checkov_env import run_checkov
from recsys_infra import nag

# Rule-level acknowledgements (no ``[finding]``): rules whose findings have no finding id, each
# allowed here on purpose. Everything else must name the finding it excuses.
RULE_LEVEL_ALLOWED = {
    "AwsSolutions-S1": "the access logs bucket cannot log to itself",
    "AwsSolutions-L1": "the runtime is pinned to the Powertools layer's python311",
    "AwsSolutions-COG4": "every method authorises with IAM (SigV4), not Cognito",
    "AwsSolutions-APIG3": "WAF is the deployer's choice for untrusted networks; IAM auth applies",
}
# A skip comment must be a reason, not a label.
GENERIC = re.compile(r"^(false positive|not needed|n/?a|ignore|skip|accepted|by design)\.?$", re.I)

PROBE = {
    "Resources": {
        # A bare bucket fails several checks (no access logs, no versioning...).
        "ProbeBucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "ProbeSkipped": {
            "Type": "AWS::S3::Bucket",
            "Properties": {},
            "Metadata": {
                "checkov": {
                    "skip": [{"id": "CKV_AWS_18", "comment": "probe: the skip must be honoured"}]
                }
            },
        },
    }
}


@pytest.fixture(scope="session")
def checkov(synth, tmp_path_factory):
    """checkov's report over every synthesized template plus a probe template, in one run."""
    probe = tmp_path_factory.mktemp("checkov-probe") / "probe.template.json"
    probe.write_text(json.dumps(PROBE))
    files = sorted(synth.outdir.glob("*.template.json"))
    assert {f.name[: -len(".template.json")] for f in files} == set(synth.templates)
    return run_checkov([*files, probe])


def _file(result: dict) -> str:
    return result["file_path"].rsplit("/", 1)[-1]


def _results(report: dict, kind: str, probe: bool = False) -> list[dict]:
    return [
        r
        for r in report["results"][kind]
        if (_file(r) == "probe.template.json") is probe
    ]


def test_checkov_scanned_every_template(checkov, synth):
    scanned = {_file(r) for kind in ("passed_checks", "skipped_checks") for r in _results(checkov, kind)}
    assert scanned == {f"{name}.template.json" for name in synth.templates}
    assert checkov["summary"]["parsing_errors"] == 0


def test_checkov_reports_no_failed_check(checkov):
    failed = [
        f"{_file(r)} {r['resource']}: {r['check_id']} {r['check_name']}"
        for r in _results(checkov, "failed_checks")
    ]
    assert failed == []


def test_checkov_really_checks_and_honours_metadata_skips(checkov):
    failed = {(r["resource"], r["check_id"]) for r in _results(checkov, "failed_checks", probe=True)}
    assert ("AWS::S3::Bucket.ProbeBucket", "CKV_AWS_18") in failed
    assert ("AWS::S3::Bucket.ProbeSkipped", "CKV_AWS_18") not in failed
    skipped = {(r["resource"], r["check_id"]) for r in _results(checkov, "skipped_checks", probe=True)}
    assert skipped == {("AWS::S3::Bucket.ProbeSkipped", "CKV_AWS_18")}


def _checkov_skips(synth):
    for name, template in synth.templates.items():
        for logical_id, resource in template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                yield name, f"{resource['Type']}.{logical_id}", skip


def test_every_checkov_skip_has_a_reason_and_is_applied(synth, checkov):
    skips = list(_checkov_skips(synth))
    assert skips, "the app records its checkov exceptions in resource metadata"
    applied = {
        (_file(r), r["resource"], r["check_id"]): r["check_result"].get("suppress_comment")
        for r in _results(checkov, "skipped_checks")
    }
    for name, resource, skip in skips:
        where = f"{name} {resource} {skip.get('id')}"
        assert set(skip) == {"id", "comment"}, where
        assert nag.CHECKOV_ID.match(skip["id"]), where
        comment = skip["comment"].strip()
        assert len(comment) >= nag.MIN_CHECKOV_COMMENT and len(comment.split()) >= 8, where
        assert not GENERIC.match(comment), where
        # checkov evaluated the check on this resource and skipped it with this comment.
        assert applied.get((f"{name}.template.json", resource, skip["id"])) == comment, where


def test_checkov_skip_refuses_an_empty_reason():
    stack = Stack(App(), "S")
    bucket = s3.Bucket(stack, "B")
    with pytest.raises(ValueError, match="needs a reason"):
        nag.checkov_skip(bucket, "CKV_AWS_18", "false positive")
    with pytest.raises(ValueError, match="not a checkov AWS check id"):
        nag.checkov_skip(bucket, "AwsSolutions-S1", "x" * 60)
    nag.checkov_skip(bucket, "CKV_AWS_18", "a probe bucket that is never deployed anywhere")
    nag.checkov_skip(bucket, "CKV_AWS_21", "a probe bucket that is never deployed anywhere")
    cfn = bucket.node.default_child
    assert [s["id"] for s in cfn.get_metadata("checkov")["skip"]] == ["CKV_AWS_18", "CKV_AWS_21"]


# --- cdk-nag acknowledgements -------------------------------------------------------------


def _metadata(synth):
    """(path -> logical id, [(path, rule id, reason)]) over every stack's metadata."""
    logical: dict[str, tuple[str, str]] = {}
    acks: list[tuple[str, str, str, str]] = []
    for path in synth.outdir.glob("*.metadata.json"):
        stack = path.name[: -len(".metadata.json")]
        for construct_path, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:logicalId":
                    logical[construct_path] = (stack, entry["data"])
                elif entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        acks.append((stack, construct_path, rule.removeprefix("Annotation::"), reason))
    return logical, acks


def _policy_resources(template: dict, logical_id: str) -> set[str]:
    document = template["Resources"][logical_id]["Properties"]["PolicyDocument"]
    found = set()
    for statement in document["Statement"]:
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            found.add(nag.flatten(resource))
    return found


def ack_problems(logical: dict, acks: list, templates: dict) -> list[str]:
    """What is wrong with the acknowledgements ``acks`` (see ``_metadata``), one line each."""
    problems = []
    for stack, path, rule, reason in acks:
        where = f"{path}: {rule}"
        if len(reason) < 20:
            problems.append(f"{where}: no reason")
        if "[" not in rule and rule not in RULE_LEVEL_ALLOWED:
            problems.append(f"{where}: name the finding or allow-list the rule")
        under = {lid for p, lid in logical.items() if p == path or p.startswith(path + "/")}
        if len(under) != 1:
            problems.append(f"{where}: covers {len(under)} resources, acknowledge on one")
        if rule.startswith("AwsSolutions-IAM5["):
            finding = re.fullmatch(r"AwsSolutions-IAM5\[Resource::(.+)\]", rule)
            if not path.endswith("/DefaultPolicy") or path + "/Resource" not in logical:
                problems.append(f"{where}: on the role's DefaultPolicy, not the role")
            elif not finding or finding.group(1) not in _policy_resources(
                templates[stack], logical[path + "/Resource"][1]
            ):
                problems.append(f"{where}: the policy has no such wildcard (stale)")
    return problems


def test_nag_acknowledgements_are_scoped_to_one_resource_and_one_finding(synth):
    logical, acks = _metadata(synth)
    assert len(acks) > 20, "the synthesized metadata records the acknowledgements"
    assert ack_problems(logical, acks, synth.templates) == []


def test_ack_problems_catches_broad_acknowledgements():
    template = {
        "Resources": {
            "RolePolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {"PolicyDocument": {"Statement": [{"Resource": "*"}]}},
            }
        }
    }
    logical = {
        "/S/Role/Resource": ("S", "Role"),
        "/S/Role/DefaultPolicy/Resource": ("S", "RolePolicy"),
    }
    reason = "a reason long enough to be read"
    good = [("S", "/S/Role/DefaultPolicy", "AwsSolutions-IAM5[Resource::*]", reason)]
    assert ack_problems(logical, good, {"S": template}) == []
    bad = [
        ("S", "/S/Role", "AwsSolutions-IAM5[Resource::*]", reason),  # the whole role
        ("S", "/S/Role/DefaultPolicy", "AwsSolutions-IAM5[Resource::arn:x/*]", reason),  # stale
        ("S", "/S/Role/DefaultPolicy", "AwsSolutions-IAM4", reason),  # rule-level
        ("S", "/S/Role/DefaultPolicy", "AwsSolutions-S1[x]", "short"),
    ]
    problems = ack_problems(logical, bad, {"S": template})
    assert [p.split(": ")[-1] for p in problems] == [
        "covers 2 resources, acknowledge on one",
        "on the role's DefaultPolicy, not the role",
        "the policy has no such wildcard (stale)",
        "name the finding or allow-list the rule",
        "no reason",
    ]


def test_policy_acknowledgement_needs_a_finding_and_a_policy():
    stack = Stack(App(), "S")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    with pytest.raises(ValueError, match="has no DefaultPolicy"):
        nag.acknowledge_policy(role, "AwsSolutions-IAM5[Resource::*]", "x-ray needs star here")
    role.add_to_policy(iam.PolicyStatement(actions=["xray:PutTraceSegments"], resources=["*"]))
    with pytest.raises(ValueError, match="not a whole rule"):
        nag.acknowledge_policy(role, "AwsSolutions-IAM5", "x-ray needs star here")
    nag.acknowledge_policy(role, "AwsSolutions-IAM5[Resource::*]", "x-ray needs star here")
