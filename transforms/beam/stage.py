"""The stages as composites: ``EnrichStage`` drains the input topic, ``ReplayStage`` the
dead-letter topic; both share ``ProcessRecords`` (decode, enrich, encode, write) and commit
offsets only after the writes."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.resources import ResourceHint

from transforms.beam.commit import CommitAfterWrites
from transforms.beam.enrich import (
    DEAD,
    DecodeRecords,
    EncodeDeadLetters,
    EncodeOutputs,
    EnrichRecords,
)
from transforms.beam.keyed_enrich import EnrichKeyed, slot_of
from transforms.beam.read import GAPS, ReadTopic
from transforms.beam.replay import (
    SKIPPED,
    OnePerSource,
    SelectForReplay,
    by_source,
    source_coordinates,
)
from transforms.beam.run_handle import RunHandle
from transforms.beam.settle import SettleHandle
from transforms.beam.write import FAILED, WriteEnvelopes
from transforms.core import counters
from transforms.core.config.task import TaskSpec
from transforms.core.run.replay import ReplayFilter


class _WorkerHint(ResourceHint):
    """Marks the transforms of one local worker process. Beam gives transforms with
    different resource hints different environments, and Prism starts one SDK worker per
    environment (it has no other way to run a stage in more than one worker)."""

    urn = "llm-enrich:resource_hint:local_worker:v1"


WORKER_HINT = "llm_enrich_local_worker"
ResourceHint.register_resource_hint(WORKER_HINT, _WorkerHint)


def _worker_of(record: Any, workers: int) -> int:
    return int((record.partition * 7919 + record.offset) % workers)


class ProcessRecords(beam.PTransform[Any, Any]):
    """KafkaRecords in; outputs written, failures dead-lettered. Returns ``enriched``,
    ``dead`` and ``settled`` (the coordinates whose writes the broker acknowledged; empty
    with ``settle``, where the writers settle them in the run's ``Settlement``). ``run``
    names the run to its workers (one per process shares the run's enrich service; a shared
    coordination keys the run's budget by its ``run_id``); copies of one run pass the same."""

    def __init__(
        self,
        task: TaskSpec,
        run: RunHandle,
        *,
        follow: bool = False,
        reader_run: str | None = None,
        settle: SettleHandle | None = None,
        keyed: bool = False,
    ) -> None:
        super().__init__()
        self._task, self._run, self._follow, self._reader_run = task, run, follow, reader_run
        self._settle, self._keyed = settle, keyed

    def expand(self, records: Any) -> dict[str, Any]:
        task, kafka = self._task, self._task.kafka
        decoded = records | "Decode" >> beam.ParDo(DecodeRecords(task, self._run)).with_outputs(
            DEAD, main="ok"
        )
        if self._keyed:  # calls outlive their bundle (transforms.beam.keyed_enrich)
            enrich: beam.DoFn = EnrichKeyed(task, self._run, self._follow)
            to_enrich = decoded.ok | "Slot" >> beam.Map(slot_of).with_output_types(
                beam.typehints.Tuple[int, Any]  # an int key: a deterministic coder
            )
        else:
            enrich = EnrichRecords(task, self._run, self._follow, self._reader_run)
            to_enrich = decoded.ok
        enriched = to_enrich | "Enrich" >> beam.ParDo(enrich).with_outputs(DEAD, main="ok")
        encoded = enriched.ok | "Encode" >> beam.ParDo(EncodeOutputs(task, self._run)).with_outputs(
            DEAD, main="ok"
        )
        written = encoded.ok | "WriteOutputs" >> beam.ParDo(
            WriteEnvelopes(
                kafka,
                kafka.output_topic,
                self._run,
                role=counters.OUTPUT_TOPIC,
                failures_to_dead_letter=True,
                settle=self._settle,
                reader_run=self._reader_run,
            )
        ).with_outputs(FAILED, main="settled")
        dead = (
            decoded[DEAD],
            enriched[DEAD],
            encoded[DEAD],
            written[FAILED],
        ) | "AllDeadLetters" >> beam.Flatten()
        dead_settled = (
            dead
            | "EncodeDeadLetters" >> beam.ParDo(EncodeDeadLetters(task, self._run))
            | "WriteDeadLetters"
            >> beam.ParDo(
                WriteEnvelopes(
                    kafka,
                    kafka.dead_letter_topic,
                    self._run,
                    role=counters.DEAD_LETTER_TOPIC,
                    failures_to_dead_letter=False,
                    settle=self._settle,
                    reader_run=self._reader_run,
                )
            )
        )
        settled = (written.settled, dead_settled) | "AllSettled" >> beam.Flatten()
        return {"enriched": enriched.ok, "dead": dead, "settled": settled}


class EnrichStage(beam.PTransform[Any, Any]):
    """Applied to the pipeline root: drain (``follow=False``) or follow the input topic.
    ``one_process``: the runner runs everything in one process (Prism's LOOPBACK workers).
    ``fused``: and the processing steps run fused after the readers there (Prism's
    LOOPBACK workers; see ``transforms.beam.outstanding``).
    ``keyed``: the runner never retries a bundle alone (Flink): the enrich step's calls
    outlive their bundle (``transforms.beam.keyed_enrich``).
    ``workers`` > 1 (Prism with a local worker pool): records are dealt over that many
    copies of the processing, each in an environment of its own, so in a worker process of
    its own; the first shares its process with the readers and the commit step.
    Fused, the readers and writers settle offsets in the run's ``Settlement``, which
    commits them as acknowledgements arrive (``transforms.beam.settle``); otherwise a
    stateful step commits the settled coordinates (``transforms.beam.commit``).
    Returns every intermediate PCollection by name, so tests can assert on them: records,
    enriched, dead, settled, and (unless fused) commits. ``run``: what each worker process
    keeps for the run (``transforms.beam.run_handle``)."""

    def __init__(
        self,
        task: TaskSpec,
        *,
        follow: bool = False,
        one_process: bool = False,
        fused: bool = False,
        workers: int = 1,
        keyed: bool = False,
    ) -> None:
        super().__init__()
        self._task, self._follow, self._one_process = task, follow, one_process
        self._fused, self._workers = fused and one_process and workers == 1, workers
        self._keyed = keyed and not one_process and workers == 1
        self.run = RunHandle(coordination=task.coordination, task=task.name)

    def expand(self, pbegin: Any) -> dict[str, Any]:
        task, kafka = self._task, self._task.kafka
        reader_run = self.run.run_id if self._fused else None
        settle = SettleHandle(kafka, task.consumer_group, self.run) if reader_run else None
        read = pbegin | "Read" >> ReadTopic(
            kafka,
            kafka.input_topic,
            task.consumer_group,
            self.run,
            follow=self._follow,
            slice_records=2 * task.policy.max_in_flight,  # a bundle: twice the window
            # readers and enrichment in one process: readers wait for enrichment
            max_backlog=4 * task.policy.max_in_flight if self._one_process else None,
            reader_run=reader_run,
            settle=settle,
        )
        records = read["records"]
        if self._workers > 1:
            processed = self._dealt(records)
        else:
            # Fused after the readers in one process, bundles need not wait for slow calls
            # (transforms.beam.outstanding); on Flink the enrich step is keyed by slot, which
            # spreads a partition's records over every worker, and its calls outlive their
            # bundle (transforms.beam.keyed_enrich). Commits stay per partition.
            if not self._one_process and not self._keyed:  # spread over every worker
                records = records | "Spread" >> beam.Reshuffle()
            processed = records | "Process" >> ProcessRecords(
                task,
                self.run,
                follow=self._follow,
                reader_run=reader_run,
                settle=settle,
                keyed=self._keyed,
            )
        if settle is not None:  # settled and committed where the writes are acknowledged
            return {"records": read["records"], **processed}
        settled = (processed["settled"], read[GAPS]) | "SettledOrGaps" >> beam.Flatten()
        commits = {
            "ranges": read["ranges"],
            "settled": settled,
        } | "CommitOffsets" >> CommitAfterWrites(kafka, task.consumer_group, self.run)
        return {"records": read["records"], **processed, "commits": commits}

    def _dealt(self, records: Any) -> dict[str, Any]:
        """One ProcessRecords per local worker process, records dealt by offset."""
        deal: Any = _worker_of
        shares = records | "Deal" >> beam.Partition(deal, self._workers)
        branches = []
        for index in range(self._workers):
            process: beam.PTransform[Any, Any] = ProcessRecords(
                self._task, self.run, follow=self._follow
            )
            if index:  # the first stays in the default environment, with the readers
                process = process.with_resource_hints(**{WORKER_HINT: str(index)})
            branches.append(shares[index] | f"Process{index}" >> process)
        return {
            name: tuple(b[name] for b in branches) | f"All{name.title()}" >> beam.Flatten()
            for name in ("enriched", "dead", "settled")
        }


class ReplayStage(beam.PTransform[Any, Any]):
    """Drain the dead-letter topic under its own consumer group and re-enrich the originals
    of the selected dead letters with the current task. Dead letters that are skipped
    (filtered out, unreadable, or whose source already has an output) are settled too."""

    def __init__(self, task: TaskSpec, selection: ReplayFilter, limit: int | None) -> None:
        super().__init__()
        self._task, self._selection, self._limit = task, selection, limit
        self.run = RunHandle(coordination=task.coordination, task=task.name)

    def expand(self, pbegin: Any) -> dict[str, Any]:
        task, kafka = self._task, self._task.kafka
        group = replay_group(task)
        drained = pbegin | "DrainDeadLetters" >> ReadTopic(
            kafka, kafka.dead_letter_topic, group, self.run, limit=self._limit
        )
        outputs = pbegin | "DrainOutputs" >> ReadTopic(
            kafka, kafka.output_topic, None, self.run, counter_name=counters.REPLAY_OUTPUTS_SCANNED
        )
        already_enriched = outputs["records"] | "SourceOfOutputs" >> beam.FlatMap(
            source_coordinates, self.run
        )
        selected = drained["records"] | "Select" >> beam.ParDo(
            SelectForReplay(self._selection, self.run), beam.pvalue.AsDict(already_enriched)
        ).with_outputs(SKIPPED, main="replay")
        unique = (
            selected.replay
            | "KeyBySource" >> beam.Map(by_source)
            | "GroupBySource" >> beam.GroupByKey()
            | "OnePerSource"
            >> beam.ParDo(OnePerSource(self.run)).with_outputs(SKIPPED, main="replay")
        )
        processed = unique.replay | "Process" >> ProcessRecords(task, self.run)
        settled = (
            processed["settled"],
            selected[SKIPPED],
            unique[SKIPPED],
            drained[GAPS],
        ) | "SettledOrSkipped" >> beam.Flatten()
        commits = {
            "ranges": drained["ranges"],
            "settled": settled,
        } | "CommitReplayOffsets" >> CommitAfterWrites(kafka, group, self.run)
        return {"records": drained["records"], **processed, "commits": commits}


def replay_group(task: TaskSpec) -> str:
    return f"{task.consumer_group}.replay"
