"""One real Kafka broker (the project's own, from its Maven jars) for the integration tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from streams.ops import broker

PORT = int(os.environ.get("CROSSINGS_TEST_KAFKA_PORT", "19492"))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    """Bootstrap of a broker for this session: $CROSSINGS_TEST_BOOTSTRAP, or one started here."""
    external = os.environ.get("CROSSINGS_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    kafka_dir = Path(tmp_path_factory.mktemp("kafka"))
    status = broker.up(kafka_dir, PORT, timeout=180)
    try:
        yield status.bootstrap
    finally:
        broker.down(kafka_dir)


@pytest.fixture
def namespace() -> str:
    """Topic namespace and app id unique to one test, so tests sharing the broker never mix."""
    return f"it-{uuid.uuid4().hex[:10]}"
