"""Logging for the installed ``crossings`` command: text for people, JSON for log shippers.

One ``logging.config.dictConfig`` dictionary serves two places: the CLI entry applies it
before any command runs (so ``crossings kafka up`` reports the first Maven download as it
happens), and ``crossings worker`` hands the same dictionary to Faust's worker, which
otherwise replaces the root handlers with its own coloured stdout format when it starts.

``CROSSINGS_LOG_FORMAT=text|json`` picks the format, ``CROSSINGS_LOG_LEVEL`` the level.
Logs go to stderr, so a command's output on stdout (a report, CSV, JSON) stays clean for a
pipe. JSON lines come from python-json-logger: one object per record with ``time``,
``level``, ``logger`` and ``message``, plus ``exc_info`` for a traceback and any ``extra``.
"""

from __future__ import annotations

import logging
import logging.config
import os
from collections.abc import Mapping
from typing import Any

from streams.settings import ConfigError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Fields of each JSON line, renamed to what log shippers (Loki, Elastic, Vector) expect.
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_RENAME = {"levelname": "level", "name": "logger"}


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
    """A ``dictConfig`` dictionary: one stderr handler on the root logger."""
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
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"crossings": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "crossings",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Apply the configured logging; returns the dictionary (for Faust's worker)."""
    config = logging_config(*log_options(env))
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config
