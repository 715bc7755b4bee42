"""Every alarm of the synthesized templates is in the alarm table of docs/OPERATIONS.md, with
what it measures, where its threshold comes from and the action it asks for; the table lists no
alarm the app does not create."""

from __future__ import annotations

import re

from infra_env import REPO


def alarm_ids(templates: dict) -> dict[str, set[str]]:
    """Every CloudWatch alarm's logical id without CDK's hash suffix (the part CloudFormation
    puts in the alarm's name, ``<stack>-<id><hash>-<random>``) -> the stacks that have it."""
    found: dict[str, set[str]] = {}
    for stack, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                name = re.sub(r"[0-9A-F]{8}$", "", logical_id)
                found.setdefault(name, set()).add(stack)
    return found


def alarm_table(text: str) -> dict[str, list[str]]:
    """Rows of the table under the "Alarms" heading of OPERATIONS.md: each id in backticks in
    the first cell -> the row's cells."""
    section = re.search(r"^## Alarms\b(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/OPERATIONS.md has no '## Alarms' section"
    rows = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 4 or set(cells[0]) <= {"-", ":", " "}:
            continue
        for name in re.findall(r"`([A-Za-z0-9<>]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_every_alarm_is_in_the_operations_table(synth):
    ids = alarm_ids(synth.templates)
    # the API's alarms, one pair per function, the endpoint's two and the pipeline's one
    assert {"MonitoringApi5xxAlarm", "MonitoringEventsErrorsAlarm", "ServingErrors5xxAlarm",
            "ServingLatencyAlarm", "PipelineFailedAlarm"} <= set(ids)
    table = alarm_table((REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8"))
    missing = sorted(set(ids) - set(table))
    assert not missing, f"alarms missing from docs/OPERATIONS.md's table: {missing}"
    stale = sorted(set(table) - set(ids))
    assert not stale, f"docs/OPERATIONS.md lists alarms the app does not create: {stale}"
    for name, cells in table.items():
        assert all(cells[:4]), f"{name}: every column (alarm, metric, threshold, action) is filled"
