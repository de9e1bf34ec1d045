"""``crossings notify``: the delivery stage that reads the alerts topic (the outbox) and
delivers each message to Alertmanager and to signed webhooks, committing a receiver's
offset only once the message is delivered (or dead-lettered after its give-up time).

Plain modules hold the decisions (no Faust, no Kafka, no HTTP): ``message`` (an alert
record and its idempotency key), ``firing`` (the episodes open at a receiver, rebuilt
from the topic at start), ``alertmanager`` (alert message -> Alertmanager alert),
``signing`` (the webhook HMAC), ``retry`` (backoff and what a response means). The loop
around them is ``receivers`` (HTTP), ``metrics`` and ``runner`` (Kafka).
"""
