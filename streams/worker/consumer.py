"""Faust's consumer, reading the events topic ``read_committed``.

Faust reads committed-only records only in its own exactly-once mode, which this worker
does not use (its transactions are per partition, in ``kafka_outputs.py``). But the events
topic holds transactional records too: the copies of mis-keyed events that a partition
forwards inside its commit's transaction, and the events of any producer that writes in
transactions. Read uncommitted, a commit aborted by a crash would leave its forwarded
copies to be counted, and then counted again when the batch is forwarded anew.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer


class ReadCommittedConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its Fetcher when the consumer starts, which is later.
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


def read_committed(app: faust.App) -> None:
    """Make ``app``'s consumer (created lazily, after this) read committed records only."""
    app.transport.Consumer = ReadCommittedConsumer  # type: ignore[misc]
