"""Two years of labelled hourly count series for judging the detector.

The event-level scenario (:mod:`load_tests.scenario`) spans weeks; the detector's
questions need years ("is this the same harvest season as last year?"), and drawing
tens of millions of events would only to count them again. So this draws the counts
directly from the same traffic model (profiles, weekday and hour rhythm, day-level
noise: a negative binomial), per checkpoint, direction, local hour and
nationality|purpose group, and lays on top:

- things that are normal and must NOT alarm: a harvest-season ramp of labour traffic
  every September-October (x2.2 at its peak), and the public holidays of both countries
  of each checkpoint (the ``holidays`` package), every year with the same effect;
- labelled anomalies in the second year (``LABELS``): the Jibek Joly spring surge, the
  Korday closure for two months and its reopening, a crackdown cutting TJK entries at
  Kazygurt by 60%, a two-day sensor outage at Karasu (no events at all), and Nauryz at
  Zhibek Zholy at twice last year's holiday level.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache

import holidays

from load_tests.scenario import ScenarioSpec
from load_tests.scenario.model import _HOUR_WEIGHTS, CheckpointModel
from streams.domain.registry import Checkpoint, load_registry

START = date(2023, 1, 1)
END = date(2024, 12, 31)
#: Labels and false alarms are scored from here (the first year is history).
SCORED_FROM = date(2024, 1, 1)
CHECKPOINTS = ("zhibek-zholy", "kazygurt", "korday", "karasu", "dostyk", "atameken")
#: Volumes of the checkpoints other than Zhibek Zholy, relative to the scenario's profiles.
OTHER_SCALE = 3.0
_DAY_NOISE_SHAPE = 150.0


@dataclass(frozen=True)
class Effect:
    """A labelled anomaly: ``factor`` on the matching groups from ``starts`` to ``ends``."""

    name: str
    kind: str
    checkpoint: str
    direction: str | None
    nationality: str | None
    purpose: str | None
    starts: date
    ends: date
    factor: float
    ramp_days: int = 1
    label: bool = True

    def multiplier(self, checkpoint: str, direction: str, nationality: str, purpose: str, day: date) -> float:
        if checkpoint != self.checkpoint or not self.starts <= day <= self.ends:
            return 1.0
        if self.direction not in (None, direction) or self.nationality not in (None, nationality):
            return 1.0
        if self.purpose not in (None, purpose):
            return 1.0
        progress = min(1.0, ((day - self.starts).days + 1) / self.ramp_days)
        return 1.0 + (self.factor - 1.0) * progress


EFFECTS: tuple[Effect, ...] = (
    Effect(
        "jibek-joly-spring-surge",
        "surge",
        "zhibek-zholy",
        "entry",
        "UZB",
        "labour",
        date(2024, 4, 15),
        date(2024, 5, 20),
        4000 / 1500 * 1.3,
        ramp_days=3,
    ),
    Effect("korday-closure", "drop", "korday", None, None, None, date(2024, 6, 1), date(2024, 7, 31), 0.0),
    Effect("tajik-crackdown", "drop", "kazygurt", "entry", "TJK", None, date(2024, 3, 25), END, 0.4),
    Effect(
        "karasu-sensor-outage",
        "drop",
        "karasu",
        None,
        None,
        None,
        date(2024, 10, 10),
        date(2024, 10, 11),
        0.0,
    ),
)
#: Nauryz 2024 at Zhibek Zholy entries: twice the holiday level of every other year.
HOLIDAY_TWICE = Effect(
    "nauryz-twice-last-year",
    "surge",
    "zhibek-zholy",
    "entry",
    None,
    None,
    date(2024, 3, 21),
    date(2024, 3, 22),
    2.0,
)


def labels() -> list[dict[str, str]]:
    """The labels file's rows: date, end, checkpoint, direction, kind, name."""
    rows = []
    for effect in (*EFFECTS, HOLIDAY_TWICE):
        rows.append(
            {
                "date": effect.starts.isoformat(),
                "end": effect.ends.isoformat(),
                "checkpoint": effect.checkpoint,
                "direction": effect.direction or "",
                "kind": effect.kind,
                "name": effect.name,
            }
        )
        if effect.name == "korday-closure":
            reopened = effect.ends + timedelta(days=1)
            rows.append(
                {
                    "date": reopened.isoformat(),
                    "end": reopened.isoformat(),
                    "checkpoint": effect.checkpoint,
                    "direction": "",
                    "kind": "surge",
                    "name": "korday-reopening",
                }
            )
    return rows


def harvest_factor(purpose: str, day: date) -> float:
    """Labour traffic ramps up through September to x2.2 and back down by November, every year."""
    if purpose != "labour":
        return 1.0
    peak = date(day.year, 10, 1)
    distance = abs((day - peak).days)
    return 1.0 + 1.2 * max(0.0, 1.0 - distance / 30)


def _holiday_name_factor(name: str) -> float:
    lowered = name.lower()
    if any(k in lowered for k in ("nowruz", "nauryz", "nooruz", "navruz")):
        return 1.7
    if any(k in lowered for k in ("eid", "kurban", "oraza", "hayit", "ramadan")):
        return 1.5
    if "new year" in lowered:
        return 0.6
    return 1.2


@cache
def _holiday_calendar(countries: tuple[str, ...], year: int) -> dict[date, float]:
    effect: dict[date, float] = {}
    for country in countries:
        for day, name in holidays.country_holidays(_iso2(country), years=year).items():
            factor = _holiday_name_factor(name)
            effect[day] = (
                max(effect.get(day, 1.0), factor) if factor > 1 else min(effect.get(day, 1.0), factor)
            )
    return effect


def _iso2(country: str) -> str:
    import pycountry

    found = pycountry.countries.get(alpha_3=country) if len(country) == 3 else None
    return found.alpha_2 if found else country


def holiday_factor(checkpoint: Checkpoint, day: date) -> float:
    countries = tuple(c for c in (checkpoint.country_a, checkpoint.country_b) if c)
    return _holiday_calendar(countries, day.year).get(day, 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 20:
        limit, count, product = math.exp(-lam), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def rows(seed: int = 11, start: date = START, end: date = END) -> Iterator[dict[str, object]]:
    """Hourly rows: time (local, no offset), checkpoint, direction, group, count (zeros left out)."""
    registry = load_registry()
    spec = ScenarioSpec(checkpoints=CHECKPOINTS, other_scale=OTHER_SCALE, anomalies=())
    models = [CheckpointModel(registry[c], spec) for c in CHECKPOINTS]
    day = start
    while day <= end:
        for model in models:
            rng = random.Random(f"{seed}:{model.checkpoint_id}:{day.isoformat()}")
            weights = _HOUR_WEIGHTS[model.kind]
            total_weight = sum(weights)
            holiday = holiday_factor(model.checkpoint, day)
            for direction in ("entry", "exit"):
                noise = rng.gammavariate(_DAY_NOISE_SHAPE, 1.0 / _DAY_NOISE_SHAPE)
                groups: dict[tuple[str, str], float] = {}
                for cell, rate in zip(model.cells[direction], model.rates(direction, day), strict=True):
                    key = (cell.nationality, cell.purpose)
                    groups[key] = groups.get(key, 0.0) + rate
                for (nationality, purpose), rate in sorted(groups.items()):
                    level = rate * noise * holiday * harvest_factor(purpose, day)
                    for effect in (*EFFECTS, HOLIDAY_TWICE):
                        level *= effect.multiplier(model.checkpoint_id, direction, nationality, purpose, day)
                    if level <= 0:
                        continue
                    for hour in range(24):
                        n = _poisson(rng, level * weights[hour] / total_weight)
                        if n:
                            yield {
                                "time": datetime.combine(day, time(hour)).isoformat(" "),
                                "checkpoint": model.checkpoint_id,
                                "direction": direction,
                                "group": f"{nationality}|{purpose}",
                                "count": n,
                            }
        day += timedelta(days=1)
