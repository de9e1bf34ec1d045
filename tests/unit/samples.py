"""A valid crossing event, shared by tests that mutate it."""

GOOD_EVENT = {
    "version": 1,
    "event_id": "zz-000000001",
    "checkpoint_id": "zhibek-zholy",
    "direction": "entry",
    "occurred_at": "2024-03-01T09:15:03+05:00",
    "nationality": "UZB",
    "purpose": "labour",
    "mode": "bus",
    "outcome": "admitted",
}
