"""What the workers of a job share, or not: rate limits, circuit breakers and the budget.

``interface`` holds the protocols the call path uses; ``in_process`` the default (each worker
process its own); the Redis backend, one per job, is an edge (``transforms.coordination``).
"""
