"""Ground truth of a generated stream: what was sent, and what must be counted.

Tests, the demo and the benchmarks compare the pipeline against the manifest: expected
counts per (checkpoint, local day, direction), counts per group for the detector, and
the anomaly labels. :class:`load_tests.scenario.generate.Scenario` fills it while the
records stream past; :meth:`Manifest.to_json` is the labels file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from load_tests.scenario.spec import Anomaly

#: (nationality, purpose) breakdown key: checkpoint_id, local_day, direction, nationality, purpose
GroupKey = tuple[str, str, str, str, str]
#: checkpoint_id, local_day (ISO), direction
CountKey = tuple[str, str, str]


@dataclass
class Manifest:
    """Ground truth for a generated stream: what was sent, and what must be counted.

    ``expected_counts`` counts every valid event once (late ones included, duplicates
    and invalid payloads excluded) on the checkpoint's local calendar day, and lists
    every (checkpoint, day, direction) of the window even when the count is zero
    (a closed checkpoint must count 0, not be missing).
    """

    spec: dict[str, Any]
    sent: dict[str, int]
    expected_counts: dict[CountKey, int]
    by_group: dict[GroupKey, int]
    anomalies: tuple[Anomaly, ...]
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    #: Weekly-mean events/day of each anomaly's group under normal conditions.
    anomaly_baselines: dict[str, float] = field(default_factory=dict)

    @property
    def total_records(self) -> int:
        return sum(self.sent.values())

    @property
    def unique_events(self) -> int:
        return sum(self.expected_counts.values())

    def daily_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, local_day, _), count in self.expected_counts.items():
            totals[local_day] = totals.get(local_day, 0) + count
        return dict(sorted(totals.items()))

    def group_series(self, anomaly: Anomaly) -> dict[str, int]:
        """Daily counts of the anomaly's group, over the whole window: what a detector sees."""
        series = dict.fromkeys(self.daily_totals(), 0)
        for (checkpoint_id, local_day, direction, nationality, purpose), count in self.by_group.items():
            if anomaly.matches(checkpoint_id, direction, nationality, purpose):
                series[local_day] = series.get(local_day, 0) + count
        return series

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.spec,
            "sent": {**self.sent, "total": self.total_records},
            "invalid_reasons": self.invalid_reasons,
            "unique_events": self.unique_events,
            "events_per_day": round(self.unique_events / max(1, self.spec["days"]), 1),
            "anomalies": [
                {
                    **anomaly.to_json(),
                    "normal_per_day": round(self.anomaly_baselines.get(anomaly.name, 0.0), 1),
                    "daily_counts": self.group_series(anomaly),
                }
                for anomaly in self.anomalies
            ],
            "expected_counts": [
                {"checkpoint_id": c, "local_day": d, "direction": r, "count": n}
                for (c, d, r), n in sorted(self.expected_counts.items())
            ],
            "by_group_columns": [
                "checkpoint_id",
                "local_day",
                "direction",
                "nationality",
                "purpose",
                "count",
            ],
            "by_group": [[*key, n] for key, n in sorted(self.by_group.items())],
        }
