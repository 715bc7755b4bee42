"""The CDK app's constructs and stacks: config (cdk.json -> typed config), storage, serving,
API, training pipeline and monitoring constructs; stacks.py only wires them."""
