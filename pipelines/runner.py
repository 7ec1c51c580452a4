"""Beam options for a run: Prism (built by deploy/setup.sh) unless the user picks a runner."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

__all__ = ["PRISM_VERSION", "pipeline_options", "prism_location"]

PRISM_VERSION = "2.77.0"


def prism_location() -> Path:
    """Where deploy/setup.sh caches Prism (``go install``); ``LLM_ENRICH_PRISM`` overrides."""
    override = os.environ.get("LLM_ENRICH_PRISM")
    if override:
        return Path(override)
    cache = Path(os.environ.get("LLM_ENRICH_CACHE", Path.home() / ".cache" / "llm-enrich"))
    return cache / f"prism-{PRISM_VERSION}" / "prism"


def pipeline_options(beam_args: Sequence[str], *, streaming: bool) -> PipelineOptions:
    """The user's Beam arguments, with Prism as the default runner. A streaming pipeline
    (the enrich stage, drain or follow) commits as it goes; replay runs in batch."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        location = prism_location()
        if not location.is_file():
            raise FileNotFoundError(
                f"Prism is not installed at {location}: run deploy/setup.sh "
                "(or pass --runner=... after --)"
            )
        args += ["--runner=PrismRunner", f"--prism_location={location}"]
    if streaming and "--streaming" not in args:
        args.append("--streaming")
    return PipelineOptions(args)
