"""A stateful step on Prism (on a worker pool: ``llm-enrich run --workers N``; in batch:
replay) sees every earlier bundle's state for its key, even when a bundle stalls (as the
commit step does on a Kafka commit, or on a worker's first bundle).

Prism (2.77) splits a bundle that made no progress for a tick and runs the rest as a new
bundle at once, releasing its keys while the first part still holds them: two bundles of
one key ran together and the last to finish overwrote the other's state. The commit step
lost a partition's progress that way (a drain ended with settled offsets uncommitted,
exit 1). ``pipelines.runner.pipeline_options`` turns those splits off for worker pools and
batch runs (replay's commit step); without that the count stopped short of every element.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines.runner import pipeline_options, prism_server, worker_pool

ELEMENTS = 24
SEEN = ReadModifyWriteStateSpec("seen", VarIntCoder())
SEEN_STATE = beam.DoFn.StateParam(SEEN)
STALL_EVERY, STALL_S = 6, 0.5  # a stall of several progress ticks (100 ms each)


class _CountPerKey(beam.DoFn):
    """The number of elements its key has seen, from state; stalls now and then."""

    def process(self, element: tuple[str, int], seen: Any = SEEN_STATE) -> Iterator[int]:
        count = (seen.read() or 0) + 1
        seen.write(count)
        Metrics.distribution("test", "seen").update(count)
        if element[1] % STALL_EVERY == 0:
            time.sleep(STALL_S)
        yield count


def _counted(options: PipelineOptions) -> Any:
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | beam.Create([("partition-0", index) for index in range(ELEMENTS)])
        | beam.ParDo(_CountPerKey())
    )
    result = pipeline.run()
    result.wait_until_finish()
    return result


def test_a_key_s_state_survives_a_stalled_bundle_on_a_worker_pool() -> None:
    with prism_server() as endpoint, worker_pool() as pool:
        result = _counted(pipeline_options([], streaming=True, job_endpoint=endpoint, pool=pool))
    _assert_every_element_counted(result)


def test_a_key_s_state_survives_a_stalled_bundle_in_batch() -> None:
    """Replay's options: batch, Prism's LOOPBACK workers (9 and 15 of 24 before)."""
    _assert_every_element_counted(_counted(pipeline_options([], streaming=False)))


def _assert_every_element_counted(result: Any) -> None:
    seen = result.metrics().query(MetricsFilter().with_name("seen"))["distributions"]
    assert seen, "no metric: nothing was processed"
    counted = seen[0].committed
    assert (counted.count, counted.max) == (ELEMENTS, ELEMENTS), counted
