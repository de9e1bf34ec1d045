"""Two workers in one consumer group, the second joining mid-replay: the partitions are
split by a real rebalance, and the counts and the history still equal the ground truth."""

from __future__ import annotations

import pytest

from load_tests.harness import WorkerProcess, free_port, scrape, wait_committed, wait_group_stable
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams import query
from streams.ops.topics import ensure_topics
from streams.query.scan import DuckLakeRoot
from streams.settings import load_settings

pytestmark = pytest.mark.integration

# One checkpoint on each of the 4 partitions (keys hash by murmur2), so both workers get work.
SPEC = ScenarioSpec(days=10, checkpoints=("nur-zholy", "korday", "dostyk", "ala-airport"))


def test_a_second_worker_takes_over_partitions_without_losing_or_doubling_anything(
    kafka_bootstrap, namespace, tmp_path, folder_pg_lake
):
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        # Two workers, one lake: DuckLake with a PostgreSQL catalog (the default's SQLite
        # catalog takes one writing process).
        **folder_pg_lake,
    }
    settings = load_settings(env)
    ensure_topics(settings)
    scenario = Scenario(SPEC)
    records = list(scenario.records())
    half = len(records) // 2
    first = WorkerProcess(env, free_port(), tmp_path / "worker-a.log")
    second = WorkerProcess(env, free_port(), tmp_path / "worker-b.log")
    first.start(timeout=300)
    try:
        replay(records[:half], kafka_bootstrap, settings.topics.events, progress=False)
        first.wait_handled(half // 2, timeout=300)  # mid-stream when the second one joins
        second.start(timeout=300)
        wait_group_stable(kafka_bootstrap, settings.app_id, members=2, timeout=120)
        replay(records[half:], kafka_bootstrap, settings.topics.events, progress=False)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=600)
        handled = [scrape(w.metrics_url) for w in (first, second)]
    finally:
        codes = [second.stop(), first.stop()]
    assert codes == [0, 0], (tmp_path / "worker-a.log").read_text()[-3000:]

    manifest = scenario.manifest
    processed = [h.get("crossings_events_processed_total", 0.0) for h in handled]
    assert all(n > 0 for n in processed), processed  # both really worked
    assert sum(processed) == manifest.unique_events  # a re-delivered message is a duplicate, not a count
    root = DuckLakeRoot(settings.lake, settings.data_dir)
    totals = {
        (row["checkpoint_id"], row["local_day"].isoformat(), row["direction"]): row["total"]
        for row in query.daily_totals(root)
        if row["total"]  # days without crossings inside a span are listed at 0 (test_report)
    }
    assert totals == {key: n for key, n in manifest.expected_counts.items() if n}
    assert query.events_count(root) == manifest.unique_events
    assert query.reconcile(root)["agree"]
