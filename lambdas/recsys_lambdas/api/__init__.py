"""Lambda handlers, one per route group (see ``recsys_lambdas.routes``)."""
