"""One checkpoint's traffic, resolved for generation: cells, weekly and daily rhythm.

:class:`CheckpointModel` turns a profile (:mod:`load_tests.scenario.profiles`) into
cells, each (nationality, purpose, mode, outcome) with its rate and its JSON members
rendered in advance, once per scenario, and answers how many events of each cell a
local day should have, anomalies included. It says what traffic should look like; the
random drawing of actual events is :mod:`load_tests.scenario.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import accumulate

from load_tests.scenario.profiles import HEADLINE_CHECKPOINT, PROFILES, Mix, fallback_profile
from load_tests.scenario.spec import Anomaly, ScenarioSpec
from streams.domain.registry import Checkpoint

DIRECTIONS = ("entry", "exit")


# Busier Mondays and Fridays, quiet Sundays on the roads; airports peak on Fridays. Each
# list averages 1.0 so the volumes in profiles.py stay the weekly means.
_WEEKDAY_FACTORS: dict[str, tuple[float, ...]] = {
    "road": (1.12, 1.00, 0.97, 0.99, 1.14, 1.00, 0.78),
    "rail": (1.10, 1.05, 1.00, 1.00, 1.10, 0.95, 0.80),
    "airport": (1.05, 0.95, 0.92, 0.98, 1.12, 0.98, 1.00),
}

# Relative volume per local wall-clock hour 00..23. Roads sleep at night and peak in the
# morning; trains come in waves; airports have night banks of long-haul flights.
_HOUR_WEIGHTS: dict[str, tuple[float, ...]] = {
    "road": (2, 1.5, 1, 1, 1.5, 3, 6, 9, 11, 11, 10, 9, 8, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2.5, 2),
    "rail": (1, 1, 1, 1, 1, 1, 2, 4, 8, 10, 6, 3, 2, 3, 6, 9, 8, 4, 2, 1, 1, 1, 1, 1),
    "airport": (6, 7, 8, 6, 3, 2, 3, 5, 6, 6, 5, 5, 5, 6, 6, 5, 5, 6, 7, 7, 6, 6, 5, 5),
}


def _modes(kind: str, purpose: str) -> tuple[tuple[str, float], ...]:
    if kind == "airport":
        return (("air", 1.0),)
    if kind == "rail":
        return (("rail", 0.7), ("truck", 0.15), ("car", 0.1), ("bus", 0.05))
    if purpose == "business":
        return (("truck", 0.35), ("car", 0.35), ("pedestrian", 0.15), ("bus", 0.15))
    if purpose == "labour":
        return (("pedestrian", 0.55), ("bus", 0.3), ("car", 0.15))
    if purpose == "transit":
        return (("bus", 0.5), ("car", 0.3), ("pedestrian", 0.2))
    return (("pedestrian", 0.4), ("car", 0.4), ("bus", 0.2))


def _outcomes(direction: str, nationality: str, purpose: str, home: str) -> tuple[tuple[str, float], ...]:
    """Enforcement happens at the border too: refusals on entry, deportations on exit."""
    if nationality == home:  # own citizens are not refused; rarely detained
        return (("admitted", 0.999), ("detained", 0.001))
    if direction == "exit":
        return (("admitted", 0.99), ("deported", 0.008), ("detained", 0.002))
    if purpose == "refugee":
        return (("admitted", 0.7), ("refused", 0.1), ("detained", 0.2))
    if nationality == "TKM":  # visa regime
        return (("admitted", 0.95), ("refused", 0.04), ("detained", 0.01))
    return (("admitted", 0.985), ("refused", 0.011), ("detained", 0.004))


@dataclass(frozen=True, slots=True)
class Cell:
    """One (nationality, purpose, mode, outcome) combination and its share of traffic."""

    nationality: str
    purpose: str
    mode: str
    outcome: str
    rate: float  # events/day at weekday factor 1, before anomalies
    fragment: str  # the JSON members for these four fields, pre-rendered for speed


class CheckpointModel:
    """Static traffic description of one checkpoint, resolved once per scenario."""

    def __init__(self, checkpoint: Checkpoint, spec: ScenarioSpec) -> None:
        self.checkpoint = checkpoint
        self.checkpoint_id = checkpoint.checkpoint_id
        self.zone = checkpoint.tz
        kind = checkpoint.kind if checkpoint.kind in _HOUR_WEIGHTS else "road"
        self.kind = kind
        self.weekday = _WEEKDAY_FACTORS[kind]
        self.hour_cum = list(accumulate(_HOUR_WEIGHTS[kind]))
        self.scale = 1.0 if self.checkpoint_id == HEADLINE_CHECKPOINT else spec.other_scale
        profile = PROFILES.get(self.checkpoint_id) or fallback_profile(checkpoint)
        self.cells = {
            direction: self._cells(direction, getattr(profile, direction)) for direction in DIRECTIONS
        }
        self.anomalies = {
            direction: [
                (index, matching)
                for index, cell in enumerate(self.cells[direction])
                if (
                    matching := [
                        a
                        for a in spec.anomalies or ()
                        if a.matches(self.checkpoint_id, direction, cell.nationality, cell.purpose)
                    ]
                )
            ]
            for direction in DIRECTIONS
        }

    def _cells(self, direction: str, mix: Mix) -> list[Cell]:
        cells = []
        for nationality, purpose, rate in mix:
            for mode, mode_share in _modes(self.kind, purpose):
                for outcome, outcome_share in _outcomes(
                    direction, nationality, purpose, self.checkpoint.country_a
                ):
                    fragment = (
                        f'"nationality":"{nationality}","purpose":"{purpose}",'
                        f'"mode":"{mode}","outcome":"{outcome}"'
                    )
                    cells.append(
                        Cell(
                            nationality,
                            purpose,
                            mode,
                            outcome,
                            rate * mode_share * outcome_share,
                            fragment,
                        )
                    )
        return cells

    def rates(self, direction: str, local_day: date) -> list[float]:
        """Expected events/day per cell on this day: profile x scale x weekday x anomalies."""
        factor = self.scale * self.weekday[local_day.weekday()]
        rates = [cell.rate * factor for cell in self.cells[direction]]
        for index, anomalies in self.anomalies[direction]:
            for anomaly in anomalies:
                rates[index] *= anomaly.multiplier(local_day)
        return rates

    def group_rate(self, anomaly: Anomaly) -> float:
        """Weekly-mean events/day of an anomaly's group under normal conditions."""
        directions = DIRECTIONS if anomaly.direction is None else (anomaly.direction,)
        return sum(
            cell.rate * self.scale
            for direction in directions
            for cell in self.cells[direction]
            if anomaly.matches(self.checkpoint_id, direction, cell.nationality, cell.purpose)
        )
