"""``python -m recsys_tools.local up ...``: the same as ``recsys local up ...``."""

from __future__ import annotations

import sys

from recsys_tools.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
