"""cdk-nag really runs: the same plugin set-up as cdk/app.py fails a synth with a violation, and a
suppression without a reviewable reason is refused. (The app itself synthesising clean under
cdk-nag is the ``synth`` fixture in conftest.py, and test_app.py for ``python cdk/app.py``.)"""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from recsys_infra.nag import acknowledge


def nagged_app(tmp_path, acknowledged: bool):
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Probe")
    bucket = s3.Bucket(stack, "Plain")  # no access logs, no TLS-only policy
    if acknowledged:
        for rule in ("AwsSolutions-S1", "AwsSolutions-S10"):
            acknowledge(bucket, rule, "probe bucket of the cdk-nag self-test, never deployed")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_violation_fails_the_synth(tmp_path):
    with pytest.raises(Exception, match="ValidationFailed") as failure:
        nagged_app(tmp_path / "a", acknowledged=False).synth()
    assert "AwsSolutions-S1'" in str(failure.value) and "AwsSolutions-S10'" in str(failure.value)


def test_acknowledged_violation_passes(tmp_path):
    nagged_app(tmp_path / "b", acknowledged=True).synth()


def test_suppression_needs_a_reason():
    app = App()
    with pytest.raises(ValueError, match="needs a reason a reviewer can check"):
        acknowledge(Stack(app, "S"), "AwsSolutions-S1", "because")
