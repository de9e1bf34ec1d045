"""A registry file edited while the worker runs is picked up at a commit point, without
losing any state; an edit that does not load leaves the registry in use as it was."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from samples import event_bytes

from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.registry import RegistryError, default_registry_path, load_registry
from streams.domain.registry_watch import RegistryWatch
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

SHIPPED = json.loads(default_registry_path().read_text())
#: A checkpoint the shipped registry does not have (shared by the registry tests).
NEW_POST = json.loads((Path(__file__).resolve().parents[1] / "data" / "new_post.json").read_text())
WITH_NEW_POST = {**SHIPPED, "checkpoints": [*SHIPPED["checkpoints"], NEW_POST]}
START = datetime(2024, 3, 1, 6, tzinfo=UTC)


def write(path: Path, document: dict | str) -> None:
    """Replace the file as an editor or a ConfigMap update would, with a new mtime."""
    text = document if isinstance(document, str) else json.dumps(document)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_the_watch_reports_each_version_once_and_refuses_a_broken_one_once(tmp_path):
    path = tmp_path / "checkpoints.json"
    write(path, SHIPPED)
    watch = RegistryWatch(path)
    assert watch.poll() is None
    write(path, WITH_NEW_POST)
    assert watch.poll() is None  # changed since the last look: maybe still being written
    assert "new-post" in watch.poll()
    assert watch.poll() is None
    write(path, WITH_NEW_POST)  # touched, same contents
    assert watch.poll() is None and watch.poll() is None
    write(path, "{not json")
    assert watch.poll() is None
    with pytest.raises(RegistryError, match=str(path)):
        watch.poll()
    assert watch.poll() is None  # said once, not every second
    path.unlink()
    with pytest.raises(RegistryError, match="cannot read"):
        watch.poll()
    assert watch.poll() is None
    write(path, SHIPPED)
    assert watch.poll() is None
    assert "new-post" not in watch.poll()


def test_a_half_written_file_is_not_read(tmp_path):
    path = tmp_path / "checkpoints.yaml"
    write(path, json.dumps(SHIPPED))
    watch = RegistryWatch(path)
    full = yaml.safe_dump(WITH_NEW_POST)
    write(path, full[: full.index("- checkpoint_id: ala-airport") + 1000])  # mid-write
    assert watch.poll() is None
    write(path, full)  # the writer finished before the next look
    assert watch.poll() is None
    assert "new-post" in watch.poll()


def record(partition: int, offset: int, event_id: str, checkpoint_id: str, minutes: int) -> SourceRecord:
    at = START + timedelta(minutes=minutes)
    value = event_bytes(event_id, at, checkpoint_id=checkpoint_id)
    return SourceRecord(
        partition, offset, round(at.timestamp() * 1000) + 60_000, checkpoint_id.encode(), value
    )


def test_a_new_registry_counts_a_new_post_and_keeps_every_count_so_far(tmp_path):
    partitions = 2
    outputs = LocalOutputs()
    core = Engine(
        EngineConfig(partitions, tmp_path / "state"), load_registry(), LakeSink(tmp_path / "d"), outputs
    )
    home = partition_for(b"new-post", partitions)
    old = next(cid for cid in load_registry() if partition_for(cid.encode(), partitions) == home)
    offsets = iter(range(100))

    async def scenario() -> tuple[dict, dict]:
        first = [record(home, next(offsets), f"a{n}", old, n) for n in range(5)]
        first.append(record(home, next(offsets), "p0", "new-post", 6))
        await core.process(first)
        await core.commit()
        with pytest.raises(RuntimeError):  # only between commits
            await core.process([record(home, next(offsets), "a5", old, 7)])
            core.use_registry(load_registry())
        await core.commit()
        core.use_registry({**load_registry(), **{"new-post": _checkpoint()}})
        await core.process(
            [record(home, next(offsets), f"a{n}", old, n) for n in range(6, 9)]
            + [record(home, next(offsets), f"p{n}", "new-post", 10 + n) for n in range(1, 4)]
        )
        await core.commit()
        processor = core.tasks[home].processor
        await core.close(list(core.tasks))
        return processor.today_counts(), processor.own_checkpoints

    counts, owned = asyncio.run(scenario())
    assert "new-post" in owned
    # 9 events of the old post over both registries, none lost in the switch; the new post's
    # event before it was registered went to the dead letters, the three after are counted.
    assert counts[(old, "entry")] == 9
    assert counts[("new-post", "entry")] == 3
    assert [(d.reason, json.loads(d.value)["event_id"]) for d in outputs.dead_letters] == [
        ("unknown_checkpoint", "p0")
    ]


def _checkpoint():
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"registry-{os.getpid()}.json"
    path.write_text(json.dumps(WITH_NEW_POST))
    try:
        return load_registry(path)["new-post"]
    finally:
        path.unlink()
