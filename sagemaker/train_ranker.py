"""SageMaker training job 2: the logistic-regression ranker on job 1's output (channel
``retrieval``), its offline validation, and the batch recommendations for DynamoDB.

Locally: ``SM_CHANNEL_EVENTS=data/ SM_CHANNEL_RETRIEVAL=job1/ SM_MODEL_DIR=model/
SM_OUTPUT_DATA_DIR=out/ python sagemaker/train_ranker.py``.
"""

import sys

from recsys.jobs import main_ranker

if __name__ == "__main__":
    sys.exit(main_ranker())
