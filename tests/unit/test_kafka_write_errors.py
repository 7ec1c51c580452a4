"""Which refused writes are systemic (every record would fail the same way)."""

from __future__ import annotations

import kafka.errors

from transforms.kafka.writer import systemic_write_error


def test_authorization_and_missing_topics_are_systemic() -> None:
    assert systemic_write_error(kafka.errors.TopicAuthorizationFailedError())
    assert systemic_write_error(kafka.errors.UnknownTopicOrPartitionError())


def test_a_refused_producer_id_wrapped_by_kafka_python_is_systemic() -> None:
    # what kafka-python raises for every send of a user who may write to no topic
    error = kafka.errors.KafkaError(
        "Unexpected error in InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError"
    )
    assert systemic_write_error(error) == (
        "ClusterAuthorizationFailedError: the broker refused our producer "
        "(KafkaError: Unexpected error in InitProducerIdResponse: "
        "[Error 31] ClusterAuthorizationFailedError)"
    )


def test_a_record_the_broker_refuses_is_not_systemic() -> None:
    assert systemic_write_error(kafka.errors.MessageSizeTooLargeError()) is None
    assert systemic_write_error(kafka.errors.KafkaError("Unexpected error: CorruptRecord")) is None
    assert systemic_write_error(ValueError("Authorization header")) is None
