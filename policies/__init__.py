"""The access-policy engine: model, evaluation, SQL compilation, explain. No web imports."""
