"""The episodes open at one Alertmanager: what ``crossings notify`` re-posts while they fire.

Rebuilt at start from the alerts topic (the outbox) up to the receiver's committed offset,
then kept up to date message by message, so a restart re-posts exactly the episodes still
open. The alerts topic keeps messages for its retention time (7 days by default, not
compacted); an open episode gets a ``full_day`` update every local day, so its latest
message is always there to rebuild from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alert_type import Alert
from streams.notify.alertmanager import alert_name, to_alertmanager


@dataclass(frozen=True)
class Episode:
    """An episode as Alertmanager sees it: a name and start fixed by its first message
    seen, and the newest message's figures."""

    name: str
    starts_at: str
    latest: Alert

    def posted(self, generator_template: str) -> dict[str, Any]:
        return to_alertmanager(
            self.latest, name=self.name, starts_at=self.starts_at, generator_template=generator_template
        )


class FiringSet:
    """Open episodes by id. ``apply`` each message in topic order."""

    def __init__(self) -> None:
        self._open: dict[str, Episode] = {}

    def apply(self, alert: Alert) -> Episode:
        """Take in one message; returns the episode as this message shows it (a resolve
        returns the closed episode with the resolving figures)."""
        known = self._open.get(alert.episode_id)
        if known is None:
            episode = Episode(alert_name(alert), alert.as_of, alert)
        else:
            episode = Episode(known.name, known.starts_at, alert)
        if alert.status == "resolved":
            self._open.pop(alert.episode_id, None)
        else:
            self._open[alert.episode_id] = episode
        return episode

    def open(self) -> list[Episode]:
        return list(self._open.values())

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in self._open
