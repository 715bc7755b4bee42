"""recsys: the ML core of the two-stage recommendation and search template.

``from recsys import Recommender`` loads a trained model directory and answers
``recommend``, ``similar``, ``rank`` and ``search``. The package is pure Python plus numpy,
scipy, scikit-learn and hnswlib; nothing in the ML code imports an AWS library.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Recommender", "__version__"]


def __getattr__(name):  # lazy: `import recsys.protocol` must not pull numpy in
    if name == "Recommender":
        from .model import Recommender

        return Recommender
    raise AttributeError(name)
