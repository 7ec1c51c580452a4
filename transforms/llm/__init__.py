"""The LLM edge: OpenAI-compatible chat completions over HTTP (aiohttp), built on the worker."""
