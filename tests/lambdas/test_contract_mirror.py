"""The training side (``sagemaker/recsys``) cannot import ``recsys_lambdas`` inside its container,
so ``recsys.batch_contract`` mirrors the few contracts the batch output shares with the API. These
tests fail when the two copies drift apart."""

from __future__ import annotations

import pytest
from recsys import batch_contract
from recsys_lambdas import contracts


def test_constants_are_the_same_on_both_sides():
    assert batch_contract.POPULAR_USER_ID == contracts.POPULAR_USER_ID
    assert batch_contract.MAX_RECENT_ITEMS == contracts.MAX_RECENT_ITEMS
    assert batch_contract.METRIC_FORMAT == contracts.METRIC_LINE_FORMAT
    assert batch_contract.SEARCH_ROW_PREFIX == contracts.SEARCH_ROW_PREFIX
    assert batch_contract.SEARCH_ROW_ITEMS == contracts.SEARCH_ROW_ITEMS
    assert batch_contract.SESSION_OWNER_PREFIX == contracts.SESSION_OWNER_PREFIX
    assert batch_contract.IDENTITY_RECORD_TYPE == contracts.IDENTITY_RECORD_TYPE


@pytest.mark.parametrize("text", [
    "The Lucky Tower 2", "Amélie (2001)", "children's  CHILDREN\u2019S", "Schindler's List", "naïve café",
    "snake_case-and.dots", "Ωmega straße ÉCOLE", "  ", "2001: A Space Odyssey", "ﬁne ligature", "x y z 7",
])
def test_the_words_the_api_looks_up_are_the_words_training_wrote(text):
    assert batch_contract.search_tokens(text) == contracts.search_tokens(text)


def test_search_tokens_fold_case_accents_and_apostrophes():
    assert contracts.search_tokens("Amélie's AMELIES amelie") == ["amelies", "amelie"]
