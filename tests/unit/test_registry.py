"""The checkpoint registry is user data: a JSON or YAML file, checked at load, used as given."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from samples import event_bytes

from streams.core.processor import PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import EventDecoder
from streams.domain.registry import RegistryError, default_registry_path, load_registry
from streams.settings import load_settings
from streams.worker.metrics import MAX_UNKNOWN_IDS, OTHER_IDS, WorkerMetrics

SHIPPED = json.loads(default_registry_path().read_text())
#: A checkpoint the shipped registry does not have (shared by the registry tests).
NEW_POST = json.loads((Path(__file__).resolve().parents[1] / "data" / "new_post.json").read_text())


def _write(tmp_path, document, suffix=".json"):
    path = tmp_path / f"checkpoints{suffix}"
    path.write_text(yaml.safe_dump(document) if suffix == ".yaml" else json.dumps(document))
    return path


def test_the_shipped_registry_is_valid_and_yaml_reads_the_same(tmp_path):
    shipped = load_registry()
    assert len(shipped) == len(SHIPPED["checkpoints"]) > 0
    assert load_registry(_write(tmp_path, SHIPPED, ".yaml")) == shipped


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"checkpoint_id": "New Post"}, "checkpoint_id must match pattern"),
        ({"tz": "Asia/Nowhere"}, "not a tz database zone"),
        ({"kind": "teleport"}, "kind must be one of"),
        ({"lat": 91}, "lat must be smaller than or equal to 90"),
        ({"country_a": "kz"}, "country_a must match pattern"),
        ({"colour": "red"}, "must not contain"),
    ],
)
def test_a_bad_entry_is_refused_at_load_naming_the_file_and_the_problem(tmp_path, change, words):
    path = _write(tmp_path, {"version": 1, "checkpoints": [{**NEW_POST, **change}]})
    with pytest.raises(RegistryError, match=words) as error:
        load_registry(path)
    assert str(path) in str(error.value)


def test_duplicates_unreadable_and_malformed_files_are_refused(tmp_path):
    with pytest.raises(RegistryError, match="listed twice"):
        load_registry(_write(tmp_path, {"version": 1, "checkpoints": [NEW_POST, NEW_POST]}))
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.json")
    broken = tmp_path / "broken.yaml"
    broken.write_text("checkpoints: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(broken)


def test_the_worker_counts_the_registered_posts_and_dead_letters_the_others(tmp_path):
    path = _write(tmp_path, {"version": 1, "checkpoints": [NEW_POST]})
    settings = load_settings({"CROSSINGS_CHECKPOINTS": str(path)})
    registry = load_registry(settings.checkpoints_file)
    store = LocalStore(tmp_path / "state")
    try:
        processor = PartitionProcessor(
            0, PartitionState(0), store, registry, ["new-post"], EventDecoder(registry)
        )
        now = datetime(2024, 3, 1, 12, tzinfo=UTC)
        values = [
            event_bytes("a", now, checkpoint_id="new-post"),
            event_bytes("b", now, checkpoint_id="zhibek-zholy"),  # shipped, but not in this registry
        ]
        keys = [b"new-post", b"zhibek-zholy"]
        processor.process([SourceRecord(0, i, 0, keys[i], v) for i, v in enumerate(values)], now)
        assert [len(rows) for rows in processor.effects.events.values()] == [1]
        [letter] = processor.effects.dead_letters
        assert (letter.offset, letter.reason) == (1, "unknown_checkpoint")
        assert processor.effects.metrics.unknown_checkpoints == {"zhibek-zholy": 1}
    finally:
        store.close()


def test_unknown_ids_get_a_series_each_up_to_a_bound():
    from collections import Counter

    from prometheus_client import generate_latest

    from streams.core.effects import CommitBatch, MetricDeltas
    from streams.core.task import CommitReport

    metrics = WorkerMetrics()
    deltas = MetricDeltas(unknown_checkpoints=Counter({f"post-{i}": 1 for i in range(MAX_UNKNOWN_IDS + 5)}))
    batch = CommitBatch(0, 1, None, 0, {}, [], [], [], [], deltas, [], [])
    metrics.apply(CommitReport(batch, None, 0.0), 0.0, {})
    text = generate_latest(metrics.registry).decode()
    series = [
        line for line in text.splitlines() if line.startswith("crossings_events_unknown_checkpoint_total{")
    ]
    assert len(series) == MAX_UNKNOWN_IDS + 1
    assert f'checkpoint_id="{OTHER_IDS}"}} 5.0' in text
