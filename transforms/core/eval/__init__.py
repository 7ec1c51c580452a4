"""Scoring LLM answers against a golden set (``llm-enrich eval``): pure, no I/O."""
