"""SageMaker training job 1: item embeddings, HNSW index, graphs, popularity, text index.

Runs in the SageMaker scikit-learn container (``sagemaker_program``) and locally:
``SM_CHANNEL_EVENTS=data/ SM_MODEL_DIR=out/ python sagemaker/train_retrieval.py --dim 64``.
"""

import sys

from recsys.jobs import main_retrieval

if __name__ == "__main__":
    sys.exit(main_retrieval())
