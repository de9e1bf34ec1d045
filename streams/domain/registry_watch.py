"""Noticing that the registry file changed, for a worker that reloads it while it runs.

Plain file polling (the worker's 1 s timer asks): it follows symlinks, so a Kubernetes
ConfigMap's atomic swap of its ``..data`` link is seen like an edit in place. A change
that does not load (bad YAML, a schema violation, an unknown time zone) is reported
once per version of the file, and the registry in use stays as it was. A file is read
only once it has not changed for one poll, so a half-written file is never applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from streams.domain.registry import Checkpoint, RegistryError, load_registry


@dataclass
class RegistryWatch:
    path: Path
    #: Digest of the contents last loaded or refused: nothing is reloaded twice.
    _seen: str | None = field(default=None, init=False)
    _stamp: tuple[int, int] | None = field(default=None, init=False)
    _settling: tuple[int, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._stamp, self._seen = self._look()

    def _look(self) -> tuple[tuple[int, int] | None, str | None]:
        try:
            stat = self.path.stat()
            return (stat.st_mtime_ns, stat.st_size), hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None, None

    def poll(self) -> dict[str, Checkpoint] | None:
        """The new registry if the file's contents changed since the last poll, else None.
        Raises ``RegistryError`` (once per version) if the new contents cannot be used."""
        try:
            stat = self.path.stat()
        except OSError as error:
            if self._seen == "missing":
                return None
            self._seen, self._stamp = "missing", None
            raise RegistryError(f"{self.path}: cannot read the registry ({error.strerror})") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        if stamp != self._settling:
            # Changed since the last poll: maybe still being written (a truncated YAML list
            # is valid YAML). Read once it has stayed the same for a whole poll interval.
            self._settling = stamp
            return None
        self._stamp, digest = self._look()
        if digest is None or digest == self._seen:
            return None
        self._seen = digest
        return load_registry(self.path)


__all__ = ["RegistryError", "RegistryWatch"]
