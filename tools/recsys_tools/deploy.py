"""``recsys deploy preflight``: check an AWS account and region before ``cdk deploy``
(``recsys deploy rollback`` lives in :mod:`recsys_tools.rollback`).

The checks live in :mod:`recsys_infra.preflight` (deploy-side, boto3 clients passed in); this
module reads the environment from ``cdk.json``, builds the clients and prints one line per check.
Exit status: 0 when nothing FAILed (WARNs included), 1 when a check FAILed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``deploy`` (with ``preflight`` and ``rollback``) on an ``argparse`` subparsers object."""
    deploy = subparsers.add_parser("deploy", help="deployment helpers (AWS)",
                                   description="Helpers around cdk deploy.")
    commands = deploy.add_subparsers(dest="deploy_command", metavar="COMMAND")
    commands.required = True
    pre = commands.add_parser(
        "preflight", help="check an AWS account before cdk deploy (read-only calls)",
        description=(
            "Check the account and region of your AWS credentials before cdk deploy: CDK "
            "bootstrap and its version, the SageMaker scikit-learn image, SageMaker instance "
            "quotas for training and the endpoint, Lambda concurrency. Read-only; one line per "
            "check (PASS / WARN / FAIL and what to do); exit status 1 if any check FAILs."))
    pre.add_argument("--env", default=None,
                     help="environment in cdk.json (default: the context's recsys:env)")
    pre.add_argument("--region", default=None,
                     help="region to check (default: the environment's region in cdk.json)")
    pre.add_argument("--profile", default=None, help="AWS named profile (default: the usual chain)")
    pre.add_argument("--cdk-json", type=Path, default=None,
                     help="the cdk.json to read (default: the repository's)")
    pre.add_argument("--cdk-out", type=Path, default=None,
                     help="a synthesised cloud assembly (cdk.out) to read the bootstrap version "
                          "requirement from (default: cdk.out if present, else a probe synth)")
    pre.set_defaults(func=run_preflight)
    from recsys_tools.rollback import add_parser as add_rollback

    add_rollback(commands)
    return deploy


def default_requirement(repo_root: Path) -> Any:
    """The bootstrap requirement from ``cdk.out/manifest.json`` when a synth left one, else from
    :func:`recsys_infra.preflight.probe_bootstrap_requirement`."""
    from recsys_infra import preflight
    from recsys_infra.config import ConfigError

    manifest = repo_root / "cdk.out" / "manifest.json"
    if manifest.is_file():
        try:
            return preflight.bootstrap_requirement_from_manifest(manifest)
        except ConfigError:
            pass  # a half-written cdk.out: fall back to the probe
    return preflight.probe_bootstrap_requirement()


def run_preflight(args: argparse.Namespace, out: TextIO = sys.stdout,
                  session: Any = None) -> int:
    """Run every check and print one line each; returns the exit status.

    Args:
        args: Parsed ``recsys deploy preflight`` arguments.
        out: Where the lines go.
        session: A ``boto3.Session`` (default: one from ``--profile`` and the region).
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound
    from recsys_infra import config, preflight

    try:
        context = (config.load_cdk_json_context(args.cdk_json) if args.cdk_json
                   else config.load_cdk_json_context())
        cfg = config.from_context(context, args.env)
        region = args.region or cfg.region
        if region != cfg.region:
            try:
                cfg = dataclasses.replace(cfg, region=region)
                config.validate(cfg)
            except config.ConfigError:
                raise config.ConfigError(f"--region: {region!r} is not an AWS region name") from None
        if args.cdk_out is not None:  # a bad --cdk-out is bad input, found before any AWS call
            requirement: Any = preflight.bootstrap_requirement_from_manifest(
                args.cdk_out / "manifest.json")
        else:
            def requirement() -> Any:
                return default_requirement(config.REPO_ROOT)
    except config.ConfigError as exc:
        print(f"recsys deploy preflight: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        session = session or boto3.Session(profile_name=args.profile, region_name=region)
        clients = preflight.Clients.from_session(session, region)
    except (ProfileNotFound, BotoCoreError) as exc:
        print(f"recsys deploy preflight: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"preflight: environment {cfg.name} ({cfg.prefix}), region {region}", file=out)
    results = preflight.run_preflight(cfg, clients, requirement, region)
    for result in results:
        print(result.line(), file=out)
    status = preflight.exit_status(results)
    counts = {s: sum(r.status == s for r in results) for s in (preflight.PASS, preflight.WARN,
                                                                 preflight.FAIL)}
    verdict = "not ready: fix the FAIL lines, then run again" if status else "ready for cdk deploy"
    print(f"preflight: {counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL: "
          f"{verdict}", file=out)
    return EXIT_FAILED if status else 0
