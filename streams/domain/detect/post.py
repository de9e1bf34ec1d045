"""The post view: a post's two directions judged together.

A post that stops reporting falls silent in both directions at once. Early in a quiet
night neither direction alone expects enough for silence to mean anything; their sum can.
So the pair's first detector (``post_owner``) holds one post-level episode (direction
``both``), opened by ``evaluate_post`` once both directions have been evaluated at a time,
and a direction does not open its own drop while it is open (``_post_covers``). A mixin of
``CheckpointDetector``: its methods read the detector's state and its partner's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from streams.domain.detect.assess import Assessment, assess_post_silence
from streams.domain.detect.countmodel import tail_score
from streams.domain.detect.episodes import POST_DIRECTION, Episode, Transition, _total, episode_id
from streams.domain.detect.history import ALARM, NORMAL

if TYPE_CHECKING:
    from streams.domain.detect.detector import CheckpointDetector


class PostView:
    """The post-level half of ``CheckpointDetector`` (see the module docstring)."""

    def pair(self, partner: CheckpointDetector) -> None:
        """Link the post's two directions; ``self`` holds the post-level episode, and its
        ``evaluate_post`` is called once both have been evaluated at a time."""
        self.partner, partner.partner = partner, self
        self.post_owner, partner.post_owner = True, False

    def _post_covers(self, day: date) -> bool:
        """A drop this direction would open belongs to the post: the post-level episode is
        open, or neither direction has counted anything on ``day`` (``evaluate_post``
        judges that silence, on both directions, at the same evaluation)."""
        partner = self.partner
        if partner is None:
            return False
        owner = self if self.post_owner else partner
        if owner.post_episode is not None:
            return True
        # Held back only where the post view could open one (``evaluate_post``): both
        # directions live, the other without a drop of its own (else no alert would come).
        if not (self._live(day) and partner._live(day)):
            return False  # a post half closed or one-way: this direction's own
        if partner.episode is not None and partner.episode.kind == "drop":
            return False
        return self._post_silent(day)

    def _live(self, day: date) -> bool:
        """This direction has traffic to fall silent: not closed, and a level in its recent
        days (a one-way post's empty direction never has one). Read from the saved history,
        never from a cached baseline, so a restarted worker answers the same."""
        if self.closed or self.pattern(day) is not None:
            return False  # an intermittent series' silent days are its pattern
        level = self._recent_level(day)
        return level is not None and level > 0

    def evaluate_post(self, as_of: datetime) -> list[Transition]:
        """The post as a whole, for the pair's first detector once both directions have been
        evaluated at ``as_of``: both directions silent where their summed expectation makes
        that unlikely opens one post-level drop episode ("stopped reporting"); a direction
        does not open its own drop while it is open. It gets one update per completed day,
        says "closed" once both directions are, and resolves when the post's summed flow is
        back in its band (or a closed direction reopens)."""
        partner = self.partner
        if partner is None or not self.post_owner:
            return []
        local = as_of.astimezone(self.checkpoint.tz)
        day = local.date()
        if self.last_day != day or partner.last_day != day:
            return []  # both directions must have been evaluated at this time
        previous, self.post_day = self.post_day, day
        completed = previous if previous is not None and previous < day else None
        episode = self.post_episode
        if episode is not None:
            transitions = [
                replace(t, direction=POST_DIRECTION)
                for t in self._post_update(episode, day, local, completed, as_of)
            ]
            if self.post_episode is not None:
                self.alarm_today = partner.alarm_today = True
            else:
                transitions += self._hand_over(day, as_of)
            return transitions
        if not (self._live(day) and partner._live(day)):
            return []
        if any(d.episode is not None and d.episode.kind == "drop" for d in (self, partner)):
            return []  # a direction already says it fell: a post episode would only repeat it
        # Only silence opens one: the assessment is worked out when both counted nothing.
        found = None
        if completed is not None and self._post_silent(completed):
            found = self._post_assessment(completed, None)
        if (found is None or found.kind is None) and self._post_silent(day):
            found = self._post_assessment(day, local)
        if found is None or found.kind is None:
            return []
        if found.window == "full_day":
            for detector in (self, partner):  # the day was recorded before the post judged it
                got = detector.history.get(found.local_day)
                if got is not None and got[1] == NORMAL:
                    detector.history.record(found.local_day, got[0], ALARM)
                    # Baselines built since (today's) read that day as ordinary; a restarted
                    # worker would build them with the alarm: build them again here too.
                    detector._baselines.clear()
        self.post_episode = Episode(
            episode_id=episode_id(self.checkpoint.checkpoint_id, POST_DIRECTION, "drop", local),
            kind="drop",
            opened_by=found.window,
            opened_as_of=as_of.isoformat(),
            peak_observed=found.observed,
            peak_expected=found.expected,
            peak_day=found.local_day.isoformat() if found.window == "full_day" else None,
            cause="no_data",
        )
        self.alarm_today = partner.alarm_today = True
        return [Transition("firing", self.post_episode, found, as_of, opened=True, direction=POST_DIRECTION)]

    def _hand_over(self, day: date, as_of: datetime) -> list[Transition]:
        """The post's episode has ended while a direction is still closed: that direction's
        closure, which the post's episode spoke for (its own drop was held back), becomes an
        episode of its own, so an operator still has an open alert for it until it reopens."""
        transitions = []
        local = as_of.astimezone(self.checkpoint.tz)
        for detector in (self, self.partner):
            assert detector is not None
            if not detector.closed or detector.episode is not None:
                continue
            since = detector.closed_since
            assert since is not None
            total = _total(detector.lookup(day))
            level = detector._recent_level(since) or 0.0  # what the closure took away
            if level < max(self.config.min_expected, self.config.reopen_min):
                # Too quiet for a drop of its own ever to be judged, or for a day to reach
                # ``reopen_min`` soon: an episode of its own could stay open for weeks.
                continue
            detector.episode = Episode(
                episode_id=episode_id(self.checkpoint.checkpoint_id, detector.direction, "drop", local),
                kind="drop",
                opened_by="running_day",
                opened_as_of=as_of.isoformat(),
                peak_observed=total,
                peak_expected=level,
                cause="closed",
            )
            detector.alarm_today = True
            assessment = Assessment(
                "running_day",
                day,
                total,
                level,
                total / level if level else 0.0,
                "drop",
                (),
                "closed",
                (0.0, 0.0),
                None,
                (f"closed since {since.isoformat()}; the rest of the post is back",),
                0.1,
                tail_score(total, level, 0.1) if level else 0.0,
            )
            opened = Transition("firing", detector.episode, assessment, as_of, opened=True)
            transitions.append(replace(opened, direction=detector.direction))
        return transitions

    def _post_silent(self, day: date) -> bool:
        assert self.partner is not None
        return _total(self.lookup(day)) == 0 and _total(self.partner.lookup(day)) == 0

    def _post_assessment(self, day: date, local: datetime | None) -> Assessment | None:
        """Both directions summed on ``day`` (so far at ``local``, or the whole day)."""
        assert self.partner is not None
        parts = []
        for detector in (self, self.partner):
            baseline = None if detector.closed else detector.baseline(day)
            count = _total(detector.lookup(day))
            if baseline is None and count == 0:
                continue
            parts.append((detector.direction, baseline, count))
        if not any(baseline is not None for _, baseline, _ in parts):
            return None
        return assess_post_silence(parts, local, self.config)

    def _post_update(
        self, episode: Episode, day: date, local: datetime, completed: date | None, as_of: datetime
    ) -> list[Transition]:
        partner = self.partner
        assert partner is not None
        if self.closed and partner.closed:
            if episode.cause == "closed":
                return []
            episode.cause = "closed"
            since = min(d for d in (self.closed_since, partner.closed_since) if d is not None)
            last = completed or day
            total = _total(self.lookup(last)) + _total(partner.lookup(last))
            assessment = Assessment(
                "full_day",
                last,
                total,
                episode.peak_expected,
                total / episode.peak_expected if episode.peak_expected else 0.0,
                "drop",
                (),
                "closed",
                (0.0, 0.0),
                None,
                (f"closed since {since.isoformat()}: both directions at or near zero",),
                0.1,
                tail_score(total, episode.peak_expected, 0.1) if episode.peak_expected else 0.0,
                post=True,
            )
            return [Transition("firing", episode, assessment, as_of, opened=False)]
        if episode.cause == "closed":
            # A direction has reopened (its own "reopened" surge says so). Once both have, the
            # closure is over; while one is still closed the post's episode waits for the day
            # to end (directions often reopen hours apart), then hands that one its closure.
            if (self.closed or partner.closed) and completed is None:
                return []
            last = completed or day  # the day that ended with a direction still closed, if so
            total = _total(self.lookup(last)) + _total(partner.lookup(last))
            assessment = Assessment(
                "full_day" if completed else "running_day",
                last,
                total,
                0.0,
                float(total),
                None,
                (),
                "reopened",
                (0.0, float(self.config.reopen_min)),
                None,
                (),
                0.5,
                0.0,
                post=True,
            )
            self.post_episode = None
            return [Transition("resolved", episode, assessment, as_of, opened=False)]
        transitions: list[Transition] = []
        if completed is not None:
            full = self._post_assessment(completed, None)
            if full is not None:
                if episode.clears(full, self.config):
                    self.post_episode = None
                    return [Transition("resolved", episode, full, as_of, opened=False)]
                departure = abs(math.log(max(full.ratio, 1e-6)))
                best = abs(math.log(max(episode.peak_observed, 1) / max(episode.peak_expected, 1e-6)))
                if episode.peak_day is None or departure >= best:
                    episode.peak_observed, episode.peak_expected = full.observed, full.expected
                    episode.peak_day = full.local_day.isoformat()
                transitions.append(Transition("firing", episode, full, as_of, opened=False))
        running = self._post_assessment(day, local)
        if running is not None and episode.clears(running, self.config):
            self.post_episode = None
            transitions.append(Transition("resolved", episode, running, as_of, opened=False))
        return transitions
