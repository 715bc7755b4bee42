"""IAM checked the way AWS evaluates it.

- :mod:`.recorder` records every AWS call the Lambda code makes during the moto-backed tests of
  ``tests/lambdas`` (a botocore hook on every client), with the handler module that made it;
- :mod:`.templates` resolves the synthesized CloudFormation templates (intrinsics, a fixed fake
  account) into each component's effective role policies and environment;
- :mod:`.actions` turns a recorded call into the IAM requests AWS authorizes for it;
- :mod:`.declared` lists the requests AWS services make on a component's behalf (Step Functions,
  training jobs, the endpoint, CloudFormation, Application Auto Scaling, KMS);
- :mod:`.evaluator` decides each request against the policies: moto's policy statement matcher
  with AWS's evaluation order and real condition operators.
"""
