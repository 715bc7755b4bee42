"""``python -m recsys.local up ...``: the same as ``recsys local up ...``."""

from __future__ import annotations

import sys

from recsys.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
