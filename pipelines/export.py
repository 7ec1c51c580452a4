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
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.topics import UNDECODABLE, output_records
from transforms.core.errors import RecordError
from transforms.core.export.training import (
    Exporter,
    ExportFilter,
    Format,
    OutputRecord,
    reason_to_skip,
)
from transforms.core.feedback.events import BadEvent, Ref
from transforms.core.feedback.verify import Verification
from transforms.core.formats.codec import input_decoder
from transforms.core.job import Job
from transforms.kafka.reader import read_at
from transforms.registry.client import registry_lookup

__all__ = ["ExportFile", "ExportResult", "export"]


@dataclass(frozen=True)
class ExportFile:
    path: str
    lines: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    """What an export read and wrote; the manifest file holds it too, with the filters."""

    outputs_read: int
    exported: int
    counts: dict[str, int]  # by reason (and train/validation lines)
    prompt_hash: str
    files: tuple[ExportFile, ...]
    manifest_path: Path
    feedback: dict[str, Any] | None = None  # the feedback join's counts, when there is one


def _inputs(job: Job, wanted: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], Any]:
    """Decoded input fields at the wanted coordinates, one read per partition."""
    decoder = input_decoder(job, registry_lookup)
    fields: dict[tuple[str, int, int], Any] = {}
    for record in read_at(job.task.kafka, wanted):
        key = (record.topic, record.partition, record.offset)
        try:
            fields[key] = decoder.decode(record).fields
        except RecordError:
            fields[key] = None
    return fields


def _file_entry(path: Path, lines: int) -> ExportFile:
    return ExportFile(str(path), lines, hashlib.sha256(path.read_bytes()).hexdigest())


class _Verdicts:
    """What the feedback topic says about the selected outputs (read with the same code as
    ``llm-enrich feedback``): only events naming a selected output are kept."""

    def __init__(self, job: Job, selected: list[OutputRecord]) -> None:
        from pipelines.feedback import checked_events, drain_records, spec_of

        spec = spec_of(job)
        self.topic, self.key = spec.topic, spec.key
        self.by_ref: dict[Ref, Verification] = {}
        for record in selected:
            for ref in self._refs(record):
                self.by_ref.setdefault(ref, Verification())
        self.read = self.matched = 0
        self.bad: Counter[str] = Counter()
        for event in checked_events(job, drain_records(job)):
            if event is None:
                continue
            self.read += 1
            if isinstance(event, BadEvent):
                self.bad[event.reason] += 1
            elif event.ref in self.by_ref:
                self.by_ref[event.ref].add(event)
                self.matched += 1
        self.exported_by: Counter[str] = Counter()
        self.fields_corrected: Counter[str] = Counter()

    def _refs(self, record: OutputRecord) -> list[Ref]:
        refs: list[Ref] = [s] if (s := record.source()) is not None else []
        if self.key is not None and self.key in record.value:
            refs.append(str(record.value[self.key]))
        return refs

    def of(self, record: OutputRecord) -> Verification:
        merged = Verification()
        for ref in self._refs(record):
            found = self.by_ref.get(ref)
            if found is not None and found.events:
                merged.events += found.events
                if found.verdict is not None and found.verdict_ms >= merged.verdict_ms:
                    merged.verdict, merged.verdict_ms = found.verdict, found.verdict_ms
                merged.corrections.update(found.corrections)
        return merged

    def keep(self, record: OutputRecord, counts: Counter[str], *, verified_only: bool) -> bool:
        status = self.of(record).status
        if status == "rejected":
            counts["feedback_rejected"] += 1
            return False
        if verified_only and status not in ("accepted", "corrected"):
            counts["unverified"] += 1
            return False
        return True

    def rank(self, record: OutputRecord) -> int:
        return {"corrected": 0, "accepted": 1}.get(self.of(record).status, 2)

    def value(self, record: OutputRecord) -> Mapping[str, Any]:
        return self.of(record).apply(record.value)

    def exported(self, record: OutputRecord) -> None:
        verification = self.of(record)
        self.exported_by[verification.status] += 1
        self.fields_corrected.update(list(verification.corrections))

    def describe(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "events_read": self.read,
            "events_matched": self.matched,
            "bad_by_reason": dict(sorted(self.bad.items())),
            "exported_corrected": self.exported_by["corrected"],
            "exported_accepted": self.exported_by["accepted"],
            "exported_unjudged": self.exported_by["unjudged"],
            "fields_corrected": dict(sorted(self.fields_corrected.items())),
        }


def export(
    job: Job,
    *,
    format: Format,
    out: Path,
    validation_out: Path | None,
    validation_share: float,
    selection: ExportFilter,
    verified_only: bool = False,
) -> ExportResult:
    exporter = Exporter(job, format, validation_share if validation_out else 0.0)
    counts = exporter.counts
    selected: list[OutputRecord] = []
    outputs = list(output_records(job))
    for record in outputs:
        if UNDECODABLE in record.headers:
            counts["undecodable"] += 1
            continue
        reason = reason_to_skip(record, selection, job.prompt.hash)
        if reason:
            counts[reason] += 1
        else:
            selected.append(record)
    verdicts = _Verdicts(job, selected) if job.task.feedback is not None else None
    if verdicts is not None:
        selected = [r for r in selected if verdicts.keep(r, counts, verified_only=verified_only)]
    inputs = _inputs(job, {s for r in selected if (s := r.source()) is not None})
    train_lines: list[str] = []
    validation_lines: list[str] = []
    # corrected, then accepted outputs first: a duplicate of a record keeps the verified one
    rank = verdicts.rank if verdicts is not None else (lambda r: 0)
    for record in sorted(
        selected, key=lambda r: (rank(r), r.timestamp_ms or 0, r.partition, r.offset)
    ):
        source = record.source()
        fields = inputs.get(source) if source else None
        if source not in inputs:
            counts["input_missing"] += 1
            continue
        if fields is None:
            counts["input_undecodable"] += 1
            continue
        value = verdicts.value(record) if verdicts is not None else record.value
        made = exporter.line(fields, value)
        if made is not None:
            (validation_lines if made[1] else train_lines).append(made[0])
            if verdicts is not None:
                verdicts.exported(record)
    files = []
    for path, lines in ((out, train_lines), (validation_out, validation_lines)):
        if path is None:
            continue
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        files.append(_file_entry(path, len(lines)))
    manifest: dict[str, Any] = {
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
        "files": [asdict(f) for f in files],
    }
    if verdicts is not None:
        manifest["filters"]["verified_only"] = verified_only
        manifest["feedback"] = verdicts.describe()
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return ExportResult(
        outputs_read=len(outputs),
        exported=manifest["exported"],
        counts=manifest["counts"],
        prompt_hash=job.prompt.hash,
        files=tuple(files),
        manifest_path=manifest_path,
        feedback=manifest.get("feedback"),
    )
