"""The run summary's shadow lines, from the ``shadow[<name>].*`` and ``shadow.*`` counters."""

from __future__ import annotations

from collections.abc import Mapping

from transforms.core.calls.shadow_compare import bucket_percentile
from transforms.core.counters import (
    SHADOW_WRITE_DROPPED,
    SHADOW_WRITE_FAILED,
    SHADOW_WRITTEN,
    grouped,
    shadow_parts,
)

__all__ = ["by_shadow", "shadow_lines"]


def by_shadow(counters: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{provider: {what: count}}`` from counters named ``shadow[<provider>].<what>``."""
    found: dict[str, dict[str, int]] = {}
    for key, value in sorted(counters.items()):
        parts = shadow_parts(key)
        if parts is not None:
            found.setdefault(parts[0], {})[parts[1]] = value
    return found


def _ms(bound: str | None) -> str:
    return "-" if bound is None else ("> 60 s" if bound == "inf" else f"<= {bound} ms")


def shadow_lines(counters: Mapping[str, int]) -> list[str]:
    lines = []
    for name, c in by_shadow(counters).items():
        compared = c.get("compared", 0)
        valid = c.get("outcome.valid", 0)
        both = c.get("both_valid", 0)
        fields = sorted({k.split(".", 1)[1] for k in c if k.startswith(("agree.", "disagree."))})
        agreement = ", ".join(f"{f}={c.get(f'agree.{f}', 0) / both:.2f}" for f in fields)
        latency = grouped(c, "latency_le.")
        primary = grouped(c, "primary_latency_le.")
        share = f"{valid / compared:.2f}" if compared else "-"
        lines += [
            f"shadow {name:<12} sampled {c.get('sampled', 0)}, compared {compared} (busy "
            f"{c.get('busy', 0)}, unfinished {c.get('unfinished', 0)}); valid {valid} "
            f"({share}), invalid {c.get('outcome.invalid', 0)}, failed "
            f"{c.get('outcome.failed', 0)}, repaired {c.get('repaired', 0)}, re-asks "
            f"{c.get('reasks', 0)}",
            f"  agreement         {agreement or 'n/a'}  (of {both} where both answers are valid)",
            f"  latency           p50 {_ms(bucket_percentile(latency, 0.5))}, p95 "
            f"{_ms(bucket_percentile(latency, 0.95))}  (primary p50 "
            f"{_ms(bucket_percentile(primary, 0.5))}, p95 {_ms(bucket_percentile(primary, 0.95))})",
            f"  cost              ${c.get('cost_micro_usd', 0) / 1e6:.6f}  (primary on the same "
            f"records ${c.get('primary_cost_micro_usd', 0) / 1e6:.6f}); not in the budget",
        ]
        if c.get("unavailable"):
            lines.append("  unavailable       its API key variable is not set: not shadowed")
    written, failed = counters.get(SHADOW_WRITTEN, 0), counters.get(SHADOW_WRITE_FAILED, 0)
    dropped = counters.get(SHADOW_WRITE_DROPPED, 0)
    if lines or written or failed or dropped:
        lines.append(f"shadow topic        written {written}, failed {failed}, dropped {dropped}")
    return lines
