"""The local stack: the whole system on one machine, one command (``recsys local up``).

Parts, each started by :mod:`recsys_tools.local.stack` and stopped in reverse order:

1. an embedded AWS (moto's server) with the tables, bucket and delivery stream of the CDK app
   (:mod:`recsys_tools.local.aws`);
2. the two SageMaker training jobs, run from the same entry points with the ``SM_*`` variables
   and an ``/opt/ml``-like layout under a local work dir (:mod:`recsys_tools.local.training`);
3. the batch outputs loaded into DynamoDB by the pipeline's own loader;
4. a SageMaker-compatible endpoint serving ``inference.py`` from several worker processes behind
   one port (:mod:`recsys_tools.local.endpoint`);
5. an API Gateway emulator calling the Lambda handlers with REST v1 proxy events
   (:mod:`recsys_tools.local.gateway`).

Nothing here is imported by the ML core or shipped to SageMaker; AWS libraries (boto3, moto) are
imported lazily inside the functions that need them.
"""
