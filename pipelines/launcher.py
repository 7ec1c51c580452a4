"""Dataflow entry point, after Google's python flex-template convention.

The template launcher runs this module (``FLEX_TEMPLATE_PYTHON_PY_FILE``) with the
template's parameters as ``--name=value`` arguments and the runner's own options
(``--runner=DataflowRunner --project ... --region ... --temp_location ...``); it builds
the same pipeline as ``llm-enrich run`` and submits it without waiting:

    python -m pipelines.launcher --task=/template/task.yaml --follow=true \\
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp

The task file and its schemas are read here, on the launcher, and travel inside the
pipeline (the workers need no files); secrets are resolved on the workers
(``transforms.core.config.secrets``), never put in the graph.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from pipelines.enrich_pipeline import build_pipeline
from transforms.core.config.task import load_task
from transforms.core.job import compile_job

__all__ = ["build_from_template", "main"]


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value.lower() in ("true", "1", "yes")


def build_from_template(argv: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The pipeline for the template parameters in ``argv`` (the rest goes to Beam)."""
    parser = argparse.ArgumentParser(prog="pipelines.launcher", description=__doc__)
    parser.add_argument("--task", required=True, help="the task file, inside the image")
    parser.add_argument("--follow", type=_flag, default=False, help="true: unbounded")
    known, beam_args = parser.parse_known_args(list(argv))
    job = compile_job(load_task(known.task))  # a bad task fails here, before submission
    return build_pipeline(job.task, beam_args, follow=known.follow)


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    logging.getLogger().setLevel(logging.INFO)
    pipeline, _ = build_from_template(sys.argv[1:] if argv is None else argv)
    pipeline.run()  # submit; a flex-template launch does not wait for the job


if __name__ == "__main__":
    main()
