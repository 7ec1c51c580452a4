"""Headers as a Kafka consumer sees them: input headers travel to the output, and dead
letters carry every header Kafka Connect's ``DeadLetterQueueReporter`` writes."""

from __future__ import annotations

import pkgutil
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from tests.fault_server import Reply
from tests.integration.conftest import KAFKA, MakeTask, fault_provider, reviews, run_job
from transforms.core.job import Job

# As org.apache.kafka.connect.runtime.errors.DeadLetterQueueReporter defines them
# (ERROR_HEADER_PREFIX = "__connect" + ".errors", each name joined with ".").
CONNECT_DLQ_HEADERS = {
    f"__connect.errors.{name}"
    for name in (
        "topic",
        "partition",
        "offset",
        "connector.name",
        "task.id",
        "stage",
        "class.name",
        "exception.class.name",
        "exception.message",
        "exception.stacktrace",
    )
}

INPUT_HEADERS = [
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("tenant", b"acme"),
    ("tenant", b"acme-eu"),  # Kafka allows a name twice; both travel, in order
    ("origin", b""),
    ("llm_enrich.provider", b"forged"),  # the stage's own namespace: never copied
    ("__connect.errors.stage", b"forged"),  # an earlier failure's: kept on outputs only
]
COPIED = [*INPUT_HEADERS[:4], INPUT_HEADERS[5]]


def _produce_with_headers(job: Job, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
    for index, value in enumerate(values):
        producer.send(job.task.kafka.input_topic, value, partition=index % 3, headers=INPUT_HEADERS)
    producer.flush(timeout=30)
    producer.close()


def _headers_on(topic: str) -> list[list[tuple[str, bytes]]]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    try:
        return [list(message.headers) for message in consumer]
    finally:
        consumer.close()


def _names(headers: list[tuple[str, bytes]]) -> list[str]:
    return [name for name, _ in headers]


def test_input_headers_reach_outputs_and_dead_letters(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "only")])
    _produce_with_headers(job, [*reviews(4), b"\x00 not avro"])

    summary = run_job(job.task)
    assert summary.get("written.output") == 4 and summary.dead_by_stage == {"decode": 1}

    outputs = _headers_on(job.task.kafka.output_topic)
    assert len(outputs) == 4
    for headers in outputs:
        assert headers[:5] == COPIED
        assert dict(headers)["llm_enrich.provider"] == b"only"
        assert _names(headers).count("llm_enrich.provider") == 1

    [dead] = _headers_on(job.task.kafka.dead_letter_topic)
    assert dead[:4] == INPUT_HEADERS[:4]  # the original's headers first, as Connect does
    connect = {name: value.decode() for name, value in dead if name.startswith("__connect.")}
    assert set(connect) == CONNECT_DLQ_HEADERS
    assert _names(dead).count("__connect.errors.stage") == 1
    assert connect["__connect.errors.stage"] == "decode"
    assert connect["__connect.errors.connector.name"] == job.name
    assert connect["__connect.errors.topic"] == job.task.kafka.input_topic
    assert connect["__connect.errors.exception.class.name"] == "DecodeError"
    assert pkgutil.resolve_name(connect["__connect.errors.class.name"]).__name__ == "InputDecoder"
    assert connect["__connect.errors.task.id"].rsplit(":", 1)[1].isdigit()
    trace = connect["__connect.errors.exception.stacktrace"]
    assert trace.startswith("transforms.core.errors.DecodeError: ")
    assert "/work/" not in trace and "/root/" not in trace and len(trace) <= 4096


def test_input_headers_can_be_allow_listed_or_dropped(
    make_task: MakeTask, fault_server: Any
) -> None:
    server = fault_server(default=Reply.ok())
    seen = {}
    for setting in (["trace*", "origin"], "none"):
        job = make_task([fault_provider(server, "only")], output={"input_headers": setting})
        _produce_with_headers(job, reviews(2))
        assert run_job(job.task).get("written.output") == 2
        outputs = _headers_on(job.task.kafka.output_topic)
        assert len(outputs) == 2
        seen[str(setting)] = {tuple(n for n in _names(h) if "." not in n) for h in outputs}
    assert seen == {"['trace*', 'origin']": {("traceparent", "origin")}, "none": {()}}


def test_librdkafka_clients_see_the_same_headers(make_task: MakeTask, fault_server: Any) -> None:
    """Confluent's client (librdkafka) writes the input, null header value included, and
    reads the output back: the headers it set are there, the null one as an empty value."""
    from confluent_kafka import Consumer, Producer

    server = fault_server(default=Reply.ok())
    job = make_task([fault_provider(server, "only")])
    producer = Producer({"bootstrap.servers": KAFKA, "acks": "all"})
    sent = [("traceparent", b"00-abc-01"), ("empty", None), ("tenant", b"acme")]
    for value in reviews(3):
        producer.produce(job.task.kafka.input_topic, value, headers=sent)
    assert producer.flush(30) == 0
    assert run_job(job.task).get("written.output") == 3

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"{job.name}-check",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([job.task.kafka.output_topic])
    received = []
    try:
        while len(received) < 3:
            message = consumer.poll(10)
            assert message is not None, "the output topic has fewer than 3 records"
            assert message.error() is None, message.error()
            received.append(message.headers())
    finally:
        consumer.close()
    for headers in received:
        assert headers[:3] == [("traceparent", b"00-abc-01"), ("empty", b""), ("tenant", b"acme")]
        assert dict(headers)["llm_enrich.provider"] == b"only"
