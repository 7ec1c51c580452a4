"""``llm-enrich eval``'s files: the golden set in, the baseline in, JSON and HTML out."""

from __future__ import annotations

import json
from pathlib import Path

from transforms.core.eval.baseline import compare
from transforms.core.eval.golden import GoldenCase, parse_golden
from transforms.core.eval.report import eval_report_html
from transforms.core.eval.result import EvalResult, read_eval_result
from transforms.core.job import Job

__all__ = ["load_cases", "load_eval_result", "write_outputs"]


def load_cases(job: Job, path: str, limit: int | None) -> list[GoldenCase]:
    """Raises ValueError (``GoldenError``) with one line naming the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the golden set ({exc.strerror})") from None
    shape = job.shape
    return parse_golden(
        text.splitlines(), shape.generated_fields, shape.copied_fields, where=path, limit=limit
    )


def load_eval_result(path: str, what: str) -> EvalResult:
    """An ``llm-enrich eval --json`` result: a baseline, or feedback's --eval-json (``what``
    names it in errors: ValueError)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} is not JSON ({exc.msg})") from None
    try:
        return read_eval_result(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def write_outputs(
    result: EvalResult,
    baseline: EvalResult | None,
    json_path: str | None,
    report_path: str | None,
) -> None:
    """Adds the comparison with ``baseline`` to ``result``, then writes the files asked for."""
    if baseline is not None:
        result.baseline = compare(result, baseline)
    if json_path:
        Path(json_path).write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    if report_path:
        Path(report_path).write_text(eval_report_html(result), encoding="utf-8")
