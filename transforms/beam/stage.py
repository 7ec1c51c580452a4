"""The enrichment stage as one composite: drain, decode, enrich, encode, write, commit."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from transforms.beam.commit import CommitAfterWrites
from transforms.beam.enrich import (
    DEAD,
    DecodeRecords,
    EncodeDeadLetters,
    EncodeOutputs,
    EnrichBatches,
)
from transforms.beam.read import DrainTopic
from transforms.beam.write import FAILED, WriteEnvelopes
from transforms.core.task import TaskSpec

WRITE_BATCH = 500
LLM_BATCH_WINDOWS = 4


class EnrichStage(beam.PTransform[Any, Any]):
    """Applied to the pipeline root. Returns every intermediate PCollection by name, so
    tests can assert on them: records, enriched, dead, settled, commits."""

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self._task = task

    def expand(self, pbegin: Any) -> dict[str, Any]:
        task, kafka = self._task, self._task.kafka
        # A batch holds several windows of in-flight calls: the enricher's semaphore keeps
        # max_in_flight calls busy as a sliding window, so one slow call does not hold the
        # next max_in_flight records back (as a batch of exactly max_in_flight would).
        llm_batch = task.policy.max_in_flight * LLM_BATCH_WINDOWS
        drained = pbegin | "Drain" >> DrainTopic(kafka, kafka.input_topic, task.consumer_group)
        decoded = drained["records"] | "Decode" >> beam.ParDo(DecodeRecords(task)).with_outputs(
            DEAD, main="ok"
        )
        enriched = (
            decoded.ok
            | "BatchForLLM"
            >> beam.BatchElements(min_batch_size=llm_batch, max_batch_size=llm_batch)
            | "Enrich" >> beam.ParDo(EnrichBatches(task)).with_outputs(DEAD, main="ok")
        )
        encoded = enriched.ok | "Encode" >> beam.ParDo(EncodeOutputs(task)).with_outputs(
            DEAD, main="ok"
        )
        written = (
            encoded.ok
            | "BatchOutputs" >> beam.BatchElements(min_batch_size=1, max_batch_size=WRITE_BATCH)
            | "WriteOutputs"
            >> beam.ParDo(WriteEnvelopes(kafka, kafka.output_topic, "output", True)).with_outputs(
                FAILED, main="settled"
            )
        )
        dead = (
            decoded[DEAD],
            enriched[DEAD],
            encoded[DEAD],
            written[FAILED],
        ) | "AllDeadLetters" >> beam.Flatten()
        dead_settled = (
            dead
            | "EncodeDeadLetters" >> beam.ParDo(EncodeDeadLetters(task))
            | "BatchDeadLetters" >> beam.BatchElements(min_batch_size=1, max_batch_size=WRITE_BATCH)
            | "WriteDeadLetters"
            >> beam.ParDo(WriteEnvelopes(kafka, kafka.dead_letter_topic, "dead_letter", False))
        )
        settled = (written.settled, dead_settled) | "AllSettled" >> beam.Flatten()
        commits = {
            "ranges": drained["ranges"],
            "read_offsets": drained["read_offsets"],
            "settled": settled,
        } | "CommitOffsets" >> CommitAfterWrites(kafka, task.consumer_group)
        return {
            "records": drained["records"],
            "enriched": enriched.ok,
            "dead": dead,
            "settled": settled,
            "commits": commits,
        }
