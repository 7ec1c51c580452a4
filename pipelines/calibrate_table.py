"""``llm-enrich eval --calibrate``'s terminal output: the split, the target, the chosen
thresholds, and the cost/quality table of each part."""

from __future__ import annotations

from typing import Any

__all__ = ["calibration_lines"]

COLUMNS = ("route", "answered by step", "overall", "cost/record", "vs last", "latency/record")


def _thresholds(steps: dict[str, Any]) -> str:
    said = []
    for name, entry in steps.items():
        if entry.get("last"):
            said.append(f"{name}: the last step, any valid answer")
        elif entry.get("skip"):
            said.append(f"{name}: skipped (never worth asking)")
        else:
            said.append(f"{name} >= {entry['min_confidence']:.4f}")
    return "; ".join(said)


def _row(label: str, figures: dict[str, Any]) -> str:
    answered = ", ".join(f"{n} {s:.0%}" for n, s in figures["shares"].items())
    if figures["failed"]:
        answered += f", none {figures['failed'] / figures['records']:.0%}"
    ratio = figures["cost_vs_strongest"]
    cost = f"${figures['cost_per_record_usd']:.8f}"
    versus = "-" if ratio is None else f"{ratio:.2f}x"
    return (
        f"  {label:<18}{answered:<30}{figures['overall']:>8.3f}  {cost:<13}{versus:>8}"
        f"  {figures['latency_per_record_ms'] / 1000:>8.2f} s"
    )


def _part(title: str, part: dict[str, Any]) -> list[str]:
    if not part.get("rows"):
        return [f"-- {title}: no records"]
    header = (
        f"  {COLUMNS[0]:<18}{COLUMNS[1]:<30}{COLUMNS[2]:>8}  {COLUMNS[3]:<13}"
        f"{COLUMNS[4]:>8}  {COLUMNS[5]}"
    )
    lines = [f"-- {title} ({part['records']} records)", header]
    return lines + [_row(label, figures) for label, figures in part["rows"].items()]


def calibration_lines(result: dict[str, Any]) -> list[str]:
    split, target = result["split"], result["target"]
    last = list(result["steps"])[-1]
    return [
        f"== {result['task']}: cascade calibration on {result['golden']['records']} golden "
        f"records (prompt {result['prompt_hash']})",
        f"  split: {split['calibration']} to calibrate, {split['held_back']} held back "
        f"(holdout {split['holdout']}; by SHA-256 of each record's input)",
        f"  target: overall >= {target['minimum']:.3f} ({last} alone scores "
        f"{target['strongest_overall']:.3f} on the calibration part; within {target['within']})",
        f"  thresholds: {_thresholds(result['steps'])}",
        *_part("calibration part", result["calibration_part"]),
        *_part("held-back part", result["held_back_part"]),
    ]
