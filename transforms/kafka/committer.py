"""Commit consumer-group offsets, from inside the pipeline, after the writes."""

from __future__ import annotations

from collections.abc import Mapping

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.core.task import KafkaSpec
from transforms.kafka.client import consumer

__all__ = ["commit_offsets"]


def commit_offsets(spec: KafkaSpec, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    if not offsets:
        return
    client = consumer(spec, group)
    try:
        client.commit(
            offsets={
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            }
        )
    finally:
        client.close(autocommit=False)
