"""The response cache's backends (edges: a local SQLite file, a Redis server), built on the
worker. What is cached and how keys are made is in ``transforms.core.cache``."""
