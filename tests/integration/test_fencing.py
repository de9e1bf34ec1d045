"""A worker whose partition was taken over is fenced by the real broker, and lets it go.

Two engines with Kafka outputs (as two worker processes would be) share a partition: the
second one opens it, which bumps the transactional id's epoch; the first one's next
commit is refused by the broker before it writes any file, and it lets the partition go
instead of opening a new producer (which would fence the new owner back). The new owner
then commits.
"""

from __future__ import annotations

import asyncio

import pytest

from load_tests.crash_test import make_records
from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.registry import load_registry
from streams.ops.topics import changelog_topic, ensure_topics
from streams.settings import load_settings
from streams.sinks.parquet.sink import LakeSink
from streams.worker.kafka_outputs import KafkaOutputs

pytestmark = pytest.mark.integration

PARTITIONS = 2


def partition_zero_records(count: int) -> list[SourceRecord]:
    records = []
    for record in make_records(None, days=2)[0]:
        if record.kind == "valid" and partition_for(record.key, PARTITIONS) == 0:
            arrived_ms = round(record.arrival_ts * 1000)  # events may not be stamped after they arrive
            records.append(SourceRecord(0, len(records), arrived_ms, record.key, record.value))
            if len(records) == count:
                return records
    raise AssertionError("not enough records")


def test_a_fenced_owner_lets_the_partition_go_and_the_new_owner_commits(kafka_bootstrap, namespace, tmp_path):
    settings = load_settings(
        {
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CROSSINGS_APP_ID": namespace,
            "CROSSINGS_TOPIC_NAMESPACE": namespace,
            "CROSSINGS_PARTITIONS": str(PARTITIONS),
        }
    )
    ensure_topics(settings)
    registry = load_registry()
    records = partition_zero_records(40)

    def engine(name: str) -> tuple[Engine, KafkaOutputs]:
        outputs = KafkaOutputs(
            settings.bootstrap,
            group_id=settings.app_id,
            events_topic=settings.topics.events,
            changelog_topic=changelog_topic(settings),
            dead_letter_topic=settings.topics.dead_letter,
            alerts_topic=settings.topics.alerts,
            transactional_prefix=settings.app_id,
        )
        config = EngineConfig(PARTITIONS, tmp_path / name / "state")
        return Engine(config, registry, LakeSink(tmp_path / "data"), outputs), outputs

    async def go() -> None:
        old, old_outputs = engine("old")
        new, new_outputs = engine("new")
        try:
            await old.process(records[:10])
            assert [r.batch.last_offset for r in await old.commit()] == [9]
            await old.process(records[10:20])
            await new.process(records[:30])  # opens partition 0: the old owner is fenced
            assert await old.commit() == []
            assert old.take_fenced() == {0}
            assert 0 not in old.tasks
            assert 0 not in old_outputs._producers  # let go, not reopened
            reports = await new.commit()  # the new owner's epoch is still the latest
            assert [(r.batch.first_offset, r.batch.last_offset) for r in reports] == [(10, 29)]
            assert new.take_fenced() == set()
            # The old owner was refused before it wrote its commit's files: only the new
            # owner's second commit is in the lake.
            names = {path.name for path in (tmp_path / "data" / "events").glob("*/*/p000-*.parquet")}
            assert {name.rsplit("-", 2)[-2:][0] for name in names} == {"o0", "o10"}
            assert not any(name.endswith("-o10-19.parquet") for name in names)
        finally:
            await old.close(list(old.tasks))
            await new.close(list(new.tasks))
            await old_outputs.close()
            await new_outputs.close()

    asyncio.run(go())
