"""The commit chain has no holes: many small drains in a row, and follow runs under a
steady producer stopped by SIGTERM (with the CPU contended too), each ending with exit 0
and every offset committed, the commit following the writes as the run goes.

The long soak is a command: ``python -m tests.soak.commit_chain --runs 18 --seconds 60``;
memory under a short CPU is measured by ``python -m tests.bench.contended``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fault_server import FaultServer, Reply
from tests.integration.conftest import (
    CLI,
    KAFKA,
    MakeTask,
    committed_offsets,
    end_offsets,
    fault_provider,
    produce,
    reviews,
    run_job,
)
from tests.soak.commit_chain import follow_run

DRAINS = 30


def test_many_small_drains_in_a_row_each_end_with_every_offset_committed(
    make_task: MakeTask, fault_server: Callable[..., FaultServer]
) -> None:
    server = fault_server(default=Reply.ok())
    failed = []
    for index in range(DRAINS):
        job = make_task([fault_provider(server, "instant")])
        produce(job, reviews(31))  # 11, 10, 10: one partition has the most
        summary = run_job(job.task)
        if summary.exit_code != 0 or committed_offsets(job) != end_offsets(job):
            failed.append((index, summary.exit_code, committed_offsets(job), end_offsets(job)))
    assert not failed, f"{len(failed)} of {DRAINS} drains left offsets uncommitted: {failed}"


PRISM_MIB = 150  # Prism's peak: about 45 MiB now; 829 MiB after 60 s on one CPU before


@pytest.mark.parametrize(
    ("cpus", "rate"), [("0,1", 20), ("0", 60)], ids=["two-cpus-20/s", "one-cpu-60/s"]
)
def test_a_follow_run_commits_as_it_goes_and_a_sigterm_leaves_everything_committed(
    make_task: MakeTask, fault_server: Callable[..., FaultServer], cpus: str, rate: int
) -> None:
    server = fault_server(default=Reply.ok(delay_s=0.2))
    job = make_task([fault_provider(server, "steady")], policy={"max_in_flight": 32})
    wrap = ["taskset", "-c", cpus]  # one CPU: the stage and its Prism share it
    run = follow_run(job, CLI, KAFKA, reviews(50), rate=rate, seconds=20, wrap=wrap)
    assert run.exit_code == 0, run.stderr
    assert run.produced >= rate * 15 and sum(run.end.values()) == run.produced
    assert run.committed == run.end, run.stdout
    assert set(run.settled.values()) == {1}
    assert len(run.settled) == run.produced
    # the commit followed the writes: never behind by more than the window and ~3 s
    assert run.worst_lag <= 0, run.samples
    assert not [line for line in run.stdout.splitlines() if line.strip().startswith("not commit")]
    # memory holds whatever the CPU: nothing piles up in the runner
    prism_mib = max(m[4] for m in run.memory) / 1024
    assert 0 < prism_mib < PRISM_MIB, prism_mib
