"""Synthetic border-crossing traffic with labelled anomalies.

The demo, the integration tests and the benchmarks all need the same thing: a stream
that looks like real checkpoint traffic (weekly and daily rhythm, noise, a realistic
mix of who crosses and why, duplicates, late uploads, garbage) and that carries its own
ground truth, so a test can say "the pipeline must count exactly this" and "the detector
must flag exactly that". Everything is derived from a seed, so two runs give the same
bytes, and each (checkpoint, local day) has its own random stream, so shrinking the
scenario (fewer checkpoints, ``other_scale``) never changes the traffic that remains.

Local days always come from the tz database: the default window spans 1 March 2024,
when Asia/Almaty moved from UTC+6 to UTC+5 and 29 February had 25 hours.

This module deliberately does not import faust (it runs in the test process and in
plain scripts); Kafka is only touched by :func:`replay`.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import functools
import json
import math
import random
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.domain.registry import Checkpoint, load_registry

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
CHECKPOINTS_FILE = SCHEMAS_DIR / "checkpoints.json"

DEFAULT_START = date(2024, 2, 5)  # a Monday, so week-over-week comparisons line up
DEFAULT_DAYS = 42
DEFAULT_TOPIC = "crossings.events.v1"
DEFAULT_BROKER = "127.0.0.1:9092"

DIRECTIONS = ("entry", "exit")
RECORD_KINDS = ("valid", "late", "duplicate", "invalid")
INVALID_REASONS = (
    "malformed_json",
    "unknown_checkpoint",
    "bad_nationality",
    "missing_field",
    "bad_timestamp",
    "unknown_enum",
    "naive_timestamp",
)

#: The checkpoint whose volume ``other_scale`` never touches: it carries the headline case.
HEADLINE_CHECKPOINT = "zhibek-zholy"

# Zhibek Zholy entries: the UZB total is the figure officials quote, labour is the part
# that surges. Kept as constants so the surge factor and the profile cannot drift apart.
ZZ_UZB_ENTRIES_PER_DAY = 1500
ZZ_UZB_LABOUR_ENTRIES_PER_DAY = 1200
ZZ_UZB_ENTRIES_AT_SURGE = 4000

# Day-to-day level noise: Poisson(level * Gamma(k, 1/k)) is a negative binomial; k=150
# gives ~8% extra spread on big checkpoints, on top of the weekday rhythm.
_DAY_NOISE_SHAPE = 150.0
# How long a normal event takes from the post to the broker, in seconds (exponential).
_MEAN_UPLINK_LAG = 1.5
# Late events: a post that lost its link uploads the backlog 1-6 hours later.
_LATE_DELAY = (3600.0, 6 * 3600.0)
# Duplicates: the sensor retries after a lost acknowledgement.
_DUPLICATE_DELAY = (0.2, 30.0)
# Share of valid events whose occurred_at is written in UTC ('Z') instead of local offset.
_UTC_FORM_SHARE = 0.05


# --------------------------------------------------------------------------- reference


@functools.cache
def _registry() -> Mapping[str, Checkpoint]:
    return load_registry()


def load_checkpoints() -> Mapping[str, Checkpoint]:
    """The reference checkpoints, from the same loader the worker uses (one source of truth)."""
    return _registry()


def _all_checkpoint_ids() -> tuple[str, ...]:
    return tuple(load_checkpoints())


# --------------------------------------------------------------------------- anomalies


@dataclass(frozen=True)
class Anomaly:
    """A labelled departure from normal traffic, and the recipe that produces it.

    ``direction``, ``nationality`` and ``purpose`` select the affected group; ``None``
    means "all". ``starts``/``ends`` are local calendar days at the checkpoint, ``ends``
    inclusive. The traffic of the group is multiplied by ``factor`` once fully in
    effect; ``ramp_days`` > 1 makes it build up linearly (day 1 of the ramp gets
    1/ramp_days of the change), because real surges grow over days rather than jump.
    """

    name: str
    kind: str  # "surge" | "drop"
    checkpoint_id: str
    direction: str | None
    nationality: str | None
    purpose: str | None
    starts: date
    ends: date
    description: str
    factor: float = 1.0
    ramp_days: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("surge", "drop"):
            raise ValueError(f"anomaly {self.name}: kind must be 'surge' or 'drop'")
        if self.kind == "surge" and self.factor <= 1.0:
            raise ValueError(f"anomaly {self.name}: a surge needs factor > 1")
        if self.kind == "drop" and not 0.0 <= self.factor < 1.0:
            raise ValueError(f"anomaly {self.name}: a drop needs 0 <= factor < 1")
        if self.ends < self.starts:
            raise ValueError(f"anomaly {self.name}: ends before it starts")
        if self.ramp_days < 1:
            raise ValueError(f"anomaly {self.name}: ramp_days must be >= 1")

    def matches(self, checkpoint_id: str, direction: str, nationality: str, purpose: str) -> bool:
        return (
            self.checkpoint_id == checkpoint_id
            and self.direction in (None, direction)
            and self.nationality in (None, nationality)
            and self.purpose in (None, purpose)
        )

    def multiplier(self, local_day: date) -> float:
        if not self.starts <= local_day <= self.ends:
            return 1.0
        progress = min(1.0, ((local_day - self.starts).days + 1) / self.ramp_days)
        return 1.0 + (self.factor - 1.0) * progress

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["starts"] = self.starts.isoformat()
        data["ends"] = self.ends.isoformat()
        return data


def default_anomalies(start: date = DEFAULT_START, days: int = DEFAULT_DAYS) -> tuple[Anomaly, ...]:
    """The three stories the demo tells: a surge, a group collapsing, a closure.

    Dates are relative to ``start`` (day 1) so the scenario can be moved in time.
    Anomalies that would fall outside a shorter window are trimmed by ScenarioSpec.
    """
    last_day = start + timedelta(days=days - 1)
    surge_start = start + timedelta(days=28)  # day 29
    crackdown_start = start + timedelta(days=32)  # day 33
    closure_day = start + timedelta(days=36)  # day 37
    other_uzb = ZZ_UZB_ENTRIES_PER_DAY - ZZ_UZB_LABOUR_ENTRIES_PER_DAY
    surge_factor = (ZZ_UZB_ENTRIES_AT_SURGE - other_uzb) / ZZ_UZB_LABOUR_ENTRIES_PER_DAY
    tjk = _mix_total(_PROFILES["kazygurt"].entry, nationality="TJK")
    return (
        Anomaly(
            name="jibek-joly-spring-surge",
            kind="surge",
            checkpoint_id="zhibek-zholy",
            direction="entry",
            nationality="UZB",
            purpose="labour",
            starts=surge_start,
            ends=max(last_day, surge_start),
            description=(
                "Spring labour surge at Zhibek Zholy (Jibek Joly): UZB labour entries climb "
                f"over 4 days from {surge_start.isoformat()} (day 29), taking UZB entries from "
                f"~{ZZ_UZB_ENTRIES_PER_DAY:,}/day to ~{ZZ_UZB_ENTRIES_AT_SURGE:,}/day (UZB labour "
                f"~{ZZ_UZB_LABOUR_ENTRIES_PER_DAY:,} -> "
                f"~{ZZ_UZB_ENTRIES_AT_SURGE - other_uzb:,}/day), and staying there to the end "
                "of the scenario."
            ),
            factor=surge_factor,
            ramp_days=4,
        ),
        Anomaly(
            name="tajik-crackdown",
            kind="drop",
            checkpoint_id="kazygurt",
            direction="entry",
            nationality="TJK",
            purpose=None,
            starts=crackdown_start,
            ends=max(last_day, crackdown_start),
            description=(
                "Crackdown on Tajik migrants: TJK entries (all purposes) at Kazygurt fall by "
                f"~80% from {crackdown_start.isoformat()} (day 33), from ~{tjk:.0f}/day to "
                f"~{tjk * 0.2:.0f}/day, until the end of the scenario."
            ),
            factor=0.2,
        ),
        Anomaly(
            name="korday-closure",
            kind="drop",
            checkpoint_id="korday",
            direction=None,
            nationality=None,
            purpose=None,
            starts=closure_day,
            ends=closure_day,
            description=(
                f"Korday closed for the whole local day {closure_day.isoformat()} (day 37): "
                "no entries and no exits at all; normal traffic resumes the next day."
            ),
            factor=0.0,
        ),
    )


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that determines the generated bytes; equal specs give equal streams.

    ``anomalies`` defaults to :func:`default_anomalies` for this window. Whatever is
    given, anomalies are trimmed to the window and to the chosen checkpoints, so the
    labels only ever describe something that is actually in the data.
    """

    start: date = DEFAULT_START
    days: int = DEFAULT_DAYS
    seed: int = 7
    other_scale: float = 1.0
    duplicate_rate: float = 0.01
    late_rate: float = 0.01
    invalid_rate: float = 0.002
    anomalies: tuple[Anomaly, ...] | None = None
    checkpoints: tuple[str, ...] = field(default_factory=_all_checkpoint_ids)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.other_scale < 0:
            raise ValueError("other_scale must be >= 0")
        for name in ("duplicate_rate", "late_rate", "invalid_rate"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must be within 0..0.5")
        known = load_checkpoints()
        checkpoints = tuple(dict.fromkeys(self.checkpoints))
        unknown = [c for c in checkpoints if c not in known]
        if unknown or not checkpoints:
            raise ValueError(f"unknown or no checkpoints: {unknown}; see {CHECKPOINTS_FILE}")
        object.__setattr__(self, "checkpoints", checkpoints)
        chosen = default_anomalies(self.start, self.days) if self.anomalies is None else self.anomalies
        trimmed = tuple(
            _replace_ends(a, min(a.ends, self.end))
            for a in chosen
            if a.checkpoint_id in checkpoints and a.starts <= self.end and a.ends >= self.start
        )
        object.__setattr__(self, "anomalies", trimmed)

    @property
    def end(self) -> date:
        """Last local day of the scenario (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def summary(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "seed": self.seed,
            "other_scale": self.other_scale,
            "duplicate_rate": self.duplicate_rate,
            "late_rate": self.late_rate,
            "invalid_rate": self.invalid_rate,
            "checkpoints": list(self.checkpoints),
        }


def _replace_ends(anomaly: Anomaly, ends: date) -> Anomaly:
    if ends == anomaly.ends:
        return anomaly
    return Anomaly(**{**asdict(anomaly), "ends": ends})


# --------------------------------------------------------------------------- traffic model

#: (nationality, purpose, events per day at weekday factor 1)
Mix = tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class _Profile:
    entry: Mix
    exit: Mix


# Volumes are per day for the average weekday. Zhibek Zholy: 1,500 UZB + 200 other
# entries and 1,100 exits; the other thirteen together 2,500 events/day.
_PROFILES: dict[str, _Profile] = {
    "zhibek-zholy": _Profile(
        entry=(
            ("UZB", "labour", ZZ_UZB_LABOUR_ENTRIES_PER_DAY),
            ("UZB", "private", 150),
            ("UZB", "business", 60),
            ("UZB", "transit", 80),
            ("UZB", "repatriate", 10),
            ("KAZ", "private", 70),
            ("KAZ", "business", 20),
            ("TJK", "labour", 40),
            ("TJK", "transit", 15),
            ("KGZ", "labour", 15),
            ("KGZ", "private", 5),
            ("TKM", "transit", 10),
            ("RUS", "private", 10),
            ("AFG", "refugee", 5),
            ("TUR", "business", 5),
            ("CHN", "business", 5),
        ),
        exit=(
            ("UZB", "labour", 600),
            ("UZB", "private", 160),
            ("UZB", "business", 60),
            ("UZB", "transit", 40),
            ("KAZ", "private", 120),
            ("KAZ", "business", 40),
            ("KAZ", "labour", 20),
            ("TJK", "labour", 30),
            ("KGZ", "labour", 10),
            ("RUS", "transit", 10),
            ("TKM", "transit", 10),
        ),
    ),
    "kazygurt": _Profile(
        entry=(
            ("TJK", "labour", 170),
            ("TJK", "transit", 30),
            ("TJK", "private", 20),
            ("UZB", "labour", 90),
            ("UZB", "private", 30),
            ("UZB", "business", 10),
            ("KAZ", "private", 30),
            ("KGZ", "labour", 10),
            ("AFG", "refugee", 5),
            ("TKM", "transit", 5),
        ),
        exit=(
            ("TJK", "labour", 90),
            ("TJK", "private", 20),
            ("UZB", "labour", 80),
            ("UZB", "private", 30),
            ("KAZ", "private", 50),
            ("KAZ", "business", 20),
            ("KGZ", "labour", 10),
        ),
    ),
    "atameken": _Profile(
        entry=(
            ("UZB", "labour", 30),
            ("UZB", "private", 15),
            ("UZB", "business", 5),
            ("KAZ", "private", 12),
            ("TJK", "labour", 3),
        ),
        exit=(
            ("UZB", "labour", 20),
            ("UZB", "private", 15),
            ("KAZ", "private", 15),
            ("KAZ", "business", 5),
        ),
    ),
    "kaplanbek": _Profile(
        entry=(
            ("UZB", "labour", 25),
            ("UZB", "private", 12),
            ("UZB", "business", 5),
            ("UZB", "repatriate", 3),
            ("KAZ", "private", 10),
        ),
        exit=(
            ("UZB", "labour", 15),
            ("UZB", "private", 12),
            ("KAZ", "private", 13),
            ("KAZ", "business", 5),
        ),
    ),
    # Uzbek side of Zhibek Zholy: country_a is UZB, so "entry" means into Uzbekistan.
    "gishtkuprik": _Profile(
        entry=(
            ("UZB", "labour", 45),
            ("UZB", "private", 20),
            ("KAZ", "private", 15),
            ("KAZ", "business", 5),
            ("TJK", "transit", 5),
        ),
        exit=(
            ("UZB", "labour", 60),
            ("UZB", "private", 20),
            ("UZB", "business", 10),
            ("KAZ", "private", 15),
            ("TJK", "transit", 5),
        ),
    ),
    "korday": _Profile(
        entry=(
            ("KGZ", "labour", 90),
            ("KGZ", "private", 50),
            ("KGZ", "business", 30),
            ("KAZ", "private", 40),
            ("KAZ", "business", 15),
            ("TJK", "labour", 15),
            ("UZB", "labour", 10),
            ("RUS", "tourist", 5),
            ("CHN", "business", 3),
            ("AFG", "refugee", 2),
        ),
        exit=(
            ("KGZ", "labour", 60),
            ("KGZ", "private", 50),
            ("KGZ", "business", 25),
            ("KAZ", "private", 50),
            ("KAZ", "business", 20),
            ("KAZ", "tourist", 20),
            ("TJK", "labour", 5),
            ("UZB", "labour", 5),
            ("RUS", "tourist", 5),
        ),
    ),
    "karasu": _Profile(
        entry=(
            ("KGZ", "labour", 20),
            ("KGZ", "private", 12),
            ("KGZ", "business", 6),
            ("KAZ", "private", 12),
        ),
        exit=(
            ("KGZ", "labour", 15),
            ("KGZ", "private", 12),
            ("KAZ", "private", 15),
            ("KAZ", "business", 8),
        ),
    ),
    "kegen": _Profile(
        entry=(
            ("KGZ", "private", 8),
            ("KGZ", "business", 3),
            ("KAZ", "private", 6),
            ("KAZ", "tourist", 3),
        ),
        exit=(
            ("KGZ", "private", 7),
            ("KGZ", "business", 2),
            ("KAZ", "private", 7),
            ("KAZ", "tourist", 4),
        ),
    ),
    "nur-zholy": _Profile(
        entry=(
            ("CHN", "business", 40),
            ("KAZ", "business", 30),
            ("CHN", "tourist", 8),
            ("KAZ", "private", 7),
            ("CHN", "repatriate", 3),
            ("CHN", "labour", 2),
        ),
        exit=(
            ("CHN", "business", 40),
            ("KAZ", "business", 35),
            ("KAZ", "tourist", 10),
            ("CHN", "tourist", 5),
        ),
    ),
    "dostyk": _Profile(
        entry=(
            ("CHN", "business", 12),
            ("KAZ", "business", 8),
            ("CHN", "labour", 3),
            ("CHN", "repatriate", 2),
        ),
        exit=(("CHN", "business", 12), ("KAZ", "business", 10), ("KAZ", "private", 3)),
    ),
    "zhaisan": _Profile(
        entry=(
            ("RUS", "private", 10),
            ("KAZ", "private", 10),
            ("RUS", "business", 5),
            ("UZB", "transit", 4),
            ("RUS", "repatriate", 3),
            ("RUS", "tourist", 3),
        ),
        exit=(
            ("KAZ", "private", 10),
            ("RUS", "private", 10),
            ("UZB", "transit", 8),
            ("UZB", "labour", 4),
            ("RUS", "business", 3),
        ),
    ),
    "ala-airport": _Profile(
        entry=(
            ("KAZ", "private", 45),
            ("KAZ", "tourist", 15),
            ("KAZ", "business", 15),
            ("RUS", "tourist", 15),
            ("RUS", "business", 8),
            ("TUR", "business", 8),
            ("TUR", "tourist", 7),
            ("CHN", "business", 8),
            ("CHN", "tourist", 4),
            ("UZB", "labour", 5),
            ("KGZ", "private", 4),
            ("TJK", "labour", 4),
            ("DEU", "tourist", 4),
            ("KOR", "business", 4),
            ("USA", "business", 3),
            ("AFG", "refugee", 1),
        ),
        exit=(
            ("KAZ", "tourist", 40),
            ("KAZ", "private", 30),
            ("KAZ", "business", 15),
            ("RUS", "tourist", 15),
            ("RUS", "business", 7),
            ("TUR", "business", 8),
            ("TUR", "tourist", 7),
            ("CHN", "business", 8),
            ("CHN", "tourist", 4),
            ("UZB", "labour", 4),
            ("DEU", "tourist", 4),
            ("KOR", "business", 5),
            ("USA", "business", 3),
        ),
    ),
    "nqz-airport": _Profile(
        entry=(
            ("KAZ", "private", 15),
            ("KAZ", "business", 10),
            ("RUS", "business", 8),
            ("RUS", "private", 6),
            ("TUR", "business", 6),
            ("CHN", "business", 4),
            ("DEU", "business", 3),
            ("GBR", "business", 3),
        ),
        exit=(
            ("KAZ", "private", 14),
            ("KAZ", "business", 10),
            ("KAZ", "tourist", 6),
            ("RUS", "business", 8),
            ("RUS", "private", 5),
            ("TUR", "business", 6),
            ("CHN", "business", 3),
            ("DEU", "business", 3),
        ),
    ),
    "cit-airport": _Profile(
        entry=(
            ("KAZ", "private", 5),
            ("KAZ", "business", 2),
            ("TUR", "business", 3),
            ("RUS", "private", 3),
            ("UZB", "private", 2),
        ),
        exit=(
            ("KAZ", "tourist", 5),
            ("KAZ", "private", 4),
            ("TUR", "business", 3),
            ("RUS", "private", 3),
        ),
    ),
}


def _mix_total(mix: Mix, nationality: str | None = None) -> float:
    return sum(rate for nat, _, rate in mix if nationality in (None, nat))


def _fallback_profile(checkpoint: Checkpoint) -> _Profile:
    """A checkpoint added to the reference file later still gets plausible traffic."""
    neighbour = checkpoint.country_b or "RUS"
    home = checkpoint.country_a
    return _Profile(
        entry=((neighbour, "private", 12), (neighbour, "labour", 8), (home, "private", 10)),
        exit=((neighbour, "private", 10), (home, "private", 12), (home, "business", 5)),
    )


# Busier Mondays and Fridays, quiet Sundays on the roads; airports peak on Fridays. Each
# list averages 1.0 so the profile volumes above stay the weekly means.
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
class _Cell:
    """One (nationality, purpose, mode, outcome) combination and its share of traffic."""

    nationality: str
    purpose: str
    mode: str
    outcome: str
    rate: float  # events/day at weekday factor 1, before anomalies
    fragment: str  # the JSON members for these four fields, pre-rendered for speed


@dataclass(frozen=True)
class _HourSlot:
    """One local wall-clock hour of one local day, pre-resolved against the tz database.

    ``uniform`` means the whole hour exists exactly once with one UTC offset, so an event
    time can be rendered by string concatenation; otherwise (DST gaps, the repeated hour
    on 29 Feb 2024 in Asia/Almaty) the slow path asks zoneinfo per event.
    """

    uniform: bool
    epoch0: int
    prefix: str  # "2024-03-01T09:"
    suffix: str  # "+05:00"


class _CheckpointModel:
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
        profile = _PROFILES.get(self.checkpoint_id) or _fallback_profile(checkpoint)
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

    def _cells(self, direction: str, mix: Mix) -> list[_Cell]:
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
                        _Cell(
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


_SLOT_CACHE: dict[tuple[str, date], tuple[_HourSlot, ...]] = {}


def _hour_slots(zone: ZoneInfo, local_day: date) -> tuple[_HourSlot, ...]:
    key = (zone.key, local_day)
    cached = _SLOT_CACHE.get(key)
    if cached is not None:
        return cached
    slots = []
    for hour in range(24):
        first = datetime(local_day.year, local_day.month, local_day.day, hour, tzinfo=zone)
        last = first.replace(minute=59, second=59)
        offsets = {moment.replace(fold=fold).utcoffset() for moment in (first, last) for fold in (0, 1)}
        offset = first.utcoffset()
        assert offset is not None
        exists = datetime.fromtimestamp(first.timestamp(), zone).replace(tzinfo=None) == (
            first.replace(tzinfo=None)
        )
        slots.append(
            _HourSlot(
                uniform=len(offsets) == 1 and exists,
                epoch0=int(first.timestamp()),
                prefix=f"{local_day.isoformat()}T{hour:02d}:",
                suffix=_format_offset(offset),
            )
        )
    result = tuple(slots)
    if len(_SLOT_CACHE) > 4096:
        _SLOT_CACHE.clear()
    _SLOT_CACHE[key] = result
    return result


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _utc_form(epoch: int, millis: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + millis + "Z"


def _day_start_epoch(zone: tzinfo, local_day: date) -> float:
    """First instant of a local day; min over folds so a repeated midnight is covered."""
    midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=zone)
    return min(midnight.timestamp(), midnight.replace(fold=1).timestamp())


def _poisson(rng: random.Random, lam: float) -> int:
    """Stdlib has no Poisson sampler before 3.12; normal approximation is fine above 30."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, count, product = math.exp(-lam), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class GeneratedRecord:
    """One Kafka message as the border network would send it, plus what it really is."""

    key: bytes
    value: bytes
    kind: str  # "valid" | "late" | "duplicate" | "invalid"
    arrival_ts: float  # simulated arrival, seconds since the epoch; ascending in a stream
    invalid_reason: str | None = None


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


class Scenario:
    """One run of the generator: iterate :meth:`records`, then read :attr:`manifest`.

    The manifest is filled while the records stream past (nothing is kept in memory
    besides a day of pending arrivals), so it only exists once the iteration is done.
    """

    def __init__(self, spec: ScenarioSpec | None = None) -> None:
        self.spec = spec or ScenarioSpec()
        reference = load_checkpoints()
        self._models = [_CheckpointModel(reference[c], self.spec) for c in self.spec.checkpoints]
        self._manifest: Manifest | None = None
        self._started = False
        self._next_seq = 0

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            raise RuntimeError("the manifest exists once records() has been fully consumed")
        return self._manifest

    def records(self) -> Iterator[GeneratedRecord]:
        """Yield the stream in simulated arrival order, one local day at a time.

        Records that arrive after the next day has begun (late uploads, retries around
        midnight) are held back and merged in at their arrival time; a record is only
        released once no checkpoint can still produce anything earlier.
        """
        if self._started:
            raise RuntimeError("a Scenario can be iterated once; create a new one")
        self._started = True
        spec = self.spec
        sent = dict.fromkeys(RECORD_KINDS, 0)
        expected: dict[CountKey, int] = {}
        by_group: dict[GroupKey, int] = {}
        reasons: dict[str, int] = {}
        pending: list[tuple[float, int, bytes, bytes, str, str | None]] = []
        for offset in range(spec.days):
            local_day = spec.start + timedelta(days=offset)
            day_iso = local_day.isoformat()
            for model in self._models:
                for direction in DIRECTIONS:
                    expected.setdefault((model.checkpoint_id, day_iso, direction), 0)
                self._checkpoint_day(model, local_day, pending, expected, by_group)
            next_day = local_day + timedelta(days=1)
            watermark = min(_day_start_epoch(m.zone, next_day) for m in self._models)
            pending.sort()
            cut = bisect.bisect_left(pending, (watermark,))
            ready, pending = pending[:cut], pending[cut:]
            for arrival, _, key, value, kind, reason in ready:
                sent[kind] += 1
                if reason is not None:
                    reasons[reason] = reasons.get(reason, 0) + 1
                yield GeneratedRecord(key, value, kind, arrival, reason)
        pending.sort()
        for arrival, _, key, value, kind, reason in pending:
            sent[kind] += 1
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1
            yield GeneratedRecord(key, value, kind, arrival, reason)
        self._manifest = Manifest(
            spec=spec.summary(),
            sent=sent,
            expected_counts=expected,
            by_group=by_group,
            anomalies=spec.anomalies or (),
            invalid_reasons=dict(sorted(reasons.items())),
            anomaly_baselines={
                a.name: sum(m.group_rate(a) for m in self._models) for a in spec.anomalies or ()
            },
        )

    def _checkpoint_day(
        self,
        model: _CheckpointModel,
        local_day: date,
        pending: list[tuple[float, int, bytes, bytes, str, str | None]],
        expected: dict[CountKey, int],
        by_group: dict[GroupKey, int],
    ) -> None:
        """Generate one checkpoint's local day; its own seeded stream keeps it stable."""
        spec = self.spec
        checkpoint_id = model.checkpoint_id
        rng = random.Random(f"{spec.seed}:{checkpoint_id}:{local_day.isoformat()}")
        rnd = rng.random
        log = math.log
        uniform = rng.uniform
        slots = _hour_slots(model.zone, local_day)
        key = checkpoint_id.encode()
        id_prefix = f"{checkpoint_id}-s{spec.seed}-{local_day:%Y%m%d}-"
        head = '{"version":1,"event_id":"'
        cp_part = f'","checkpoint_id":"{checkpoint_id}","direction":"'
        with_millis = model.kind == "airport"
        late_rate, dup_rate, invalid_rate = spec.late_rate, spec.duplicate_rate, spec.invalid_rate
        day_iso = local_day.isoformat()
        seq_base = self._next_seq  # tie-breaker only: unique, deterministic
        serial = 0
        append = pending.append
        for direction in DIRECTIONS:
            rates = model.rates(direction, local_day)
            level = sum(rates) * rng.gammavariate(_DAY_NOISE_SHAPE, 1.0 / _DAY_NOISE_SHAPE)
            count = _poisson(rng, level)
            if count == 0:
                continue
            cells = model.cells[direction]
            picks = rng.choices(range(len(cells)), cum_weights=list(accumulate(rates)), k=count)
            hours = rng.choices(range(24), cum_weights=model.hour_cum, k=count)
            seconds = sorted(hour * 3600 + int(rnd() * 3600) for hour in hours)
            cell_counts = [0] * len(cells)
            dir_part = direction + '","occurred_at":"'
            for cell_index, second_of_day in zip(picks, seconds, strict=True):
                cell = cells[cell_index]
                serial += 1
                event_id = f"{id_prefix}{serial:06d}"
                hour, within = divmod(second_of_day, 3600)
                millis_int = int(rnd() * 1000) if with_millis else 0
                millis = f".{millis_int:03d}" if with_millis else ""
                slot = slots[hour]
                if slot.uniform:
                    epoch = slot.epoch0 + within
                    if rnd() < _UTC_FORM_SHARE:
                        occurred_at = _utc_form(epoch, millis)
                    else:
                        minute, second = divmod(within, 60)
                        occurred_at = f"{slot.prefix}{minute:02d}:{second:02d}{millis}{slot.suffix}"
                    cell_counts[cell_index] += 1
                else:
                    epoch, occurred_at, actual_day = _slow_local_time(
                        rng, model.zone, local_day, hour, within, millis
                    )
                    group = (checkpoint_id, actual_day, direction, cell.nationality, cell.purpose)
                    by_group[group] = by_group.get(group, 0) + 1
                    count_key = (checkpoint_id, actual_day, direction)
                    expected[count_key] = expected.get(count_key, 0) + 1
                value = (f'{head}{event_id}{cp_part}{dir_part}{occurred_at}",{cell.fragment}}}').encode()
                occurred = epoch + millis_int / 1000.0
                if rnd() < late_rate:
                    arrival = occurred + uniform(*_LATE_DELAY)
                    append((arrival, seq_base + serial * 4, key, value, "late", None))
                else:
                    arrival = occurred - _MEAN_UPLINK_LAG * log(1.0 - rnd())  # exponential
                    append((arrival, seq_base + serial * 4, key, value, "valid", None))
                if rnd() < dup_rate:
                    append(
                        (
                            arrival + uniform(*_DUPLICATE_DELAY),
                            seq_base + serial * 4 + 1,
                            key,
                            value,
                            "duplicate",
                            None,
                        )
                    )
                if rnd() < invalid_rate:
                    reason = INVALID_REASONS[int(rnd() * len(INVALID_REASONS))]
                    bad_key, bad_value = _invalid_payload(
                        rng, reason, key, event_id, checkpoint_id, direction, occurred_at, epoch, cell
                    )
                    append(
                        (
                            occurred + uniform(0.1, 5.0),
                            seq_base + serial * 4 + 2,
                            bad_key,
                            bad_value,
                            "invalid",
                            reason,
                        )
                    )
            for cell_index, n in enumerate(cell_counts):
                if n:
                    cell = cells[cell_index]
                    group = (checkpoint_id, day_iso, direction, cell.nationality, cell.purpose)
                    by_group[group] = by_group.get(group, 0) + n
            count_key = (checkpoint_id, day_iso, direction)
            expected[count_key] = expected.get(count_key, 0) + sum(cell_counts)
        self._next_seq = seq_base + (serial + 1) * 4


def _slow_local_time(
    rng: random.Random, zone: ZoneInfo, local_day: date, hour: int, within: int, millis: str
) -> tuple[int, str, str]:
    """Resolve a wall time in an hour touched by a clock change; returns the real day.

    A repeated hour is split between its two occurrences (random fold); a non-existent
    wall time is pushed to the instant zoneinfo maps it to, and the event is counted on
    whatever local day that instant really falls.
    """
    minute, second = divmod(within, 60)
    wall = datetime(
        local_day.year,
        local_day.month,
        local_day.day,
        hour,
        minute,
        second,
        tzinfo=zone,
        fold=rng.getrandbits(1),
    )
    epoch = int(wall.timestamp())
    actual = datetime.fromtimestamp(epoch, zone)
    if rng.random() < _UTC_FORM_SHARE:
        text = _utc_form(epoch, millis)
    else:
        stamp = actual.isoformat(timespec="seconds")
        text = stamp[:19] + millis + stamp[19:]
    return epoch, text, actual.date().isoformat()


_BOGUS_CHECKPOINTS = ("zhibek-zholy-2", "shymkent-bazaar", "khorgos-icbc", "tashkent-airport")
_BAD_NATIONALITIES = ("Uzb", "UZBK", "UZ", "U2B", "", "uzb")
_BAD_ENUMS = (
    ("direction", "in"),
    ("direction", "ENTRY"),
    ("purpose", "smuggling"),
    ("purpose", "work"),
    ("mode", "horse"),
    ("outcome", "escaped"),
)


def _invalid_payload(
    rng: random.Random,
    reason: str,
    key: bytes,
    event_id: str,
    checkpoint_id: str,
    direction: str,
    occurred_at: str,
    epoch: int,
    cell: _Cell,
) -> tuple[bytes, bytes]:
    """A payload a real border network produces, each broken in one specific way.

    Every variant fails either the v1 schema or the checkpoint reference check, so the
    pipeline must dead-letter all of them; the invalid record carries its own event_id
    so it can never be mistaken for (or de-duplicated against) the valid original.
    """
    event: dict[str, Any] = {
        "version": 1,
        "event_id": f"{event_id}-bad",
        "checkpoint_id": checkpoint_id,
        "direction": direction,
        "occurred_at": occurred_at,
        "nationality": cell.nationality,
        "purpose": cell.purpose,
        "mode": cell.mode,
        "outcome": cell.outcome,
    }
    if reason == "malformed_json":
        text = json.dumps(event)
        variant = rng.randrange(4)
        if variant == 0:
            return key, text[: rng.randrange(1, len(text) - 1)].encode()
        if variant == 1:
            return key, repr(event).encode()  # Python dict repr: single quotes
        if variant == 2:
            return key, b"\xff" + text.encode()  # line noise: not UTF-8 at all
        return key, (text + "}").encode()
    if reason == "unknown_checkpoint":
        bogus = rng.choice(_BOGUS_CHECKPOINTS)
        event["checkpoint_id"] = bogus
        key = bogus.encode()
    elif reason == "bad_nationality":
        event["nationality"] = rng.choice(_BAD_NATIONALITIES)
    elif reason == "missing_field":
        del event[rng.choice(list(event))]
    elif reason == "bad_timestamp":
        local = occurred_at[:19]
        event["occurred_at"] = rng.choice(
            (
                local.replace("T", " ") + "+05:00",
                f"{local[8:10]}.{local[5:7]}.{local[0:4]} {local[11:19]}",
                local[:16] + "+05:00",
                "yesterday",
            )
        )
        if rng.random() < 0.2:
            event["occurred_at"] = epoch  # a number, not a string
    elif reason == "unknown_enum":
        name, bad = rng.choice(_BAD_ENUMS)
        event[name] = bad
    elif reason == "naive_timestamp":
        event["occurred_at"] = occurred_at[:19]
    else:  # pragma: no cover - INVALID_REASONS and this function move together
        raise ValueError(reason)
    return key, json.dumps(event, separators=(",", ":")).encode()


def generate(spec: ScenarioSpec | None = None) -> Iterator[GeneratedRecord]:
    """The record stream alone, for callers that do not need the ground truth."""
    return Scenario(spec).records()


def build_manifest(spec: ScenarioSpec | None = None) -> Manifest:
    """Ground truth without keeping records: runs the generator and drops its output."""
    scenario = Scenario(spec)
    for _ in scenario.records():
        pass
    return scenario.manifest


def write_labels(
    path: str | Path, spec: ScenarioSpec | None = None, manifest: Manifest | None = None
) -> Manifest:
    """Write anomalies (what, where, when) and the expected totals as JSON.

    Pass the manifest of a run that already happened (e.g. a replay) to avoid generating
    the scenario a second time; otherwise it is built from ``spec``.
    """
    manifest = manifest or build_manifest(spec)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest.to_json(), indent=1) + "\n", encoding="utf-8")
    return manifest


# --------------------------------------------------------------------------- replay


@dataclass
class ReplayStats:
    sent: int
    by_kind: dict[str, int]
    seconds: float
    rate_achieved: float


class ReplayError(RuntimeError):
    """Kafka refused or lost records; the replay is not a complete scenario."""


class _TokenBucket:
    """Paces sends to a target rate without sleeping per record.

    Sleeping for each record would cap the rate at a few thousand per second (sleep
    granularity); a bucket lets a burst of up to 100 ms worth of records through and
    then sleeps until enough tokens have accumulated.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 records/s")
        self.rate = rate
        self.capacity = max(1.0, rate * 0.1)
        self.tokens = 0.0
        self.last = time.monotonic()

    def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            time.sleep(max((1.0 - self.tokens) / self.rate, 0.001))


def replay(
    records: Iterable[GeneratedRecord],
    bootstrap: str,
    topic: str,
    *,
    rate: float | None = None,
    progress: bool = True,
    linger_ms: int = 20,
    batch_size: int = 262144,
    total: int | None = None,
) -> ReplayStats:
    """Produce records to Kafka in the given order, as fast as possible or at ``rate``/s.

    The Kafka timestamp is the real send time (``timestamp_ms=None``), so arrival-lag
    metrics downstream measure the pipeline, not the simulation. Any delivery failure
    raises :class:`ReplayError` (checked while sending and after the final flush):
    a silently partial replay would make every count downstream look wrong.
    """
    from kafka import KafkaProducer  # imported here: generation must not need Kafka
    from tqdm import tqdm

    failures: list[BaseException] = []
    lock = threading.Lock()

    def on_error(exc: BaseException) -> None:
        with lock:
            failures.append(exc)

    def check() -> None:
        if failures:
            raise ReplayError(
                f"{len(failures)} record(s) failed to reach {topic}; first: {failures[0]!r}"
            ) from failures[0]

    producer = KafkaProducer(
        bootstrap_servers=[host.strip() for host in bootstrap.split(",") if host.strip()],
        acks="all",
        linger_ms=linger_ms,
        batch_size=batch_size,
        client_id="crossings-scenario-replay",
    )
    by_kind = dict.fromkeys(RECORD_KINDS, 0)
    sent = 0
    bucket = _TokenBucket(rate) if rate else None
    started = time.monotonic()
    try:
        # A redirected log gets a line every 10 s instead of one per update.
        interval = 0.1 if sys.stderr.isatty() else 10.0
        with tqdm(
            total=total, unit="rec", disable=not progress, desc=f"replay {topic}", mininterval=interval
        ) as bar:
            unreported = 0
            for record in records:
                if bucket is not None:
                    bucket.take()
                future = producer.send(topic, key=record.key, value=record.value, timestamp_ms=None)
                future.add_errback(on_error)
                sent += 1
                by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
                unreported += 1
                if unreported >= 2048:
                    bar.update(unreported)
                    unreported = 0
                    check()
            bar.update(unreported)
            producer.flush()
        seconds = time.monotonic() - started
        check()
    finally:
        producer.close(timeout=10)
    return ReplayStats(
        sent=sent,
        by_kind=by_kind,
        seconds=seconds,
        rate_achieved=sent / seconds if seconds > 0 else 0.0,
    )


# --------------------------------------------------------------------------- CLI


def _spec_from_args(args: argparse.Namespace) -> ScenarioSpec:
    return ScenarioSpec(
        start=date.fromisoformat(args.start),
        days=args.days,
        seed=args.seed,
        other_scale=args.other_scale,
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        invalid_rate=args.invalid_rate,
    )


def _print_summary(manifest: Manifest, out: Any = sys.stdout) -> None:
    days = max(1, manifest.spec["days"])
    print(
        f"scenario   {manifest.spec['start']} .. {manifest.spec['end']} "
        f"({days} days, seed {manifest.spec['seed']}, other_scale "
        f"{manifest.spec['other_scale']})",
        file=out,
    )
    print(
        f"records    {manifest.total_records:,} " + " ".join(f"{k}={v:,}" for k, v in manifest.sent.items()),
        file=out,
    )
    print("invalid    " + " ".join(f"{k}={v}" for k, v in manifest.invalid_reasons.items()), file=out)
    print(f"unique     {manifest.unique_events:,} events, {manifest.unique_events / days:,.0f}/day", file=out)
    per_checkpoint: dict[tuple[str, str], int] = {}
    for (checkpoint_id, _, direction), count in manifest.expected_counts.items():
        per_checkpoint[(checkpoint_id, direction)] = per_checkpoint.get((checkpoint_id, direction), 0) + count
    print("mean events/day per checkpoint (entry / exit):", file=out)
    for checkpoint_id in manifest.spec["checkpoints"]:
        entry = per_checkpoint.get((checkpoint_id, "entry"), 0) / days
        exit_ = per_checkpoint.get((checkpoint_id, "exit"), 0) / days
        print(f"  {checkpoint_id:<14} {entry:>8,.0f} / {exit_:>8,.0f}", file=out)
    print("anomalies:", file=out)
    for anomaly in manifest.anomalies:
        print(
            f"  {anomaly.name} [{anomaly.kind}] {anomaly.checkpoint_id} "
            f"{anomaly.starts} .. {anomaly.ends}: {anomaly.description}",
            file=out,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m load_tests.scenario {generate,replay,summary}``."""
    parser = argparse.ArgumentParser(prog="python -m load_tests.scenario", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--start", default=DEFAULT_START.isoformat(), help="first local day")
    common.add_argument("--days", type=int, default=DEFAULT_DAYS)
    common.add_argument("--seed", type=int, default=7)
    common.add_argument(
        "--other-scale",
        type=float,
        default=1.0,
        help="volume multiplier for every checkpoint but zhibek-zholy",
    )
    common.add_argument("--duplicate-rate", type=float, default=0.01)
    common.add_argument("--late-rate", type=float, default=0.01)
    common.add_argument("--invalid-rate", type=float, default=0.002)
    common.add_argument("--labels", type=Path, help="also write anomalies + ground truth JSON")

    gen = commands.add_parser("generate", parents=[common], help="write records as JSON lines")
    gen.add_argument("--out", type=Path, required=True)
    rep = commands.add_parser("replay", parents=[common], help="produce the scenario to Kafka")
    rep.add_argument("--broker", default=DEFAULT_BROKER)
    rep.add_argument("--topic", default=DEFAULT_TOPIC)
    rep.add_argument("--rate", type=float, help="records/s (default: as fast as possible)")
    rep.add_argument("--no-progress", action="store_true")
    summ = commands.add_parser("summary", parents=[common], help="print the manifest totals")
    summ.add_argument("--json", action="store_true", help="print the full labels JSON")

    args = parser.parse_args(argv)
    try:
        spec = _spec_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    scenario = Scenario(spec)

    if args.command == "generate":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as out:
            for record in scenario.records():
                line: dict[str, Any] = {
                    "key": record.key.decode("utf-8", "replace"),
                    "kind": record.kind,
                    "arrival_ts": round(record.arrival_ts, 3),
                    "invalid_reason": record.invalid_reason,
                }
                try:
                    line["value"] = record.value.decode("utf-8")
                except UnicodeDecodeError:
                    line["value_b64"] = base64.b64encode(record.value).decode("ascii")
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
        _print_summary(scenario.manifest, sys.stderr)
    elif args.command == "replay":
        stats = replay(
            scenario.records(),
            args.broker,
            args.topic,
            rate=args.rate,
            progress=not args.no_progress,
        )
        print(
            f"sent {stats.sent:,} records in {stats.seconds:.1f}s "
            f"({stats.rate_achieved:,.0f}/s): {stats.by_kind}",
            file=sys.stderr,
        )
    else:
        for _ in scenario.records():
            pass
        if args.json:
            print(json.dumps(scenario.manifest.to_json(), indent=1))
        else:
            _print_summary(scenario.manifest)
    if args.labels:
        write_labels(args.labels, manifest=scenario.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
