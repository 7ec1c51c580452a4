"""``llm-enrich export``: training examples (or a golden set) from the output topic.

The output topic holds only the output fields, so each example's input is read back from
the input topic at the output's ``llm_enrich.source.*`` coordinates: outputs are selected
first, then each input partition is read once, from the lowest to the highest offset
needed (inputs gone by retention are counted ``input_missing``). Outputs are held in
memory meanwhile (what is selected, not the whole topic).

Files: ``--out`` (train), ``--validation-out`` (the held-out share, by a hash of the user
message: the same split on every export), and ``<out>.manifest.json``: counts by reason,
prompt hash, output schema identity, filters and the files with their line counts and
SHA-256. No secret is in any of them (only the task's prompt, records and answers).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transforms.core.config.job import Job
from transforms.core.errors import RecordError
from transforms.core.export.training import (
    Exporter,
    ExportFilter,
    Format,
    OutputRecord,
    reason_to_skip,
)
from transforms.core.formats import framing
from transforms.core.formats.codec import InputDecoder
from transforms.core.run.offsets import PartitionRange
from transforms.kafka.reader import read_range, snapshot_ranges
from transforms.registry.client import registry_lookup

__all__ = ["ExportResult", "export"]

UNDECODABLE = "llm_enrich.export.undecodable"  # marks an output this task cannot read


@dataclass
class ExportResult:
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_path: Path | None = None


def _outputs(job: Job) -> list[OutputRecord]:
    kafka, output = job.task.kafka, job.task.output
    by_id = registry_lookup(output.framing, output.registry_url)
    found = []
    for range_ in snapshot_ranges(kafka, kafka.output_topic, None):
        for record in read_range(kafka, range_):
            headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers}
            try:
                value, _ = framing.decode(
                    record.value or b"",
                    job.output_schema,
                    output.framing,
                    job.output_writers,
                    by_id,
                )
            except Exception:  # not ours, or a schema this task cannot read: counted
                headers, value = {UNDECODABLE: "1"}, {}
            found.append(
                OutputRecord(record.partition, record.offset, record.timestamp_ms, headers, value)
            )
    return found


def _inputs(job: Job, wanted: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], Any]:
    """Decoded input fields at the wanted coordinates, one read per partition."""
    spec = job.task.input
    decoder = InputDecoder(
        job.input_schema,
        spec.format,
        spec.framing,
        spec.max_bytes,
        job.input_writers,
        registry_lookup(spec.framing, spec.registry_url),
    )
    by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in wanted:
        by_partition[(topic, partition)].append(offset)
    fields: dict[tuple[str, int, int], Any] = {}
    for (topic, partition), offsets in sorted(by_partition.items()):
        range_ = PartitionRange(topic, partition, min(offsets), max(offsets) + 1)
        for record in read_range(job.task.kafka, range_, idle_timeout_s=10):
            key = (topic, partition, record.offset)
            if key in wanted:
                try:
                    fields[key] = decoder.decode(record).fields
                except RecordError:
                    fields[key] = None
    return fields


def _file_entry(path: Path, lines: int) -> dict[str, Any]:
    return {
        "path": str(path),
        "lines": lines,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def export(
    job: Job,
    *,
    format: Format,
    out: Path,
    validation_out: Path | None,
    validation_share: float,
    selection: ExportFilter,
) -> ExportResult:
    exporter = Exporter(job, format, validation_share if validation_out else 0.0)
    counts = exporter.counts
    selected: list[OutputRecord] = []
    outputs = _outputs(job)
    for record in outputs:
        if UNDECODABLE in record.headers:
            counts["undecodable"] += 1
            continue
        reason = reason_to_skip(record, selection, job.prompt.hash)
        if reason:
            counts[reason] += 1
        else:
            selected.append(record)
    inputs = _inputs(job, {s for r in selected if (s := r.source()) is not None})
    train_lines: list[str] = []
    validation_lines: list[str] = []
    for record in sorted(selected, key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset)):
        source = record.source()
        fields = inputs.get(source) if source else None
        if source not in inputs:
            counts["input_missing"] += 1
            continue
        if fields is None:
            counts["input_undecodable"] += 1
            continue
        made = exporter.line(fields, record.value)
        if made is not None:
            (validation_lines if made[1] else train_lines).append(made[0])
    files = []
    for path, lines in ((out, train_lines), (validation_out, validation_lines)):
        if path is None:
            continue
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        files.append(_file_entry(path, len(lines)))
    manifest = {
        "format": format,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": job.name,
        "prompt_hash": job.prompt.hash,
        "output_schema": job.output_schema.identity,
        "output_topic": job.task.kafka.output_topic,
        "outputs_read": len(outputs),
        "exported": len(train_lines) + len(validation_lines),
        "counts": dict(sorted(counts.items())),
        "filters": {**selection.describe(), "validation_share": validation_share},
        "files": files,
    }
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return ExportResult(manifest, manifest_path)
