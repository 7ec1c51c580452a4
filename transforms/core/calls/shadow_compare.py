"""Shadow providers, the pure part: which records are shadowed, and how two answers compare.

    sampled(source, provider, share)   a hash of (provider, topic, partition, offset): the
                                       same records on every run, replay and restart
    side(result)                       one answer's facts: outcome, latency, tokens, cost
    comparison(...)                    the ``llm_enrich.ShadowComparison`` datum
    comparison_counts(name, datum)     what the run summary adds up (``shadow[<name>].*``)

Fields agree when their values are equal after a light normalisation (strings casefolded,
whitespace collapsed; floats to 6 decimals; recursively in arrays and maps). Finer scores
(F1 for sets, text similarity) are ``llm-enrich eval``'s business.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from transforms.core.counters import shadow
from transforms.core.records import Enriched, Failure, KafkaRecord

__all__ = [
    "LATENCY_BOUNDS_MS",
    "bucket_percentile",
    "comparison",
    "comparison_counts",
    "field_agreement",
    "sampled",
    "side",
]

# Latency histogram buckets (ms) for the summary's p50/p95 (Beam counters cannot hold a
# distribution's quantiles; a bucket bound is what the summary reports).
LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
ERROR_CHARS = 500


def sampled(source: KafkaRecord, provider: str, share: float) -> bool:
    """Whether this record goes to this shadow provider too: a uniform draw in [0, 1) from
    a SHA-256 of the provider's name and the record's coordinates, below ``share``."""
    if share >= 1:
        return True
    ident = f"{provider}\0{source.topic}\0{source.partition}\0{source.offset}".encode()
    draw = int.from_bytes(hashlib.sha256(ident).digest()[:8], "big") / 2**64
    return draw < share


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 6)
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def field_agreement(
    primary: Mapping[str, Any], shadow: Mapping[str, Any], fields: Sequence[str]
) -> dict[str, bool]:
    return {name: _normal(primary.get(name)) == _normal(shadow.get(name)) for name in fields}


def _outcome(result: Enriched | Failure | None) -> str:
    if isinstance(result, Enriched):
        return "valid"
    if result is not None and result.stage in ("validate", "guard"):
        return "invalid"  # answered, but no answer passed
    return "failed"


def side(
    result: Enriched | Failure | None, generated: Sequence[str], error: str | None = None
) -> dict[str, Any]:
    """One side of a comparison; ``result`` None: no result at all (``error`` says why)."""
    attempts = result.attempts if result is not None else ()
    answered = [a for a in attempts if a.error is None]
    last = attempts[-1] if attempts else None
    datum: dict[str, Any] = {
        "provider": last.provider if last else None,
        "model": last.model if last else None,
        "outcome": _outcome(result),
        "stage": None,
        "error_class": None,
        "error_message": error[:ERROR_CHARS] if error else None,
        "latency_ms": round(sum(a.latency_ms for a in attempts), 1),
        "calls": len(attempts),
        "reasks": sum(a.kind == "reask" for a in answered),
        "prompt_tokens": sum(a.prompt_tokens for a in attempts),
        "completion_tokens": sum(a.completion_tokens for a in attempts),
        "cost_usd": round(sum(a.cost_usd for a in attempts), 8),
        "repairs": [],
        "cache": None,
        "answer_json": None,
    }
    if isinstance(result, Enriched):
        answer = {k: result.output.get(k) for k in generated}
        datum.update(
            provider=result.provider,
            model=result.model,
            repairs=list(result.repairs),
            cache=result.cache,
            answer_json=json.dumps(answer, ensure_ascii=False, default=str, sort_keys=True),
        )
    elif isinstance(result, Failure):
        datum.update(
            stage=result.stage,
            error_class=result.error_class,
            error_message=result.message[:ERROR_CHARS],  # redacted by the provider client
        )
    return datum


def comparison(
    *,
    source: KafkaRecord,
    job_name: str,
    prompt_hash: str,
    output_schema: str,
    generated: Sequence[str],
    primary: Enriched | Failure,
    shadow: Enriched | Failure | None,
    shadow_error: str | None,
    compared_at_ms: int,
) -> dict[str, Any]:
    """The ``llm_enrich.ShadowComparison`` datum; fields compared only when both answers
    are valid."""
    agree: dict[str, bool] = {}
    if isinstance(primary, Enriched) and isinstance(shadow, Enriched):
        agree = field_agreement(primary.output, shadow.output, generated)
    return {
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": source.timestamp_ms,
        },
        "job_name": job_name,
        "prompt_hash": prompt_hash,
        "output_schema": output_schema,
        "compared_at": compared_at_ms,
        "primary": side(primary, generated),
        "shadow": side(shadow, generated, shadow_error),
        "fields": [{"name": k, "agree": v} for k, v in agree.items()],
        "agreement": round(sum(agree.values()) / len(agree), 4) if agree else None,
    }


def _bucket(latency_ms: float) -> str:
    for bound in LATENCY_BOUNDS_MS:
        if latency_ms <= bound:
            return str(bound)
    return "inf"


def comparison_counts(name: str, datum: Mapping[str, Any]) -> dict[str, int]:
    """Counters for one comparison, named ``shadow[<name>].<what>``."""
    mine, theirs = datum["shadow"], datum["primary"]
    counts = {
        "compared": 1,
        f"outcome.{mine['outcome']}": 1,
        "primary_valid": int(theirs["outcome"] == "valid"),
        "repaired": int(bool(mine["repairs"])),
        "reasks": mine["reasks"],
        "prompt_tokens": mine["prompt_tokens"],
        "completion_tokens": mine["completion_tokens"],
        "cost_micro_usd": round(mine["cost_usd"] * 1_000_000),
        "primary_cost_micro_usd": round(theirs["cost_usd"] * 1_000_000),
        f"latency_le.{_bucket(mine['latency_ms'])}": int(mine["outcome"] != "failed"),
        f"primary_latency_le.{_bucket(theirs['latency_ms'])}": int(theirs["calls"] > 0),
    }
    if datum["fields"]:
        counts["both_valid"] = 1
    for field in datum["fields"]:
        counts[f"{'agree' if field['agree'] else 'disagree'}.{field['name']}"] = 1
    return {shadow(name, k): v for k, v in counts.items() if v or k == "compared"}


def bucket_percentile(buckets: Mapping[str, int], q: float) -> str | None:
    """The bucket bound below which a share ``q`` of the latencies fall (``"inf"``: over the
    last bound), or None with no latency counted."""
    total = sum(buckets.values())
    if not total:
        return None
    order = [str(b) for b in LATENCY_BOUNDS_MS] + ["inf"]
    seen = 0
    for bound in order:
        seen += buckets.get(bound, 0)
        if seen >= q * total:
            return bound
    return "inf"
