"""The first failures of each stage are logged, one line each; the rest only counted."""

from __future__ import annotations

import logging

import pytest

from transforms.beam import failures


def test_the_first_few_failures_per_stage_are_logged_once_each(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures, "_seen", failures.Counter())
    with caplog.at_level(logging.DEBUG, logger="llm_enrich.failures"):
        for index in range(failures.FIRST + 3):
            failures.log_failure("decode", "DecodeError", f"bad bytes #{index}", ValueError("x"))
        failures.log_failure("validate", "OutputInvalid", "$.rating: must be <= 5")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings][:2] == [
        "decode failed: DecodeError: bad bytes #0",
        "decode failed: DecodeError: bad bytes #1",
    ]
    assert len(warnings) == failures.FIRST + 1  # five decode lines, one validate line
    assert "later ones are counted" in warnings[failures.FIRST - 1].getMessage()
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(tracebacks) == failures.FIRST and tracebacks[0].exc_info is not None


def test_a_defect_is_logged_every_time_at_error_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="llm_enrich.failures"):
        for _ in range(failures.FIRST + 2):
            failures.log_defect("a dead letter could not be encoded", TypeError("bad datum"))
    assert len(caplog.records) == failures.FIRST + 2
    assert caplog.records[0].getMessage().endswith("TypeError: bad datum")
