"""The quarantine board: files through which a worker says which partitions it holds back,
and an operator asks it to move a record aside.

A folder under the worker's state (``<CROSSINGS_HOME>/worker/quarantine``), local to the
process that owns the partitions, so ``crossings quarantine`` runs where the worker runs
(``kubectl exec``) and needs no network endpoint:

- ``p<P>.json``: written by the worker while partition P is quarantined (cause, error,
  the offsets its failing commit holds, the refused record when known); removed when P
  commits again;
- ``skip-p<P>-o<O>.json``: written by ``crossings quarantine skip``; the worker reads it
  at its next tick, dead-letters the record at offset O (reason ``skipped``) in the next
  commit's transaction, and removes the file once that commit is made.

Every file is written whole (temporary name, then rename), so a reader never sees half.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

_HOLD = re.compile(r"^p(\d+)\.json$")
_SKIP = re.compile(r"^skip-p(\d+)-o(\d+)\.json$")


@dataclass(frozen=True)
class Quarantined:
    partition: int
    cause: str
    error: str
    since: float
    attempts: int
    first_offset: int | None
    last_offset: int | None
    #: The record whose output the broker refused, when the error says which.
    offset: int | None
    hint: str


class QuarantineBoard:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _write(self, name: str, payload: dict[str, object]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f".{name}.tmp"
        temp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(temp, self.root / name)

    def hold(self, entry: Quarantined) -> None:
        self._write(f"p{entry.partition}.json", asdict(entry))

    def release(self, partition: int) -> None:
        (self.root / f"p{partition}.json").unlink(missing_ok=True)

    def held(self) -> list[Quarantined]:
        found = []
        for path in sorted(self.root.glob("p*.json")) if self.root.is_dir() else ():
            if _HOLD.match(path.name):
                try:
                    found.append(Quarantined(**json.loads(path.read_text())))
                except (OSError, ValueError, TypeError):
                    continue  # being replaced, or not ours
        return sorted(found, key=lambda entry: entry.partition)

    def request_skip(self, partition: int, offset: int, by: str) -> Path:
        name = f"skip-p{partition}-o{offset}.json"
        self._write(name, {"partition": partition, "offset": offset, "requested_by": by})
        return self.root / name

    def skip_requests(self) -> dict[int, frozenset[int]]:
        requests: dict[int, set[int]] = {}
        for path in self.root.glob("skip-p*.json") if self.root.is_dir() else ():
            match = _SKIP.match(path.name)
            if match:
                requests.setdefault(int(match[1]), set()).add(int(match[2]))
        return {partition: frozenset(offsets) for partition, offsets in requests.items()}

    def done_skips(self, partition: int, applied_offset: int) -> None:
        """Skip requests of ``partition`` at or below its committed offset are carried out."""
        for offset in self.skip_requests().get(partition, ()):
            if offset <= applied_offset:
                (self.root / f"skip-p{partition}-o{offset}.json").unlink(missing_ok=True)
