"""Shadow providers: a share of the records also answered by a provider outside the chain.

    primary settled (output or dead letter)  -> offer(): sampled? a slot free?
        no slot (``shadow.max_in_flight`` busy) -> counted ``busy``, not shadowed
        else a task on the same event loop, not awaited by anyone:
            the same prompt, validation, repair and re-asks as the chain (an ``Enricher``
            over the shadow provider alone; no cache, no moderation: its answer is never
            written), within ``shadow.timeout_s``
            -> comparison datum -> sink (a bounded queue to the shadow topic's writer)

Fire-and-forget, bounded: the primary's result is returned before the shadow call starts,
so a slow or dead shadow provider delays no record, commit or offset; the shadow's own
client has its own rate limits, circuit breaker and concurrency, and its cost stays out
of the run's budget guard. Failures of any kind are counted, never dead-lettered.
At the end of a run the launcher waits up to the shadows' timeout for the calls still in
flight (``drain_all``); a worker process that ends first loses them (counted nowhere:
shadows are a sample, at most once).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from transforms.core import counters
from transforms.core.calls.enricher import Enricher
from transforms.core.calls.providers import Provider
from transforms.core.calls.shadow_compare import comparison, comparison_counts, sampled
from transforms.core.config.shadow import ShadowSpec
from transforms.core.errors import SystemicFault
from transforms.core.job import Job
from transforms.core.records import Enriched, Failure, Parsed, Skipped

__all__ = ["ShadowRunner", "ShadowSink", "drain_all"]

Count = Callable[[str, int], None]


class ShadowSink(Protocol):
    """Where comparisons go; ``put`` never blocks (False: dropped, queue full)."""

    def put(self, datum: dict[str, Any], key: bytes | None) -> bool: ...

    def flush(self, timeout_s: float) -> None: ...


@dataclass
class _Shadow:
    client: Provider
    spec: ShadowSpec
    enricher: Enricher
    in_flight: int = 0

    @property
    def name(self) -> str:
        return self.client.spec.name


@dataclass(eq=False)  # hashable by identity: kept in a WeakSet
class ShadowRunner:
    """One per worker process (``EnrichService``). ``offer`` runs on the event loop."""

    job: Job
    clients: Sequence[Provider]
    make_sink: Callable[[Count], ShadowSink]  # given the runner's ``count``
    clock: Callable[[], float] = time.time
    sink: ShadowSink = field(init=False)
    _shadows: list[_Shadow] = field(init=False)
    _counts: Counter[str] = field(init=False, default_factory=Counter)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._shadows = []
        for client in self.clients:
            spec = client.spec.shadow
            assert spec is not None, "only providers marked shadow"
            self._shadows.append(_Shadow(client, spec, Enricher(self.job, [client])))
        self.sink = self.make_sink(self.count)
        _RUNNERS.add(self)

    def count(self, name: str, value: int = 1) -> None:
        if value:
            with self._lock:
                self._counts[name] += value

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call (for the run's metrics), and forget them."""
        with self._lock:
            taken, self._counts = dict(self._counts), Counter()
        return taken

    def offer(self, parsed: Parsed, primary: Enriched | Failure | Skipped) -> None:
        """Start the shadow calls this record is sampled for; return at once."""
        if isinstance(primary, Skipped):  # the run stopped: nothing to compare with
            return
        for shadow in self._shadows:
            if not sampled(parsed.source, shadow.name, shadow.spec.share):
                continue
            self.count(counters.shadow(shadow.name, "sampled"))
            if shadow.in_flight >= shadow.spec.max_in_flight:
                self.count(counters.shadow(shadow.name, "busy"))
                continue
            self._loop = asyncio.get_running_loop()
            shadow.in_flight += 1
            task = self._loop.create_task(self._compare(shadow, parsed, primary))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _compare(self, shadow: _Shadow, parsed: Parsed, primary: Enriched | Failure) -> None:
        answer: Enriched | Failure | None = None
        error = None
        try:
            async with asyncio.timeout(shadow.spec.timeout_s):
                answer = await shadow.enricher.enrich(parsed)
        except TimeoutError:
            error = f"shadow.timeout_s ({shadow.spec.timeout_s:.0f}s) exceeded"
        except SystemicFault as fault:  # never the run's business: counted only
            error = f"SystemicFault: {fault.reason}"
        except Exception as exc:  # a defect; the shadow must not take anything down
            error = f"unexpected {type(exc).__name__}"
        finally:
            shadow.in_flight -= 1
        job = self.job
        datum = comparison(
            source=parsed.source,
            job_name=job.name,
            prompt_hash=job.prompt.hash,
            output_schema=job.output_schema.identity,
            generated=job.shape.generated_fields,
            primary=primary,
            shadow=answer,
            shadow_error=error,
            compared_at_ms=int(self.clock() * 1000),
        )
        for name, value in comparison_counts(shadow.name, datum).items():
            self.count(name, value)
        if not self.sink.put(datum, parsed.source.key):
            self.count(counters.SHADOW_WRITE_DROPPED)

    async def wait_in_flight(self) -> None:
        """Wait for the shadow calls in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def drain(self, timeout_s: float) -> None:
        """From another thread: wait up to ``timeout_s`` for the calls in flight, then for
        their comparisons to be written. Calls still running are counted ``unfinished``."""
        loop, deadline = self._loop, time.monotonic() + timeout_s
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.wait_in_flight(), loop)
            try:
                future.result(timeout_s)
            except Exception:  # timed out (or the loop stopped): what is left is lost
                future.cancel()
                for shadow in self._shadows:
                    self.count(counters.shadow(shadow.name, "unfinished"), shadow.in_flight)
        self.sink.flush(max(1.0, deadline - time.monotonic()))


_RUNNERS: weakref.WeakSet[ShadowRunner] = weakref.WeakSet()


def drain_all(timeout_s: float | None = None) -> dict[str, int]:
    """Settle every shadow runner of this process (the launcher, after the pipeline ended
    with its workers in this process); the counts not yet reported."""
    counts: Counter[str] = Counter()
    for runner in list(_RUNNERS):
        longest = max((s.spec.timeout_s for s in runner._shadows), default=0.0)
        runner.drain(timeout_s if timeout_s is not None else longest + 5)
        counts.update(runner.take_counts())
    return dict(counts)
