"""Benchmark: many records in one call (``prompt.records_per_call``) on the example job's
golden set: prompt tokens per record and eval scores at each K.

    .venv/bin/python -m tests.bench.packing --sizes 1 4 8 16 --limit 32
    .venv/bin/python -m tests.bench.packing --sizes 1 4 8 16 --limit 32 \\
        --url http://127.0.0.1:18097/v1          # a llama-server of one's own
    .venv/bin/python -m tests.bench.packing --scripted-only

For each K it runs ``llm-enrich eval --records-per-call K --json`` (the CLI, as a user
runs it) on the first ``--limit`` golden records of ``pipelines/examples/reviews``,
against two providers, one after the other:

- ``local``: the example task's local model at ``--url`` (llama-server, SmolLM2-135M,
  its ``prefix_cache: exact``), ``timeout_s`` raised to ``--timeout`` for the long packs;
- ``scripted``: ``tests/fault_server.py`` answering every record with its golden answer,
  packs in reversed order and without every record whose text hashes to 0 mod 8 (those
  are asked again alone); its usage is its characters / 4, so its token figures are about
  the prompt's size, and its scores check that no answer lands on the wrong record.

It prints, per provider and K: prompt and completion tokens per record (the ratio to K=1
of the same run beside them), calls per record, the overall and per-field scores, the
share of valid answers, of records asked alone and of re-asked ones, and the wall time
per record. ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.fault_server import Action, FaultServer, Reply

TASK = REPO / "pipelines/examples/reviews/task.yaml"
GOLDEN = REPO / "pipelines/examples/reviews/golden.jsonl"
_BLOCK = re.compile(r'<record-(\w+) i="(\d+)">\n(.*?)\n</record-\1>', re.DOTALL)
_TEXT = re.compile(r"Review: <data-\w+>(.*?)</data-\w+>", re.DOTALL)


def task_variant(folder: Path, base_url: str, timeout_s: float, exact: bool) -> Path:
    """The example task with its first provider at ``base_url`` (schema paths absolute)."""
    raw: dict[str, Any] = yaml.safe_load(TASK.read_text())
    for section in ("input", "output"):
        raw[section]["schema"] = str((TASK.parent / raw[section]["schema"]).resolve())
    provider = {**raw["providers"][0], "base_url": base_url, "timeout_s": timeout_s}
    if not exact:
        provider.pop("prefix_cache", None)
    raw["providers"] = [provider]
    raw["cache"] = {"backend": "off"}
    path = folder / f"task-{'exact' if exact else 'plain'}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class GoldenScript:
    """Answers each record with its golden answer; packs reversed, some answers left out."""

    def __init__(self) -> None:
        cases = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
        self.expected = {c["input"]["text"]: c["expected"] for c in cases}

    def answer(self, text: str) -> dict[str, Any]:
        return {k: v for k, v in self.expected[text].items() if k not in ("review_id", "product")}

    @staticmethod
    def left_out(text: str) -> bool:
        return hashlib.sha256(text.encode()).digest()[0] % 8 == 0

    def __call__(self, index: int, body: dict[str, Any]) -> Action:
        messages = body["messages"]
        schema = body["response_format"]["json_schema"]["schema"]
        if "answers" in schema["properties"]:
            records = [
                (int(n), _TEXT.findall(b)[0]) for _, n, b in _BLOCK.findall(messages[-1]["content"])
            ]
            answers = [
                {"i": n, **self.answer(text)}
                for n, text in reversed(records)
                if not self.left_out(text)
            ]
            return Reply.ok({"answers": answers})
        shown = [m["content"] for m in messages if "Review: <data-" in m["content"]]
        return Reply.ok(self.answer(_TEXT.findall(shown[-1])[0]))


def run_eval(task: Path, size: int, limit: int, out: Path) -> tuple[dict[str, Any], float]:
    command = [
        sys.executable, "-m", "pipelines.cli", "eval", "--task", str(task),
        "--golden", str(GOLDEN), "--limit", str(limit), "--records-per-call", str(size),
        "--json", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    elapsed = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"eval at K={size} failed ({done.returncode}): {done.stderr.strip()}")
    result = json.loads(out.read_text())
    [card] = result["providers"].values()
    return card, elapsed


def row(size: int, card: dict[str, Any], elapsed: float, base: dict[str, Any]) -> dict[str, Any]:
    per = card["per_record"]
    records = card["records"]
    return {
        "K": size,
        "prompt_tokens": per["prompt_tokens"],
        "prompt_ratio": per["prompt_tokens"] / base["per_record"]["prompt_tokens"],
        "completion_tokens": per["completion_tokens"],
        "calls": per.get("calls", 0.0),
        "overall": card["overall"],
        **{name: field["score"] for name, field in card["fields"].items()},
        "valid": card["valid_share"],
        "alone": card.get("alone_share", 0.0),
        "reasked": card["reask_share"],
        "s_per_record": elapsed / records,
    }


def table(name: str, rows: list[dict[str, Any]]) -> list[str]:
    fields = [k for k in rows[0] if k in ("sentiment", "topics", "summary", "rating")]
    head = (
        f"{'K':>3} {'prompt/rec':>10} {'x K=1':>6} {'compl/rec':>9} {'calls/rec':>9} "
        f"{'overall':>7} "
        + " ".join(f"{f:>9}" for f in fields)
        + f" {'valid':>6} {'alone':>6} {'re-ask':>6} {'s/rec':>6}"
    )
    lines = [f"-- {name}", head]
    for r in rows:
        lines.append(
            f"{r['K']:>3} {r['prompt_tokens']:>10.1f} {r['prompt_ratio']:>6.2f} "
            f"{r['completion_tokens']:>9.1f} {r['calls']:>9.2f} {r['overall']:>7.3f} "
            + " ".join(f"{r[f]:>9.3f}" for f in fields)
            + f" {r['valid']:>6.1%} {r['alone']:>6.1%} {r['reasked']:>6.1%}"
            f" {r['s_per_record']:>6.1f}"
        )
    return lines


def measure(name: str, task: Path, sizes: list[int], limit: int, folder: Path) -> list[str]:
    cards = []
    for size in sizes:
        card, elapsed = run_eval(task, size, limit, folder / f"{name}-{size}.json")
        cards.append((size, card, elapsed))
        print(f"{name} K={size}: overall {card['overall']:.3f} in {elapsed:.0f} s", flush=True)
    base = cards[0][1]
    return table(name, [row(size, card, elapsed, base) for size, card, elapsed in cards])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--limit", type=int, default=32, help="golden records (of 52)")
    parser.add_argument("--url", default="http://127.0.0.1:18080/v1", help="llama-server")
    parser.add_argument("--timeout", type=float, default=900.0, help="the local call's timeout")
    parser.add_argument("--scripted-only", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with FaultServer(script=GoldenScript()) as server:
            scripted = task_variant(folder, server.base_url, 60.0, exact=False)
            lines += measure("scripted", scripted, args.sizes, args.limit, folder)
        if not args.scripted_only:
            local = task_variant(folder, args.url, args.timeout, exact=True)
            lines += measure("local", local, args.sizes, args.limit, folder)
        if args.json:
            figures = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
            args.json.write_text(json.dumps(figures, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
