"""The ``recsys`` console script: the ML commands of ``recsys.cli`` plus the tools' groups.

``recsys data synth | train | evaluate`` come from :func:`recsys.cli.build_parser` (also runnable
as ``python -m recsys``); this module adds ``recsys local up`` (the local stack) and
``recsys deploy preflight`` (checks an AWS account before ``cdk deploy``). Each group's modules are
imported only when its command runs, so ``recsys train`` never loads boto3 or moto.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    """The ``recsys`` parser: the ML commands plus ``local`` and ``deploy``."""
    from recsys.cli import build_parser as build_ml_parser

    from recsys_tools.deploy import add_parser as add_deploy
    from recsys_tools.local.cli import add_parser as add_local

    parser = build_ml_parser()
    sub = _subparsers(parser)
    add_local(sub)
    add_deploy(sub)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("recsys.cli.build_parser() has no subcommands")  # pragma: no cover


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``recsys ...``; returns the exit status."""
    from recsys.cli import main as run

    return run(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
