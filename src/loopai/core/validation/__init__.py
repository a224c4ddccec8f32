"""Validation of sampled executions: comparison, accuracy, oracles and the queue."""
