"""What the decompression bound costs on the read path: aiokafka's ``PartitionRecords`` over
one fetch response (5,000 records in 25 batches, uncompressed and gzip), for a topic with
the bound and one without, interleaved 40 times in one process (a noisy machine slows both).

    python -m load_tests.bench_bounded_batches
"""

from __future__ import annotations

import json
import statistics
import time

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.ops.bounded_batches import bound_topic

RECORDS, BATCHES = 5000, 25


def batch(base: int, codec: int, size: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=2**30,
    )
    for i in range(size):
        event = {
            "version": 1,
            "event_id": f"ev-{base + i:09d}",
            "checkpoint_id": ("jibek-joly", "korday")[i % 2],
            "direction": "entry",
            "occurred_at": "2024-03-01T09:15:03.123+05:00",
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
        builder.append(
            i,
            timestamp=1_700_000_000_000 + i,
            key=b"jibek-joly",
            value=json.dumps(event).encode(),
            headers=[],
        )
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")
    return bytes(data)


def read(topic: str, data: bytes) -> float:
    started = time.perf_counter()
    records = fetcher.PartitionRecords(
        TopicPartition(topic, 0), MemoryRecords(data), [], 0, None, None, True, 0
    )
    assert sum(1 for _ in records) == RECORDS
    return time.perf_counter() - started


def main() -> None:
    bound_topic("bounded", 32 * 2**20)
    per = RECORDS // BATCHES
    for codec, name in ((0, "none"), (1, "gzip")):
        data = b"".join(batch(k * per, codec, per) for k in range(BATCHES))
        plain, bounded = [], []
        for _ in range(40):
            plain.append(read("plain", data))
            bounded.append(read("bounded", data))
        a, b = statistics.median(plain), statistics.median(bounded)
        print(
            f"{name}: {RECORDS:,} records in {BATCHES} batches, median of 40: "
            f"without the bound {a * 1e3:.2f} ms, with it {b * 1e3:.2f} ms, ratio {b / a:.3f}"
        )


if __name__ == "__main__":
    main()
