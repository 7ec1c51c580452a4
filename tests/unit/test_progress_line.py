"""The progress line: its text, and the plain periodic lines when not on a terminal."""

from __future__ import annotations

import io
import time

from pipelines.progress import ProgressLine, Snapshot, progress_text


def test_drain_line_has_share_rate_and_eta() -> None:
    counts = {"read": 60, "written.output": 40, "written.dead_letter": 10, "planned.read": 100}
    text = progress_text(Snapshot.of(counts), rate=5.0, elapsed_s=12)
    assert text.startswith(" 50%")
    assert "read 60" in text and "enriched 40" in text and "dead-lettered 10" in text
    assert "in flight 10" in text and "5.0 rec/s" in text and "ETA 0m10s" in text


def test_follow_line_has_no_eta() -> None:
    text = progress_text(Snapshot.of({"read": 3}), rate=0.0, elapsed_s=3725)
    assert "ETA" not in text and "%" not in text and "elapsed 1h02m" in text


def test_plain_lines_every_interval_off_a_terminal() -> None:
    counts = {"read": 0}
    stream = io.StringIO()
    with ProgressLine(lambda: counts, live=False, every_s=0.1, stream=stream):
        time.sleep(0.35)
        counts["read"] = 7
        time.sleep(0.2)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("llm-enrich: progress: ") for line in lines)
    assert "read 7" in lines[-1] and "read 0" in lines[0]


def test_the_first_plain_line_already_has_the_rate_since_the_start() -> None:
    # a fast drain: 400 records settled before the first line is due
    counts = {"read": 450, "written.output": 400, "planned.read": 1000}
    stream = io.StringIO()
    with ProgressLine(lambda: counts, live=False, every_s=0.3, stream=stream):
        time.sleep(0.45)
    first = stream.getvalue().splitlines()[0]
    rate = float(first.split(" rec/s")[0].rsplit(" ", 1)[1])
    assert 400 / 0.45 <= rate <= 400 / 0.25, first  # ~1300 rec/s, not 0.0
    assert "ETA" in first
