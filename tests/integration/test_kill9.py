"""Kill -9 workers mid-stream; after they drain, the lake equals an oracle of what was sent.

The long version (300,000 records, 5 kills) is ``python -m load_tests.kill9``.
"""

from __future__ import annotations

import pytest

from load_tests.kill9 import run
from load_tests.scenario import ScenarioSpec

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", [1, 2])
def test_lake_is_exact_after_sigkills(kafka_bootstrap, tmp_path, workers):
    outcome = run(
        kafka_bootstrap,
        tmp_path,
        spec=ScenarioSpec(days=10),
        kills=3,
        workers=workers,
        rate=3000.0,
        seed=workers,
    )
    assert outcome.kills == 3
    assert outcome.event_rows == outcome.unique_events, outcome
    assert outcome.distinct_event_ids == outcome.event_rows, outcome
    assert outcome.day_mismatches == {}, outcome
