"""Spike and drop detection: a baseline per checkpoint-day and a detector with episodes."""

from streams.domain.detect.baseline import Baseline, BaselineConfig, build_baseline
from streams.domain.detect.detector import (
    POST_DIRECTION,
    Assessment,
    Band,
    CheckpointDetector,
    DetectorConfig,
    DetectorState,
    Driver,
    Episode,
    Transition,
    full_day_band,
)

__all__ = [
    "POST_DIRECTION",
    "Assessment",
    "Band",
    "Baseline",
    "BaselineConfig",
    "CheckpointDetector",
    "DetectorConfig",
    "DetectorState",
    "Driver",
    "Episode",
    "Transition",
    "build_baseline",
    "full_day_band",
]
