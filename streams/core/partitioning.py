"""Which partition a checkpoint's events land on: Kafka's default partitioner.

The events topic is keyed by ``checkpoint_id``; Kafka's clients (Java, kafka-python,
librdkafka's murmur2 mode) put a key on ``murmur2(key) & 0x7fffffff % partitions``. The
core uses it to know every checkpoint a partition owns, including ones that send
nothing (a closed crossing must still be judged), and ``crossings replay`` uses it to
route file records as a producer would have.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.partitioner.default import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def checkpoints_by_partition(checkpoint_ids: Iterable[str], partitions: int) -> dict[int, list[str]]:
    owned: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for checkpoint_id in sorted(checkpoint_ids):
        owned[partition_for(checkpoint_id.encode(), partitions)].append(checkpoint_id)
    return owned
