"""Group requests into provider batches, poll them, and hand each answer to its record.

One ``BatchQueue`` per batch provider and process. A record's call is one coroutine that
awaits its answer here; the queue does the rest on a background task of the same loop:

    ask(custom_id, line)   known custom_id (queued, in a batch of this process, or in the
                           durable store from an earlier run) -> wait for that one;
                           else join the open group (a full group is submitted at once)
    every tick             a group older than max_wait_s -> upload + create (submit)
                           a pending batch due (poll_interval_s) -> its outcome, if ended:
                           answers and failures to the waiters, their rows removed
    stop requested         waiters leave (``BatchAbandoned``); the open group is dropped
                           unsent; pending batches stay in the store for the next run
    batch.deadline_s       a waiter gives up (``BatchWaitExceeded``): its record falls back

The ``custom_id`` is a hash of the request body (model, messages, generation parameters,
response format: no secret), so a record read again after a restart finds its request in
the batch submitted before. The store records the uploaded file before the batch is
created: a crash between the two is resumed by finding the batch made from that file.

Clock and sleep are injected; the Files/Batches HTTP calls (``BatchApi``) and the durable
map (``PendingStore``) are edges (``transforms.llm.batch_api``, ``batch_state``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from openai.types.chat import ChatCompletion

from transforms.core.calls.policy import is_transient
from transforms.core.config.batch import BatchSpec
from transforms.core.errors import EnrichError

__all__ = [
    "BatchAbandoned",
    "BatchApi",
    "BatchItemFailed",
    "BatchOutcome",
    "BatchQueue",
    "BatchWaitExceeded",
    "ItemFailure",
    "PendingStore",
]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
CHECK_S = 0.5  # how often a waiter looks at the stop request and its deadline


class BatchAbandoned(EnrichError):
    """The run is stopping while the record waits for its batch: leave it uncommitted."""


class BatchWaitExceeded(EnrichError):
    """The record waited ``batch.deadline_s`` without an answer from its batch."""


@dataclass(frozen=True)
class ItemFailure:
    """A request the batch did not answer: an error line, or missing from an ended batch."""

    code: str
    message: str
    status: int | None = None


class BatchItemFailed(EnrichError):
    def __init__(self, failure: ItemFailure) -> None:
        self.failure = failure
        self.status_code = failure.status
        super().__init__(f"{failure.code}: {failure.message}")


@dataclass(frozen=True)
class BatchOutcome:
    """An ended batch (completed, expired, failed, cancelled): answers and failures by
    custom_id; a request in neither failed with the batch's status."""

    status: str
    answers: dict[str, ChatCompletion] = field(default_factory=dict)
    failures: dict[str, ItemFailure] = field(default_factory=dict)

    def result(self, custom_id: str) -> ChatCompletion | ItemFailure:
        answer = self.answers.get(custom_id)
        if answer is not None:
            return answer
        return self.failures.get(custom_id) or ItemFailure(
            f"batch_{self.status}", f"the batch ended {self.status} without this request"
        )


class BatchApi(Protocol):
    async def upload(self, lines: Sequence[bytes]) -> str:
        """Upload the JSONL input file; its file id."""

    async def create(self, file_id: str) -> str:
        """Create the batch over an uploaded file; its batch id."""

    async def find(self, file_id: str) -> str | None:
        """The batch created from ``file_id`` earlier, if any."""

    async def outcome(self, batch_id: str) -> BatchOutcome | None:
        """None while the batch runs; its results once it ended."""


class PendingStore(Protocol):
    """Durable custom_id -> (input file id, batch id or None while being created)."""

    async def lookup(self, custom_id: str) -> tuple[str, str | None] | None: ...

    async def add(self, file_id: str, custom_ids: Sequence[str]) -> None: ...

    async def set_batch(self, file_id: str, batch_id: str) -> None: ...

    async def remove(self, custom_ids: Sequence[str]) -> None: ...


@dataclass
class _Item:
    line: bytes
    waiters: list[asyncio.Future[ChatCompletion]] = field(default_factory=list)

    def deliver(self, result: ChatCompletion | BaseException) -> bool:
        """Hand the result to every waiter still there; False when none was."""
        live = [w for w in self.waiters if not w.done()]
        for waiter in live:
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
        self.waiters.clear()
        return bool(live)


@dataclass
class _Batch:
    file_id: str
    batch_id: str | None
    next_poll: float
    items: dict[str, _Item] = field(default_factory=dict)
    resumed: bool = False  # found in the store: an earlier run may have created it


class BatchQueue:
    """See the module docstring. ``stopping``: the run's stop request."""

    def __init__(
        self,
        spec: BatchSpec,
        api: BatchApi,
        store: PendingStore,
        *,
        stopping: Callable[[], bool],
        submit: Callable[[Callable[[], Awaitable[str]]], Awaitable[str]] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._spec, self._api, self._store = spec, api, store
        self._stopping, self._clock, self._sleep = stopping, clock, sleep
        self._submit_call = submit or (lambda call: call())  # retries, injected
        self._group: dict[str, _Item] = {}
        self._group_started = 0.0
        self._batches: dict[str, _Batch] = {}  # by input file id
        self._where: dict[str, _Batch] = {}  # custom_id -> its batch
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.submitted = 0  # batches this queue created
        self._resumed: set[str] = set()  # input files of earlier runs' batches

    @property
    def resumed(self) -> int:
        """Batches of an earlier run this queue attached to (a record read after its
        batch ended attaches again: the results are downloaded again, nothing is paid)."""
        return len(self._resumed)

    @property
    def tick_s(self) -> float:
        return min(self._spec.poll_interval_s, self._spec.max_wait_s, 1.0)

    async def ask(self, custom_id: str, line: bytes) -> ChatCompletion:
        """The answer to one request (``line``: its batch input line); raises
        ``BatchItemFailed``, ``BatchWaitExceeded``, the API's error when the batch could
        not be submitted, or ``BatchAbandoned`` when the run stops first."""
        waiter: asyncio.Future[ChatCompletion] = asyncio.get_running_loop().create_future()
        item = await self._item(custom_id, line)
        item.waiters.append(waiter)
        self._ensure_running()
        if len(self._group) >= self._spec.max_records:  # taken now: it never overfills
            self._spawn(self._send(self._take_group()))
        try:
            return await self._wait(waiter)
        finally:
            if not waiter.done():
                waiter.cancel()
            self._forget(custom_id, item)

    async def _item(self, custom_id: str, line: bytes) -> _Item:
        known = self._group.get(custom_id)
        if known is not None:
            return known
        batch = self._where.get(custom_id)
        if batch is not None:
            return batch.items[custom_id]
        found = await self._store.lookup(custom_id)
        if found is not None:  # submitted by an earlier run (or another process)
            return self._attach(custom_id, line, *found)
        if custom_id in self._group:  # added while the store was asked
            return self._group[custom_id]
        if not self._group:
            self._group_started = self._clock()
        item = self._group[custom_id] = _Item(line)
        return item

    def _attach(self, custom_id: str, line: bytes, file_id: str, batch_id: str | None) -> _Item:
        batch = self._batches.get(file_id)
        if batch is None:
            batch = _Batch(file_id, batch_id, self._clock(), resumed=True)
            self._batches[file_id] = batch
            self._resumed.add(file_id)
            log.info("resuming batch %s (file %s)", batch_id or "being created", file_id)
        item = batch.items.setdefault(custom_id, _Item(line))
        self._where[custom_id] = batch
        return item

    async def _wait(self, waiter: asyncio.Future[ChatCompletion]) -> ChatCompletion:
        started = self._clock()
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=CHECK_S)
            if done:
                return waiter.result()
            if self._stopping():
                raise BatchAbandoned("the run stopped while the record waited for its batch")
            if self._clock() - started > self._spec.deadline_s:
                raise BatchWaitExceeded(
                    f"no answer from the batch within batch.deadline_s "
                    f"({self._spec.deadline_s:.0f}s)"
                )

    def _forget(self, custom_id: str, item: _Item) -> None:
        """A waiter left: drop an unsent request nobody waits for any more. A submitted
        one stays in its batch (and in the store, for the run that reads it again)."""
        item.waiters[:] = [w for w in item.waiters if not w.done()]
        if not item.waiters and self._group.get(custom_id) is item:
            del self._group[custom_id]

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while self._group or self._batches:
            now = self._clock()
            if self._group and now - self._group_started >= self._spec.max_wait_s:
                await self._send(self._take_group())
            for batch in list(self._batches.values()):
                if not any(item.waiters for item in batch.items.values()):
                    self._drop(batch)  # nobody waits (stopped): the store keeps it
                elif batch.batch_id is None:
                    await self._create(batch)
                elif now >= batch.next_poll:
                    await self._poll(batch)
            await self._sleep(self.tick_s)

    def _take_group(self) -> dict[str, _Item]:
        """The open group's requests someone still waits for; a new group opens."""
        items = {cid: item for cid, item in self._group.items() if item.waiters}
        self._group = {}
        return items

    async def _send(self, items: dict[str, _Item]) -> None:
        """Upload the group, record it, create its batch."""
        if not items or self._stopping():  # stopping: the waiters leave, nothing is sent
            return
        try:
            file_id = await self._submit_call(
                lambda: self._api.upload([i.line for i in items.values()])
            )
        except Exception as exc:
            log.warning("batch upload failed: %s", type(exc).__name__)
            for item in items.values():
                item.deliver(exc)
            return
        batch = self._batches[file_id] = _Batch(file_id, None, self._clock(), items)
        for custom_id in items:
            self._where[custom_id] = batch
        self._ensure_running()  # the runner may have ended while the group was sent
        await self._store.add(file_id, list(items))  # durable before the batch exists
        await self._create(batch)

    async def _create(self, batch: _Batch) -> None:
        """Create the batch over its file, unless an earlier run did."""
        file_id = batch.file_id
        try:
            batch_id = await self._api.find(file_id) if batch.resumed else None
            if batch_id is None:
                batch_id = await self._submit_call(lambda: self._api.create(file_id))
                self.submitted += 1
        except Exception as exc:
            log.warning("batch creation failed: %s", type(exc).__name__)
            self._end(batch, exc)
            await self._store.remove(list(batch.items))
            return
        batch.batch_id = batch_id
        batch.next_poll = self._clock() + self._spec.poll_interval_s
        await self._store.set_batch(file_id, batch_id)
        log.info("batch %s: %d requests submitted", batch_id, len(batch.items))

    async def _poll(self, batch: _Batch) -> None:
        assert batch.batch_id is not None
        try:
            outcome = await self._api.outcome(batch.batch_id)
        except Exception as exc:
            if is_transient(exc):  # the batch still runs; ask again next interval
                log.warning("polling batch %s: %s", batch.batch_id, type(exc).__name__)
                batch.next_poll = self._clock() + self._spec.poll_interval_s
                return
            outcome = None
            settled = self._end(batch, exc)
        else:
            if outcome is None:
                batch.next_poll = self._clock() + self._spec.poll_interval_s
                return
            settled = self._end(batch, outcome)
        log.info("batch %s ended %s", batch.batch_id, outcome.status if outcome else "unreadable")
        await self._store.remove(settled)

    def _end(self, batch: _Batch, ended: BatchOutcome | BaseException) -> list[str]:
        """Settle every waiter of the batch; the custom_ids that reached a waiter (those
        nobody waited for keep their rows: the record that is read again finds them)."""
        settled = []
        for custom_id, item in batch.items.items():
            if isinstance(ended, BaseException):
                result: ChatCompletion | BaseException = ended
            else:
                found = ended.result(custom_id)
                result = BatchItemFailed(found) if isinstance(found, ItemFailure) else found
            if item.deliver(result):
                settled.append(custom_id)
        self._drop(batch)
        return settled

    def _drop(self, batch: _Batch) -> None:
        self._batches.pop(batch.file_id, None)
        for custom_id in batch.items:
            if self._where.get(custom_id) is batch:
                del self._where[custom_id]

    async def aclose(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
