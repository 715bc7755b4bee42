"""Developer and deploy-side tools around the ``recsys`` ML package.

Nothing here is shipped to SageMaker (the container bundle is built from ``sagemaker/`` only) and
nothing in ``recsys`` imports it: ``recsys_tools.local`` is the local stack (embedded AWS, endpoint,
API Gateway emulator, training runner) and ``recsys_tools.cli`` is the ``recsys`` console script,
which adds the ``local`` and ``deploy`` command groups to the ML commands of ``recsys.cli``.
"""
