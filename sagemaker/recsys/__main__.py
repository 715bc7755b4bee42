"""``python -m recsys ...``: the ML commands (``data synth``, ``train``, ``evaluate``)."""

from __future__ import annotations

import sys

from recsys.cli import main

if __name__ == "__main__":
    sys.exit(main())
