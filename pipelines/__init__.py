"""Entry points: the ``llm-enrich`` CLI, option parsing and pipeline builders (wiring only)."""
