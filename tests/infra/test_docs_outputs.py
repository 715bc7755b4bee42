"""The documents name only stack outputs the synthesized app has: every output that README.md
and docs/*.md mention (``<Name output>``, "the `Name` output", ``OutputKey=='Name'``) exists."""

from __future__ import annotations

import re

from infra_env import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# How the documents name an output: `<Name output>`, "the `Name` output", OutputKey=='Name'
OUTPUT_MENTION = re.compile(
    r"<([A-Z][A-Za-z0-9]*) output>"
    r"|`([A-Z][A-Za-z0-9]*)`\s+outputs?\b"
    r"|OutputKey\s*==\s*[`'\"]([A-Z][A-Za-z0-9]*)[`'\"]"
    r"|--output-key\s+([A-Z][A-Za-z0-9]*)"
)


def mentioned_outputs(text: str) -> set[str]:
    """The output names a document's text mentions."""
    return {name for groups in OUTPUT_MENTION.findall(text) for name in groups if name}


def synthesized_outputs(templates: dict) -> set[str]:
    return {key for template in templates.values() for key in template.get("Outputs", {})}


def test_every_output_the_documents_name_exists(synth):
    outputs = synthesized_outputs(synth.templates)
    assert {"StateMachineArn", "ApiUrl", "AlarmTopicArn", "EventsBucketName"} <= outputs
    missing = {
        f"{doc.relative_to(REPO)}: {name}"
        for doc in DOCS
        for name in mentioned_outputs(doc.read_text(encoding="utf-8"))
        if name not in outputs
    }
    assert not missing, f"documents name outputs the app does not have: {sorted(missing)}"


def test_the_output_pattern_finds_each_way_of_naming_one():
    text = (
        "--state-machine-arn <TrainingPipelineArn output>; the `DashboardUrl` output; "
        "Outputs[?OutputKey=='ApiUrl']; --output-key EventsBucketName; the batch output"
    )
    assert mentioned_outputs(text) == {
        "TrainingPipelineArn", "DashboardUrl", "ApiUrl", "EventsBucketName"}


# `describe-stacks --stack-name <stack> ... OutputKey=='<Name>'`: the output must be that stack's
STACK_OUTPUT = re.compile(
    r"--stack-name\s+\"?(?:recsys-dev|\$\{?(?:STACK_)?PREFIX\}?)-([a-z]+)\"?(?:\s|\\)+"
    r"--query\s+\"Stacks\[0\]\.Outputs\[\?OutputKey=='([A-Z][A-Za-z0-9]*)'\]"
)


def stack_outputs(text: str) -> set[tuple[str, str]]:
    """``(stack suffix, output)`` of each describe-stacks query for one output in ``text``."""
    return set(STACK_OUTPUT.findall(text))


def test_each_queried_output_belongs_to_the_stack_it_is_read_from(synth):
    """The default environment (``recsys-dev``) is the one the documents' commands use."""
    queried = {
        (doc.relative_to(REPO), stack, name)
        for doc in DOCS
        for stack, name in stack_outputs(doc.read_text(encoding="utf-8"))
    }
    assert {stack for _, stack, _ in queried} >= {"storage", "training"}
    wrong = sorted(
        f"{doc}: {name} is not an output of recsys-dev-{stack}"
        for doc, stack, name in queried
        if name not in synth.templates.get(f"recsys-dev-{stack}", {}).get("Outputs", {})
    )
    assert not wrong, wrong


def test_the_stack_output_pattern():
    text = (
        'X=$(aws cloudformation describe-stacks --stack-name recsys-dev-storage \\\n'
        '  --query "Stacks[0].Outputs[?OutputKey==\'EventsBucketName\'].OutputValue" --output text)\n'
        'describe-stacks --stack-name $STACK_PREFIX-training \\\n      --query '
        '"Stacks[0].Outputs[?OutputKey==\'StateMachineArn\'].OutputValue"'
    )
    assert stack_outputs(text) == {("storage", "EventsBucketName"), ("training", "StateMachineArn")}
