"""One synthesis per test session: the app's real-time environment (``dev`` from cdk.json, with
prod's ``encryption: kms``) and a batch-mode environment with API keys (``aws-managed``
encryption), in one CDK app checked by cdk-nag's AwsSolutions pack; both encryption modes are
synthesised and scanned.

The templates are read back from the cloud assembly as JSON and wrapped in
``aws_cdk.assertions.Template``, so tests assert on what CloudFormation would deploy.
Meanwhile ``python cdk/app.py`` (what cdk.json runs) synthesises in a subprocess without AWS
credentials, so both synths share the wall-clock time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

from infra_env import REPO, clean_env


@dataclasses.dataclass
class Synth:
    """The synthesised environments."""

    outdir: Path
    realtime_cfg: object
    batch_cfg: object
    templates: dict  # stack name -> template dict

    def template(self, stack_name: str):
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stack_name])


@pytest.fixture(scope="session")
def app_subprocess(tmp_path_factory):
    """Start ``.venv/bin/python cdk/app.py`` (cdk.json's app command) from the repo root."""
    tmp = tmp_path_factory.mktemp("app-subprocess")
    proc = subprocess.Popen(
        [sys.executable, "cdk/app.py"],
        cwd=REPO,
        env=clean_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc, tmp / "cdk.out"
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def synth(app_subprocess, tmp_path_factory) -> Synth:
    from aws_cdk import App, Validations
    from cdk_nag import AwsSolutionsChecks
    from recsys_infra import config
    from recsys_infra.stacks import build

    context = config.load_cdk_json_context()
    realtime = config.from_context(context, env="dev")
    batch = config.from_context(context, env="batch")
    assert realtime.serving_mode == "realtime" and batch.serving_mode == "batch"
    assert not realtime.kms and not batch.kms  # dev and batch use AWS managed keys
    realtime = dataclasses.replace(realtime, encryption="kms")
    batch = dataclasses.replace(batch, api=dataclasses.replace(batch.api, auth="iam+api_key"))

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context={k: v for k, v in context.items() if k.startswith("@")})
    build(app, realtime)
    build(app, batch)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises on any unacknowledged cdk-nag finding
    templates = {
        path.name[: -len(".template.json")]: json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }
    return Synth(outdir, realtime, batch, templates)
