"""The small AWS steps of the training pipeline (Step Functions -> Lambda):

- :mod:`.gate`: the evaluation gate, compares the new model's offline metrics with the serving one's;
- :mod:`.load`: loads the batch output (users, items, recommendations) into DynamoDB;
- :mod:`.promote`: moves the serving stack to the new model and records what serves.

Each module is a thin handler over pure functions that take their AWS clients as arguments.
"""
