"""The shared coordination backend (Redis): one set of rate limits, circuit breakers and a
budget per job, for every worker (``transforms.core.coordination`` holds the interface)."""
