"""The event row and the alert, each defined once: their fields, types and versions.

Everything that spells out a row derives from these tuples: the lake's Arrow schemas
(``sinks/parquet/layout.py``), its writers (``sink.py``), the replay's and the backtest's
readers (``replay/sources.py``), the event's fast decoder (``domain/event.py``), the
typed alert ``crossings notify`` reads (``domain/alert_type.py``). The JSON
Schemas in ``schemas/`` stay files (they are the public wire contract); a test holds them
to these definitions, and ``schemas/lake.json`` publishes the lake's columns per version.

Changes are additive: a new column gets ``since`` = the next version and is nullable (files
written before it read it as null); a column is never removed, renamed or retyped
(:func:`breaking_changes` says what would break, and a test runs it on every version).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

#: Types a column can have; ``layout.ARROW_TYPES`` maps each to its Arrow type.
TYPES: Final = frozenset(
    {
        "string",
        "binary",
        "int8",
        "int16",
        "int32",
        "int64",
        "float64",
        "timestamp[us]",
        "timestamp[ms]",
        "date",
        "list<float64>",
        "list<string>",
    }
)


@dataclass(frozen=True)
class Column:
    """One field of a row. ``lake``: a column of the dataset's Parquet files (False: only in
    the message, or in the hive folder name); ``wire``: a field of the JSON message."""

    name: str
    type: str
    nullable: bool = False
    #: The version of the row that added it.
    since: int = 1
    lake: bool = True
    wire: bool = True
    #: In the lake, the message's value as JSON text (a list of objects in one column).
    json: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} is not one of {sorted(TYPES)}")
        if self.since > 1 and not self.nullable:
            raise ValueError(
                f"column {self.name} added in v{self.since} must be nullable (older files lack it)"
            )

    @property
    def lake_name(self) -> str:
        return f"{self.name}_json" if self.json else self.name


def _lake(name: str, type_: str, doc: str = "", **kw: object) -> Column:
    return Column(name, type_, wire=False, doc=doc, **kw)  # type: ignore[arg-type]


def _wire(name: str, type_: str, doc: str = "", **kw: object) -> Column:
    return Column(name, type_, lake=False, doc=doc, **kw)  # type: ignore[arg-type]


#: A crossing: the message of schemas/crossing_event.v1.json and the row of ``events/``.
EVENT: Final = (
    _wire("version", "int16", "schema major version of the message"),
    Column("event_id", "string", doc="unique per crossing: the de-duplication key"),
    _wire("checkpoint_id", "string", "in the lake: the checkpoint=ID folder"),
    Column("direction", "string"),
    Column("occurred_at", "timestamp[us]", doc="when the person crossed (event time)"),
    _lake("local_hour", "int8", "the checkpoint's local hour of occurred_at"),
    Column("nationality", "string"),
    Column("purpose", "string"),
    Column("mode", "string"),
    Column("outcome", "string"),
    _lake("kafka_partition", "int32", "where the event was read"),
    _lake("kafka_offset", "int64"),
    _lake("kafka_timestamp", "timestamp[ms]", "when it reached Kafka (broker time): deterministic"),
)

#: An alert: the message of schemas/alert.v1.json and the row of ``alerts/``.
ALERT: Final = (
    Column("version", "int16"),
    Column("alert_id", "string"),
    Column("episode_id", "string"),
    Column("status", "string"),
    Column("kind", "string"),
    _wire("checkpoint_id", "string", "in the lake: the checkpoint=ID folder"),
    Column("checkpoint_name", "string"),
    Column("direction", "string"),
    _wire("local_day", "date", "in the lake: the date=D folder"),
    Column("window", "string"),
    Column("as_of", "timestamp[us]"),
    Column("raised_at", "timestamp[us]"),
    Column("observed", "int64"),
    Column("expected", "float64"),
    Column("ratio", "float64"),
    Column("score", "float64"),
    Column("drivers", "string", json=True, doc="the groups that moved most, as JSON in the lake"),
    Column("summary", "string"),
    Column("cause", "string", nullable=True, since=2, doc="null in files of v1: read as level"),
    Column("scope", "string", nullable=True, since=2, doc="the nationality of a group alert"),
    _wire("band", "list<float64>", "the normal range [low, high]", nullable=True),
    _wire("notes", "list<string>", "why the expectation is what it is", nullable=True),
)

#: A checkpoint-day's counts in one partition (``daily_counts/``); no message.
DAILY_COUNT: Final = (
    _lake("direction", "string"),
    _lake("nationality", "string"),
    _lake("purpose", "string"),
    _lake("count", "int64"),
    _lake("as_of", "timestamp[us]"),
)

#: A replay's invalid message (``dead_letters/``): its bytes and why.
DEAD_LETTER: Final = (
    _lake("kafka_partition", "int32"),
    _lake("kafka_offset", "int64"),
    _lake("reason", "string"),
    _lake("detail", "string"),
    _lake("key", "binary", nullable=True),
    _lake("value", "binary", nullable=True),
    _lake("original_size", "int64", "set when key and value were cut: the whole size", nullable=True),
    _lake("original_sha256", "string", "and the whole value's SHA-256 (hex)", nullable=True),
)

#: Each lake dataset's row, by folder name.
DATASETS: Final = {"events": EVENT, "alerts": ALERT, "daily_counts": DAILY_COUNT, "dead_letters": DEAD_LETTER}


def lake_columns(row: Sequence[Column], version: int | None = None) -> tuple[Column, ...]:
    """The row's Parquet columns (as of ``version``; default: the newest)."""
    return tuple(c for c in row if c.lake and (version is None or c.since <= version))


def wire_fields(row: Sequence[Column]) -> tuple[Column, ...]:
    return tuple(c for c in row if c.wire)


def version(row: Sequence[Column]) -> int:
    """The row's newest lake version."""
    return max(c.since for c in lake_columns(row))


def breaking_changes(old: Sequence[Column], new: Sequence[Column]) -> list[str]:
    """What in ``new`` would break a reader or a file of ``old`` (both lake columns): a
    column removed or retyped, made nullable or required, or added without being nullable."""
    problems = []
    now = {c.lake_name: c for c in new}
    for column in old:
        was = f"{column.lake_name} ({column.type}{', nullable' if column.nullable else ''})"
        match = now.pop(column.lake_name, None)
        if match is None:
            problems.append(f"{was} was removed")
        elif match.type != column.type:
            problems.append(f"{was} is now {match.type}")
        elif match.nullable != column.nullable:
            problems.append(f"{was} is now {'nullable' if match.nullable else 'required'}")
    problems += [
        f"{c.lake_name} was added but is required: files without it break"
        for c in now.values()
        if not c.nullable
    ]
    return problems


def contract(row: Sequence[Column]) -> dict[str, list[list[object]]]:
    """Each version's lake columns, ``[name, type, nullable]``: what ``schemas/lake.json`` holds."""
    return {
        str(v): [[c.lake_name, c.type, c.nullable] for c in lake_columns(row, v)]
        for v in range(1, version(row) + 1)
    }


def contract_problems(published: dict[str, dict[str, list[list[object]]]]) -> list[str]:
    """How the definitions differ from ``published`` (``schemas/lake.json``): a published
    version is never changed, and each version only adds to the one before."""
    problems = []
    for dataset, row in DATASETS.items():
        now, was = contract(row), published.get(dataset, {})
        for v, columns in was.items():
            if now.get(v) != columns:
                published_columns = [Column(*c) for c in columns]  # type: ignore[arg-type]
                defined = [Column(*c) for c in now.get(v, [])]  # type: ignore[arg-type]
                changes = breaking_changes(published_columns, defined) or ["its columns are in another order"]
                problems += [f"{dataset} v{v} is published, but in the definition {c}" for c in changes]
        for v in now:
            if v not in was:
                problems.append(f"{dataset} v{v} is not in schemas/lake.json: run `make schemas`")
        versions = sorted(was, key=int)
        for old, new in itertools.pairwise(versions):
            before, after = ([Column(*column) for column in was[k]] for k in (old, new))  # type: ignore[arg-type]
            problems += [f"{dataset} v{new}: {p}" for p in breaking_changes(before, after)]
    return problems


def updated_contract(
    published: dict[str, dict[str, list[list[object]]]],
) -> dict[str, dict[str, list[list[object]]]]:
    """``published`` with the definitions' new versions added; refuses to change a published one."""
    changed = [p for p in contract_problems(published) if "is not in schemas/lake.json" not in p]
    if changed:
        raise ValueError(
            "a published lake version cannot change (add a nullable column with since = the next "
            "version instead):\n  " + "\n  ".join(changed)
        )
    return {dataset: {**published.get(dataset, {}), **contract(row)} for dataset, row in DATASETS.items()}


if __name__ == "__main__":  # `make schemas`: python -m streams.domain.rows schemas/lake.json
    import json
    import sys
    from pathlib import Path

    target = Path(sys.argv[1])
    current = json.loads(target.read_text()) if target.exists() else {}
    try:
        updated = updated_contract(current)
    except ValueError as error:
        sys.exit(f"{target}: {error}")
    lines = ["{"]
    for i, (dataset, versions) in enumerate(updated.items()):
        lines.append(f'  "{dataset}": {{')
        for j, (v, columns) in enumerate(versions.items()):
            lines.append(f'    "{v}": [')
            lines += [f"      {json.dumps(c)}," for c in columns]
            lines[-1] = lines[-1].rstrip(",")
            lines.append("    ]" + ("," if j < len(versions) - 1 else ""))
        lines.append("  }" + ("," if i < len(DATASETS) - 1 else ""))
    target.write_text("\n".join([*lines, "}"]) + "\n")
