"""DoFns for decode, enrich and encode; each sends failing records to the ``dead`` output."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam.utils.shared import Shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.beam.failures import log_defect, log_failure
from transforms.beam.metrics import (
    CacheCounts,
    CascadeCounts,
    ThrottledTime,
    count_halted,
    count_safety,
    counter,
    dead_letter_counter,
    halt,
    note_stop,
)
from transforms.beam.outstanding import Outstanding, Submitted
from transforms.beam.run_handle import RunHandle
from transforms.cache.open import answer_cache
from transforms.coordination.open import open_coordination
from transforms.core import counters
from transforms.core.answers.judge import repair_kind
from transforms.core.cache.backend import CacheUnavailable
from transforms.core.calls.batch_provider import BatchProviderClient
from transforms.core.calls.cascade import cascade_steps
from transforms.core.calls.enricher import ABANDONED, ABANDONED_BATCH, Enricher
from transforms.core.calls.shadow import ShadowRunner
from transforms.core.config.task import TaskSpec
from transforms.core.coordination.in_process import InProcess
from transforms.core.coordination.interface import Coordination, CoordinationLost
from transforms.core.envelope import Envelope, dead_letter_envelope, output_envelope
from transforms.core.errors import RecordError, SystemicFault, TaskConfigError
from transforms.core.formats.codec import input_decoder
from transforms.core.job import Job, compile_job
from transforms.core.records import Enriched, Failure, KafkaRecord, Parsed, Skipped
from transforms.kafka.shadow_writer import ShadowWriter
from transforms.llm.connect import connect
from transforms.llm.moderation import Moderator
from transforms.registry.client import RegistryClient, registry_lookup, topic_subject

DEAD = "dead"


def _dead(
    run: RunHandle, failure: Failure | WindowedValue, exc: BaseException | None = None
) -> Any:
    plain = failure.value if isinstance(failure, WindowedValue) else failure
    dead_letter_counter(run, plain.stage).inc()
    log_failure(plain.stage, plain.error_class, plain.message, exc)
    return beam.pvalue.TaggedOutput(DEAD, failure)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _JobDoFn(beam.DoFn):
    """Holds the picklable task (compiled on the worker) and the run's handle."""

    def __init__(self, task: TaskSpec, run: RunHandle) -> None:
        self._task, self._run = task, run
        self._job: Job | None = None

    def __getstate__(self) -> dict[str, Any]:  # the compiled job is rebuilt on the worker
        return {**self.__dict__, "_job": None}

    @property
    def job(self) -> Job:
        if self._job is None:
            self._job = compile_job(self._task)
        return self._job


class DecodeRecords(_JobDoFn):
    def setup(self) -> None:
        self._control = self._run.acquire().control
        self._decoder = input_decoder(self.job, registry_lookup)

    def process(self, record: KafkaRecord) -> Iterator[Any]:
        try:
            yield self._decoder.decode(record)
        except RecordError as error:
            self._control.records_done()
            failure = Failure.from_error(record, error, failed_at_ms=_now_ms())
            yield _dead(self._run, failure, error)
        except SystemicFault as fault:  # e.g. the registry is unreachable: stop the run
            self._control.records_done()
            halt(self._run, f"systemic: {fault.reason}")


T = TypeVar("T")


class EnrichService:
    """One per worker process and run: an event loop on its own thread, the provider
    clients, and the enricher, so that every DoFn instance of the process shares the
    in-flight window, rate limits, circuit breakers and guards. With a shared coordination
    (``coordination: {backend: redis}``) the limits, breakers and budget are the job's, in
    Redis, keyed by ``run_id`` (the same in every worker of the run)."""

    def __init__(self, job: Job, run: RunHandle, *, follow: bool) -> None:
        self._run = run
        self.control = run.acquire().control
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="llm-enrich-loop", daemon=True
        )
        self._thread.start()
        task = job.task
        self.coordination = self._coordination(task, run.run_id)
        self.providers = [
            connect(
                p,
                task.generation,
                task.policy,
                job=task.name,
                coordination=self.coordination,
                stopping=self.control.stop_requested,
            )
            for p in task.chain
        ]
        self.batch_names = frozenset(p.name for p in task.chain if p.mode == "batch")
        self.shadows = _shadow_runner(job, self.coordination)
        self._shadow_clients = list(self.shadows.clients) if self.shadows else []
        self._batches_reported = (0, 0)
        moderation = task.safety.moderation
        self.moderator = Moderator(moderation) if moderation else None
        try:
            self.cache = answer_cache(job, lambda ping: self.submit(ping).result())
        except CacheUnavailable as fault:  # no record is read while the cache is missing
            self.cache = None
            halt(run, f"systemic: {fault.reason}")
        self.enricher = Enricher(
            job,
            self.providers,
            follow=follow,
            moderator=self.moderator,
            cache=self.cache,
            steps=cascade_steps(job, self.providers),
            budget=self.coordination.budget(),
            control=self.control,
        )
        self.outstanding = Outstanding()  # calls bundles left behind (``reader_run``)
        self._lock = threading.Lock()
        self._throttled_reported = self._queued_reported = 0.0

    def _coordination(self, task: TaskSpec, run_id: str) -> Coordination:
        """The run's limits, breakers and budget: this process's, or the job's in Redis. One
        that cannot be used stops the run before any record is attempted."""
        try:
            coordination = open_coordination(task, run_id)
            self.submit(coordination.ping()).result()
            return coordination
        except CoordinationLost as fault:
            halt(self._run, f"systemic: {fault.reason}")
            return InProcess()

    def cache_errors_since_last(self) -> int:
        with self._lock:
            return self.cache.errors_since_last() if self.cache else 0

    def throttled_since_last(self) -> float:
        """Seconds the calls of this process waited for rate limits since the last ask."""
        with self._lock:
            total = sum(p.throttled_s for p in self.providers)
            delta, self._throttled_reported = total - self._throttled_reported, total
            return delta

    def queued_since_last(self) -> float:
        """Seconds the calls of this process waited for provider capacity (a slot or a rate
        limit) since the last ask: time their records' deadlines did not count."""
        with self._lock:
            total = sum(getattr(p, "queued_s", 0.0) for p in self.providers)
            delta, self._queued_reported = total - self._queued_reported, total
            return delta

    def batches_since_last(self) -> tuple[int, int]:
        """Batches (submitted, resumed from an earlier run) since the last ask."""
        with self._lock:
            queues = [p.queue for p in self.providers if isinstance(p, BatchProviderClient)]
            total = (sum(q.submitted for q in queues), sum(q.resumed for q in queues))
            last, self._batches_reported = self._batches_reported, total
            return total[0] - last[0], total[1] - last[1]

    async def enrich(self, parsed: Parsed) -> Enriched | Failure | Skipped:
        """The record through the chain; then, not awaited, through the shadows it is
        sampled for."""
        result = await self.enricher.enrich_one(parsed)
        if self.shadows is not None:
            self.shadows.offer(parsed, result)
        return result

    def shadow_counts(self) -> dict[str, int]:
        return self.shadows.take_counts() if self.shadows is not None else {}

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def __del__(self) -> None:  # the last DoFn let go of it (Shared holds a weak reference)
        loop = getattr(self, "loop", None)
        if loop is not None and loop.is_running():
            clients = [*getattr(self, "providers", []), *getattr(self, "_shadow_clients", [])]
            clients += [c for c in [getattr(self, "coordination", None)] if c is not None]
            asyncio.run_coroutine_threadsafe(_close(clients, loop), loop)


def _shadow_runner(job: Job, coordination: Coordination) -> ShadowRunner | None:
    """The shadow providers' runner, or None without any. A shadow provider that cannot be
    built (its key variable unset) is left out and counted, never a reason to stop."""
    task = job.task
    if not task.shadows or not task.kafka.shadow_topic:
        return None
    clients, missing = [], []
    for spec in task.shadows:
        try:
            clients.append(
                connect(
                    spec, task.generation, task.policy, job=task.name, coordination=coordination
                )
            )
        except TaskConfigError as exc:
            missing.append(spec.name)
            log_failure("shadow", "TaskConfigError", str(exc))
    topic = task.kafka.shadow_topic
    runner = ShadowRunner(job, clients, lambda count: ShadowWriter(task.kafka, topic, count))
    for name in missing:
        runner.count(counters.shadow(name, "unavailable"))
    return runner


async def _close(providers: list[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Close the providers' HTTP sessions (and the coordination's client), then stop the
    loop."""
    try:
        await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
    finally:
        loop.stop()


class EnrichRecords(_JobDoFn):
    """Submits each record to the process's shared event loop as it arrives and emits
    results as they complete. Concurrent bundles share the loop's in-flight window
    (``policy.max_in_flight``). ``reader_run``: the id of the readers fused before this
    step in this process; a bundle then leaves its unfinished calls to later bundles while
    a reader of that run is live (``transforms.beam.outstanding``). Otherwise a bundle
    waits for its own calls at its end."""

    def __init__(
        self, task: TaskSpec, run: RunHandle, follow: bool, reader_run: str | None = None
    ) -> None:
        super().__init__(task, run)
        self._shared = Shared()
        self._follow, self._reader_run = follow, reader_run
        self._enriched = counter(run, counters.ENRICHED)
        self._calls = counter(run, counters.LLM_CALLS)
        self._reasks = counter(run, counters.LLM_REASKS)
        self._failed_calls = counter(run, counters.LLM_FAILED_CALLS)
        self._prompt_tokens = counter(run, counters.PROMPT_TOKENS)
        self._completion_tokens = counter(run, counters.COMPLETION_TOKENS)
        self._cached_tokens = counter(run, counters.CACHED_PROMPT_TOKENS)
        self._reasoning_tokens = counter(run, counters.REASONING_TOKENS)
        self._estimated_calls = counter(run, counters.USAGE_ESTIMATED_CALLS)
        self._repaired = counter(run, counters.REPAIRED)
        self._defaulted = counter(run, counters.DEFAULTED)
        self._cost_micro_usd = counter(run, counters.COST_MICRO_USD)
        self._abandoned = counter(run, counters.ABANDONED)
        self._batch_answers = counter(run, counters.BATCH_ANSWERS)
        self._pack_calls = counter(run, counters.PACK_CALLS)
        self._pack_shares = counter(run, counters.PACK_SHARES)
        self._pack_alone = counter(run, counters.PACK_ALONE)
        self._batch_failed = counter(run, counters.BATCH_FAILED)
        self._batches_submitted = counter(run, counters.BATCHES_SUBMITTED)
        self._batches_resumed = counter(run, counters.BATCHES_RESUMED)
        self._throttled = ThrottledTime(run)
        self._queued_ms = counter(run, counters.CAPACITY_WAIT_MS)
        self._cache = CacheCounts(run)
        self._cascade = CascadeCounts(run)

    def setup(self) -> None:
        self._worker = self._run.acquire()
        self._service: EnrichService = self._shared.acquire(
            lambda: EnrichService(self.job, self._run, follow=self._follow), tag=self._run.run_id
        )

    def start_bundle(self) -> None:
        self._pending = self._service.outstanding if self._reader_run else Outstanding()

    def process(
        self,
        parsed: Parsed,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> Iterator[Any]:
        future = self._service.submit(self._service.enrich(parsed))
        future.add_done_callback(self._answered)  # the reader may read one more
        self._pending.add(future, timestamp, window)
        yield from self._emit(self._pending.take_done())

    def _answered(self, _: Future[Any]) -> None:
        self._worker.control.records_done()

    def finish_bundle(self) -> Iterator[Any]:
        readers = self._worker.readers
        if self._reader_run and readers.live(self._reader_run):  # a later bundle will come
            yield from self._emit(self._pending.take_done())
        else:
            yield from self._emit(self._pending.take_all())
        self._report()

    def _report(self) -> None:
        """The process's counts since the last bundle, as this bundle's metrics."""
        self._throttled.report(self._service.throttled_since_last())
        self._queued_ms.inc(round(self._service.queued_since_last() * 1000))
        self._cache.errors.inc(self._service.cache_errors_since_last())
        submitted, resumed = self._service.batches_since_last()
        self._batches_submitted.inc(submitted)
        self._batches_resumed.inc(resumed)
        for name, value in self._service.shadow_counts().items():
            counter(self._run, name).inc(value)
        note_stop(self._run)  # a guard may have stopped the run with no record left to skip

    def _emit(self, taken: Iterable[Submitted]) -> Iterator[Any]:
        for submitted in taken:
            result, timestamp, window = (
                submitted.future.result(),
                submitted.timestamp,
                submitted.window,
            )
            self._count(result.attempts)
            if isinstance(result, Skipped):  # the run was stopped: leave it uncommitted
                if result.reason in (ABANDONED, ABANDONED_BATCH):
                    self._abandoned.inc()  # a clean stop, not a guard or a fault
                else:
                    count_halted(self._run, result.reason)
            elif isinstance(result, Enriched):
                self._enriched.inc()
                self._repaired.inc(bool(result.repairs))
                self._count_repairs(result)
                count_safety(self._run, result)
                self._cache.count(result)
                self._cascade.count(result)
                yield WindowedValue(result, timestamp, (window,))
            else:
                count_safety(self._run, result)
                yield _dead(self._run, WindowedValue(result, timestamp, (window,)))

    def _count_repairs(self, enriched: Enriched) -> None:
        """Per kind (``repair.enum_case``) and per defaulted field (``defaulted.language``)."""
        for repair in enriched.repairs:
            counter(self._run, counters.repair(repair_kind(repair))).inc()
        self._defaulted.inc(bool(enriched.defaulted))
        for name in enriched.defaulted:
            counter(self._run, counters.defaulted(name)).inc()

    def _count(self, attempts: Sequence[Any]) -> None:
        batch_names = self._service.batch_names
        for attempt in attempts:
            if attempt.provider in batch_names:
                (self._batch_failed if attempt.error else self._batch_answers).inc()
            # A call several records shared is counted once, with its first record's share
            # (every record's share of its tokens and cost is counted below).
            once = attempt.shared_index <= 1
            if attempt.shared_by > 1:
                self._pack_shares.inc()
                self._pack_calls.inc(once)
            self._pack_alone.inc(attempt.kind == "alone")
            self._calls.inc(once)
            self._reasks.inc(attempt.kind == "reask")
            self._failed_calls.inc(once and attempt.error is not None)
            self._prompt_tokens.inc(attempt.prompt_tokens)
            self._cost_micro_usd.inc(round(attempt.cost_usd * 1_000_000))
            self._completion_tokens.inc(attempt.completion_tokens)
            self._cached_tokens.inc(attempt.cached_tokens)
            self._reasoning_tokens.inc(attempt.reasoning_tokens)
            self._estimated_calls.inc(once and attempt.usage_estimated)


class EncodeOutputs(_JobDoFn):
    def setup(self) -> None:
        spec = self.job.task.output
        self._schema_id = None
        if spec.framing == "confluent" and spec.registry_url:
            subject = spec.subject or topic_subject(self.job.task.kafka.output_topic)
            self._schema_id = RegistryClient(spec.registry_url).register(
                subject, self.job.output_schema
            )

    def process(self, enriched: Enriched) -> Iterator[Any]:
        try:
            yield output_envelope(self.job, enriched, self._schema_id)
        except RecordError as error:
            failure = Failure.from_error(enriched.source, error, failed_at_ms=_now_ms())
            failure = Failure(**{**failure.__dict__, "attempts": enriched.attempts})
            yield _dead(self._run, failure, error)


class EncodeDeadLetters(_JobDoFn):
    def process(self, failure: Failure) -> Iterator[Envelope]:
        try:
            yield dead_letter_envelope(self.job, failure)
        except Exception as exc:  # a defect: leave the offset unsettled (re-read next run)
            counter(self._run, counters.DEAD_LETTER_UNENCODABLE).inc()
            log_defect(f"a {failure.stage} dead letter could not be encoded", exc)
