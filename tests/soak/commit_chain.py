"""Soak the commit chain: follow runs under a steady producer, each stopped by SIGTERM.

Each run drives the real CLI (``llm-enrich run --follow``, Prism, the real broker) against
a fault server with a fixed latency, while a producer writes ``rate`` records a second to a
3-partition topic. Every ``SAMPLE_S`` it samples what the stage has written (outputs and
dead letters) and what the group has committed; then it sends one SIGTERM and checks:

- the run exits 0, and the group's committed offsets equal the topic's end offsets;
- every input offset has exactly one output or dead letter;
- during the run, the commit never trails the writes by more than the in-flight window
  plus what was written in the last ``LAG_S`` seconds (the commit interval, plus slack for
  a loaded machine): a hole in a partition's chain shows as a commit that stops moving.

``python -m tests.soak.commit_chain --runs 10 --seconds 60 [--contended]`` is the long soak
(``--contended``: two CPU-bound processes run beside the stage). The integration tests run
a short one (``tests/integration/test_commit_chain.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipelines.topics import topic_records
from transforms.core.job import Job

SAMPLE_S = 0.5
LAG_S = 3.0  # the commit interval (1 s) plus slack for a loaded 2-core machine


@dataclass
class FollowRun:
    exit_code: int
    produced: int
    committed: dict[int, int | None]
    end: dict[int, int]
    settled: Counter[tuple[int, int]]
    worst_lag: int  # the most written records not covered by a commit, beyond the bound
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    # (seconds since start, produced, written, launcher RSS KiB, Prism RSS KiB)
    memory: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        every_offset = {(p, o) for p, end in self.end.items() for o in range(end)}
        return (
            self.exit_code == 0
            and self.committed == self.end
            and set(self.settled) == every_offset
            and set(self.settled.values()) == {1}
            and self.worst_lag <= 0
        )


def _ends(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    return {tp.partition: o for tp, o in consumer.end_offsets(tps).items()} if tps else {}


class _Sampler:
    """Written (outputs + dead letters) and committed totals, as time goes."""

    def __init__(self, job: Job, servers: str) -> None:
        kafka = job.task.kafka
        self._topics = (kafka.output_topic, kafka.dead_letter_topic)
        self._input = kafka.input_topic
        self._plain = KafkaConsumer(bootstrap_servers=servers)
        self._group = KafkaConsumer(
            bootstrap_servers=servers, group_id=job.task.consumer_group, enable_auto_commit=False
        )

    def written(self) -> int:
        return sum(sum(_ends(self._plain, topic).values()) for topic in self._topics)

    def committed(self) -> dict[int, int | None]:
        partitions = sorted(self._plain.partitions_for_topic(self._input) or [])
        return {p: self._group.committed(TopicPartition(self._input, p)) for p in partitions}

    def close(self) -> None:
        self._plain.close()
        self._group.close(autocommit=False)


def _produce_steadily(
    servers: str,
    topic: str,
    values: list[bytes],
    rate: float,
    stop: threading.Event,
    sent: list[int],
) -> None:
    """Write ``rate`` records a second until ``stop``; ``sent[0]`` counts them."""
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        while sent[0] < due:
            producer.send(topic, value=values[sent[0] % len(values)], partition=sent[0] % 3)
            sent[0] += 1
        time.sleep(0.02)
    producer.flush(timeout=30)
    producer.close()


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(child) for child in f.read().split()]
    return found


def _prism_rss_kib(pid: int) -> int:
    for child in _children(pid):
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as f:
            if b"prism" in f.read():
                return _rss_kib(child)
    return 0


def _worst_lag(samples: list[tuple[float, int, int]], in_flight: int) -> int:
    """How far the commit ever trailed the writes beyond the bound: positive means a stall.
    A sample's commit must cover what was written ``LAG_S`` earlier, less the window."""
    worst = -(10**9)
    for when, _, committed in samples:
        earlier = [written for t, written, _ in samples if t <= when - LAG_S]
        if earlier:
            worst = max(worst, earlier[-1] - in_flight - committed)
    return worst


def follow_run(
    job: Job,
    cli: list[str],
    servers: str,
    values: list[bytes],
    *,
    rate: float,
    seconds: float,
    wrap: Sequence[str] = (),
) -> FollowRun:
    """One follow run under a steady producer, stopped by one SIGTERM after ``seconds``.
    ``wrap``: a command prefix that execs the stage (``taskset -c 0``: one CPU)."""
    assert job.task.source_path is not None
    process = subprocess.Popen(
        [*wrap, *cli, "run", "--task", str(job.task.source_path), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    sampler, stop, samples = _Sampler(job, servers), threading.Event(), []
    memory: list[tuple[float, int, int, int, int]] = []
    produced = [0]
    producer = threading.Thread(
        target=_produce_steadily,
        args=(servers, job.task.kafka.input_topic, values, rate, stop, produced),
    )
    try:
        producer.start()
        started = time.monotonic()
        while time.monotonic() - started < seconds and process.poll() is None:
            committed = sum(v or 0 for v in sampler.committed().values())
            written = sampler.written()
            samples.append((time.monotonic(), written, committed))
            memory.append(
                (
                    time.monotonic() - started,
                    produced[0],
                    written,
                    _rss_kib(process.pid),
                    _prism_rss_kib(process.pid),
                )
            )
            time.sleep(SAMPLE_S)
        stop.set()
        producer.join()
        time.sleep(1.0)  # the last records reach the stage before it is told to stop
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=180)
    finally:
        stop.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    committed, end = sampler.committed(), _ends(sampler._plain, job.task.kafka.input_topic)
    sampler.close()
    return FollowRun(
        exit_code=process.returncode,
        produced=produced[0],
        committed=committed,
        end=end,
        settled=settled_coordinates(job),
        worst_lag=_worst_lag(samples, job.task.policy.max_in_flight),
        samples=samples,
        memory=memory,
        stdout=stdout,
        stderr=stderr,
    )


def settled_coordinates(job: Job) -> Counter[tuple[int, int]]:
    """(partition, offset) of every input that has an output or a dead letter, counted."""
    found: Counter[tuple[int, int]] = Counter()
    for dead_letters in (False, True):
        for record in topic_records(job, dead_letters=dead_letters):
            headers = record["headers"]
            found[
                int(headers["llm_enrich.source.partition"]),
                int(headers["llm_enrich.source.offset"]),
            ] += 1
    return found


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def contended_cpu(processes: int = 2) -> Iterator[None]:
    """CPU-bound processes beside the stage, for as long as the block runs."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()


def main() -> None:  # pragma: no cover - a documented command, not a test
    from tests.integration.conftest import CLI, KAFKA, reviews
    from tests.soak.tasks import follow_job

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args()
    bad = 0
    with follow_job() as make, contended_cpu() if args.contended else contextlib.nullcontext():
        for index in range(args.runs):
            run = follow_run(make(), CLI, KAFKA, reviews(50), rate=args.rate, seconds=args.seconds)
            bad += not run.ok
            print(
                f"run {index}: exit {run.exit_code}, produced {run.produced}, "
                f"committed == end: {run.committed == run.end}, "
                f"settled once: {set(run.settled.values()) == {1}}, "
                f"worst lag beyond the bound: {run.worst_lag} -> {'ok' if run.ok else 'FAILED'}",
                flush=True,
            )
    print(f"{args.runs - bad} of {args.runs} runs ok")


if __name__ == "__main__":  # pragma: no cover
    main()
