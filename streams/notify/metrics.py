"""Prometheus metrics of ``crossings notify`` (its own port, ``CROSSINGS_NOTIFY_WEB_PORT``).

Labels are bounded by configuration: ``sink`` is the receiver kind, ``target`` its scheme,
host and port (never the path or query, which may hold a token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

#: ``outcome`` of crossings_notify_deliveries_total.
OUTCOMES = ("delivered", "rejected", "gave_up", "malformed")


@dataclass
class NotifyMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        disable_created_metrics()
        r = self.registry
        self.deliveries = Counter(
            "crossings_notify_deliveries",
            "Alert messages done with, per receiver: delivered, rejected by the receiver (a 4xx "
            "that retrying cannot fix), gave_up (still failing after CROSSINGS_NOTIFY_GIVE_UP_SECONDS) "
            "or malformed (not an alert, never sent); the last three are on the alerts.undelivered topic.",
            ["sink", "target", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "crossings_notify_retries",
            "Failed attempts that were tried again after a backoff (receiver down, 5xx, 429, timeout).",
            ["sink", "target"],
            registry=r,
        )
        self.latency = Histogram(
            "crossings_notify_delivery_seconds",
            "From a message's first attempt to its delivery, retries included.",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.firing = Gauge(
            "crossings_notify_firing",
            "Open episodes re-posted to this Alertmanager every CROSSINGS_NOTIFY_RESEND_SECONDS.",
            ["target"],
            registry=r,
        )
        self.resends = Counter(
            "crossings_notify_resends",
            "Re-posts of the open episodes to an Alertmanager (ok or failed; a failed one is tried "
            "again at the next interval).",
            ["target", "outcome"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "crossings_notify_committed_offset",
            "Next alerts-topic offset to deliver to this receiver (committed).",
            ["sink", "target"],
            registry=r,
        )
        self.receiver_up = Gauge(
            "crossings_notify_receiver_up",
            "1 while this receiver's delivery loop runs; 0 while it waits to be restarted after an "
            "unexpected error (the other receivers go on delivering).",
            ["sink", "target"],
            registry=r,
        )
        self.receiver_failures = Counter(
            "crossings_notify_receiver_failures",
            "Times this receiver's delivery loop stopped on an unexpected error (error: the "
            "exception's class) and was restarted after a backoff.",
            ["sink", "target", "error"],
            registry=r,
        )

    def declare_receiver(self, sink: str, target: str) -> None:
        """Export a receiver's counters at zero before its first message.

        A counter whose series first appears at 3 has no increase for ``rate()`` to see:
        CrossingsDeliveryFailing ("retries unless deliveries") would then fire for a
        receiver that failed twice and delivered at once, the first deliveries lost between
        two scrapes.
        """
        for outcome in OUTCOMES:
            self.deliveries.labels(sink, target, outcome)
        self.retries.labels(sink, target)
