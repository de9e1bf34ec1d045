"""``crossings backtest``: the worker's detector over any count series (no Faust, no Kafka)."""

from streams.backtest.labels import Label, Score, read_labels, score
from streams.backtest.render import render
from streams.backtest.run import EpisodeRow, backtest, evaluation_count
from streams.backtest.series import Columns, SeriesError, SeriesSet, build_series, read_rows

__all__ = [
    "Columns",
    "EpisodeRow",
    "Label",
    "Score",
    "SeriesError",
    "SeriesSet",
    "backtest",
    "build_series",
    "evaluation_count",
    "read_labels",
    "read_rows",
    "render",
    "score",
]
