"""Logging for the installed ``crossings`` command: text for people, JSON for log shippers.

One ``logging.config.dictConfig`` dictionary serves two places: the CLI entry applies it
before any command runs (so ``crossings kafka up`` reports the first Maven download as it
happens), and ``crossings worker`` hands the same dictionary to Faust's worker, which
otherwise replaces the root handlers with its own coloured stdout format when it starts.

``CROSSINGS_LOG_FORMAT=text|json`` picks the format, ``CROSSINGS_LOG_LEVEL`` the level.
Below DEBUG, the libraries (Faust, mode, aiokafka, kafka-python) say only what needs
action: their INFO lines (a score of connection notes per command, every service starting
and stopping) are off, and so are two notes that look alarming and are not: aiokafka's
ERROR ``GroupCoordinatorNotAvailableError`` while a new broker elects the group's
coordinator (retried until it has), and mode's "Timer ... is overlapping" when a 1 s timer
ran longer than a second (lag shows on ``/metrics``). What the worker does and where is
logged by ``streams.*`` at INFO.
Logs go to stderr, so a command's output on stdout (a report, CSV, JSON) stays clean for a
pipe. JSON lines come from python-json-logger: one object per record with ``time``,
``level``, ``logger`` and ``message``, plus ``exc_info`` for a traceback and any ``extra``.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from collections.abc import Mapping
from typing import Any

from streams.settings import ConfigError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Fields of each JSON line, renamed to what log shippers (Loki, Elastic, Vector) expect.
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_RENAME = {"levelname": "level", "name": "logger"}
#: Libraries whose INFO lines are off unless CROSSINGS_LOG_LEVEL=DEBUG ...
LIBRARIES = ("kafka", "aiokafka", "faust", "mode")
#: ... but for the worker's "Ready" and "Stopping..." (``faust.worker`` stays at INFO).
WORKER_NOTES = ("]: Ready", "]: Stopping...")
#: (logger, words of the message) of notes that are harmless and look like trouble.
HARMLESS = (
    ("aiokafka.consumer.group_coordinator", "GroupCoordinatorNotAvailableError"),
    # ... and the warnings that follow it while the new broker elects the coordinator.
    ("aiokafka.consumer.group_coordinator", "Marking the coordinator dead"),
    ("mode.timers", " is overlapping "),
)
#: A mode service starting or stopping ("[^--ReadCommittedConsumer]: Starting..."), a
#: dozen per start and stop, whichever module it is in.
SERVICE_NOTE = re.compile(r"^\[\^-*[^\]]*\]: (Starting|Stopping|Cleanup|Gathering|Closing)")


class HarmlessNotes(logging.Filter):
    """Drops the notes of ``HARMLESS``, services starting and stopping, and all of the
    Faust worker's INFO lines but ``WORKER_NOTES`` (the handler has this filter unless the
    level is DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(record.name == name and words in message for name, words in HARMLESS):
            return False
        if record.levelno == logging.INFO and record.name == "faust.worker":
            return any(note in message for note in WORKER_NOTES)
        return not (record.levelno == logging.INFO and SERVICE_NOTE.match(message))


def log_options(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(format, level) from ``CROSSINGS_LOG_FORMAT`` and ``CROSSINGS_LOG_LEVEL``."""
    env = os.environ if env is None else env
    fmt = (env.get("CROSSINGS_LOG_FORMAT") or "text").strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"CROSSINGS_LOG_FORMAT={fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    level = (env.get("CROSSINGS_LOG_LEVEL") or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"CROSSINGS_LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    return fmt, level


def logging_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` dictionary: one stderr handler on the root logger; below DEBUG,
    the libraries at WARNING (or the level, if higher) and their harmless notes dropped."""
    if fmt == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": dict(JSON_RENAME),
            # ISO 8601 in UTC under "time" (the record's creation time).
            "timestamp": "time",
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    quiet = level != "DEBUG"
    library_level = level if LOG_LEVELS.index(level) > LOG_LEVELS.index("WARNING") else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"crossings": formatter},
        "filters": {"harmless": {"()": f"{__name__}.HarmlessNotes"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "crossings",
                "filters": ["harmless"] if quiet else [],
            }
        },
        "loggers": {
            **{name: {"level": library_level if quiet else level} for name in LIBRARIES},
            "faust.worker": {"level": level},
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Apply the configured logging; returns the dictionary (for Faust's worker)."""
    config = logging_config(*log_options(env))
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config
