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

# Modules, in the order they build on each other: profiles (who crosses where), spec
# (window, rates, anomalies), model (a checkpoint's cells and rhythm), local_time,
# invalid (broken payloads), manifest (ground truth), generate (the Scenario),
# kafka_replay, cli. The names below are what callers import from the package.

from load_tests.scenario.generate import (
    RECORD_KINDS,
    GeneratedRecord,
    Scenario,
    build_manifest,
    generate,
    write_labels,
)
from load_tests.scenario.invalid import INVALID_REASONS
from load_tests.scenario.kafka_replay import ReplayError, ReplayStats, replay
from load_tests.scenario.manifest import Manifest
from load_tests.scenario.spec import (
    DEFAULT_DAYS,
    DEFAULT_START,
    Anomaly,
    ScenarioSpec,
    closure,
    default_anomalies,
    labour_surge,
    load_checkpoints,
)

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_START",
    "INVALID_REASONS",
    "RECORD_KINDS",
    "Anomaly",
    "GeneratedRecord",
    "Manifest",
    "ReplayError",
    "ReplayStats",
    "Scenario",
    "ScenarioSpec",
    "build_manifest",
    "closure",
    "default_anomalies",
    "generate",
    "labour_surge",
    "load_checkpoints",
    "replay",
    "write_labels",
]
