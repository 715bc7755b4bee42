"""What the batch output promises the serving side, mirrored from ``recsys_lambdas.contracts``.

The SageMaker container ships only ``sagemaker/``, so it cannot import the Lambdas' package;
``tests/test_contract_mirror.py`` fails the build when the two copies drift apart.
"""

from __future__ import annotations

from typing import List

from .text import tokenize

METRIC_FORMAT = "METRIC {name}={value:.6f}"  # recsys_lambdas.contracts.METRIC_LINE_FORMAT
MAX_RECENT_ITEMS = 200  # recsys_lambdas.contracts.MAX_RECENT_ITEMS
POPULAR_USER_ID = "__popular__"  # recsys_lambdas.contracts.POPULAR_USER_ID
SEARCH_ROW_PREFIX = "__search__:"  # recsys_lambdas.contracts.SEARCH_ROW_PREFIX
SEARCH_ROW_ITEMS = 100  # recsys_lambdas.contracts.SEARCH_ROW_ITEMS
SESSION_OWNER_PREFIX = "__session__:"  # recsys_lambdas.contracts.SESSION_OWNER_PREFIX
IDENTITY_RECORD_TYPE = "identity"  # recsys_lambdas.contracts.IDENTITY_RECORD_TYPE


def search_tokens(text: str) -> List[str]:
    """The distinct words of ``text`` in order (``recsys_lambdas.contracts.search_tokens``)."""
    return list(dict.fromkeys(tokenize(text)))
