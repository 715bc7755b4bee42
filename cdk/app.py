#!/usr/bin/env python3
"""The CDK app (``cdk.json`` runs it): every stack of one environment, checked by cdk-nag.

    cdk synth                       # the environment named by "recsys:env" in cdk.json
    cdk deploy --all -c recsys:env=prod

Runs offline: no AWS credentials and no lookups are needed to synthesise. ``python cdk/app.py``
without the CDK CLI reads ``cdk.json``'s context itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recsys_infra
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas"))  # recsys_lambdas contracts

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks
from recsys_infra import config
from recsys_infra.stacks import build


def main() -> int:
    """Synthesise the app; a bad ``cdk.json`` is a one-line error and exit code 2."""
    # The CLI passes cdk.json's context in CDK_CONTEXT_JSON and it takes precedence; without the
    # CLI, cdk.json's context is the app's context.
    app = App(context=config.load_cdk_json_context())
    try:
        cfg = config.from_context(
            {
                config.ENV_CONTEXT_KEY: app.node.try_get_context(config.ENV_CONTEXT_KEY),
                config.ENVIRONMENTS_CONTEXT_KEY: app.node.try_get_context(
                    config.ENVIRONMENTS_CONTEXT_KEY
                ),
            }
        )
        build(app, cfg)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # cdk-nag's AwsSolutions pack: any unacknowledged finding fails the synth (and the deploy).
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
