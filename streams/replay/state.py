"""Which lake a replay's state belongs to.

A replay's state records, per partition, the last source offset it applied; a record at
or below it is taken as already written to the lake. That is only true of the lake the
state was written with: the same state used for a second lake makes a replay skip every
record and write nothing. So the state lives in its lake by default
(``<data>/_replay_state/``, hidden from readers like ``_staging/``), and a state folder
records the lake it was made for (``lake.json``); a state of another lake is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

#: The default state folder of a lake's replays, inside the lake.
STATE_FOLDER = "_replay_state"
#: In a state folder: the lake it belongs to.
MARKER = "lake.json"


class StateOfAnotherLake(ValueError):
    """A replay's state was made for another lake (or does not say which); the message
    says which and what to do."""


def default_state_dir(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FOLDER


def claim(state_dir: Path, data_dir: Path) -> None:
    """Bind ``state_dir`` to the lake at ``data_dir`` (written on first use); raise
    ``StateOfAnotherLake`` if it belongs to another. A state inside its lake belongs to
    it wherever the lake is moved or copied to."""
    state_dir, lake = Path(state_dir).absolute(), Path(data_dir).absolute()
    marker = state_dir / MARKER
    inside = state_dir.resolve().is_relative_to(lake.resolve())
    if marker.is_file():
        recorded = _recorded_lake(marker)
        if not inside and recorded != lake.resolve():
            raise StateOfAnotherLake(
                f"the replay state {state_dir} belongs to the lake {recorded}, not to {lake}: "
                f"its records count as written there, so nothing would be written here. Leave "
                f"out --state (each lake keeps its own, in <data>/{STATE_FOLDER}) or give "
                "this lake a state folder of its own"
            )
    elif _holds_partitions(state_dir):
        raise StateOfAnotherLake(
            f"the replay state {state_dir} does not say which lake it belongs to (an older "
            f"crossings wrote it, shared by every --data): it may be another lake's, and its "
            f"records would count as written to {lake}. Leave out --state (each lake keeps "
            f"its own, in <data>/{STATE_FOLDER}), or remove {state_dir} to start over"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"lake": str(lake.resolve())}) + "\n", encoding="utf-8")


def _recorded_lake(marker: Path) -> Path:
    try:
        return Path(json.loads(marker.read_text(encoding="utf-8"))["lake"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StateOfAnotherLake(
            f"{marker} is unreadable ({error}): remove the folder {marker.parent} to start over"
        ) from None


def _holds_partitions(state_dir: Path) -> bool:
    return state_dir.is_dir() and any(state_dir.glob("partition-*"))
