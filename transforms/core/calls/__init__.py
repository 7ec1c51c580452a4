"""Calling providers: the per-record enrich loop, failure policy, admission limits."""
