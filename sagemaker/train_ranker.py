"""SageMaker training job 2: the logistic-regression ranker on job 1's output (channel
``retrieval``), its offline validation, and the batch recommendations for DynamoDB.

Locally: ``SM_CHANNEL_EVENTS=data/ SM_CHANNEL_RETRIEVAL=job1/ SM_MODEL_DIR=model/
SM_OUTPUT_DATA_DIR=out/ python sagemaker/train_ranker.py`` (``model/code/`` gets a copy of
``sagemaker/``, as the endpoint will run it).
"""

import sys
from pathlib import Path

from recsys.jobs import main_ranker

if __name__ == "__main__":
    # This script's folder is the job's code directory (/opt/ml/code in the container): the
    # model carries a copy of it as code/, for the endpoint.
    sys.exit(main_ranker(code_dir=Path(__file__).resolve().parent))
