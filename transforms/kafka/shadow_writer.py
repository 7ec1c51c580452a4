"""Write shadow comparisons to ``kafka.shadow_topic`` from a thread of their own.

The event loop hands each comparison to a bounded queue and goes on (``put`` never
blocks: a full queue drops the comparison, counted ``shadow.write_dropped``); this thread
encodes it (``llm_enrich.ShadowComparison``, single-object framing) and sends it. A
missing topic or a broker that is down costs shadow comparisons (``shadow.write_failed``),
never a record: the producer is separate from the output writers and nothing waits on it
but ``flush`` at the end of a run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from schemas import shadow_comparison_schema
from transforms.core import counters
from transforms.core.config.task import KafkaSpec
from transforms.core.formats import framing
from transforms.kafka.client import common_settings

__all__ = ["ShadowWriter"]

log = logging.getLogger("llm_enrich")
QUEUE_MAX = 10_000
MAX_BLOCK_MS = 10_000  # metadata for a missing topic: give up on this record after 10 s

Count = Callable[[str, int], None]


class ShadowWriter:
    def __init__(self, spec: KafkaSpec, topic: str, count: Count) -> None:
        self._spec, self._topic, self._count = spec, topic, count
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_MAX)
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="llm-enrich-shadow", daemon=True)
        self._thread.start()

    def put(self, datum: dict[str, Any], key: bytes | None) -> bool:
        try:
            self._queue.put_nowait((datum, key))
            return True
        except queue.Full:
            return False

    def flush(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) until what was put is sent and acknowledged."""
        done = threading.Event()
        try:
            self._queue.put((done, timeout_s), timeout=timeout_s)
        except queue.Full:
            return
        done.wait(timeout_s)

    def _run(self) -> None:
        producer: KafkaProducer | None = None
        schema = shadow_comparison_schema()
        while True:
            item, extra = self._queue.get()
            try:
                if isinstance(item, threading.Event):
                    if producer is not None:
                        producer.flush(timeout=extra)
                    item.set()
                    continue
                value = framing.encode(item, schema, "single-object")
                if producer is None:
                    producer = KafkaProducer(
                        **common_settings(self._spec),
                        acks="all",
                        linger_ms=20,
                        max_block_ms=MAX_BLOCK_MS,
                    )
                future = producer.send(self._topic, key=extra, value=value)
                future.add_callback(lambda _: self._count(counters.SHADOW_WRITTEN, 1))
                future.add_errback(self._failed)
            except Exception as exc:  # encode, connect or send: this comparison is lost
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._count(counters.SHADOW_WRITE_FAILED, 1)
        if not self._warned:  # once per process: the summary has the count
            self._warned = True
            log.warning("shadow comparisons not written to %s: %s", self._topic, exc)
