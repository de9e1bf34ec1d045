"""Synthetic border-crossing traffic with labelled anomalies: see :mod:`.generate`."""

from load_tests.scenario.generate import (
    DEFAULT_START,
    INVALID_REASONS,
    GeneratedRecord,
    Manifest,
    ReplayError,
    Scenario,
    ScenarioSpec,
    default_anomalies,
    generate,
    load_checkpoints,
    replay,
    write_labels,
)

__all__ = [
    "DEFAULT_START",
    "INVALID_REASONS",
    "GeneratedRecord",
    "Manifest",
    "ReplayError",
    "Scenario",
    "ScenarioSpec",
    "default_anomalies",
    "generate",
    "load_checkpoints",
    "replay",
    "write_labels",
]
