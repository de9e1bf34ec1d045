"""Start, stop and inspect the project's own single-node Apache Kafka broker.

Why this exists: the demo and the integration tests need a *real* Kafka (Faust and the
clients exercise group coordination, offsets and transactions that fakes get wrong), but
the machine has no Docker. So the broker is Apache Kafka 4.1.1 itself, run straight from
its Maven Central jars with the local Java 17, in KRaft mode (one JVM is both broker and
controller, no ZooKeeper).

Everything lives under one directory, ``kafka_dir`` (``$CROSSINGS_HOME/kafka`` by default)::

    libs/          runtime jars copied by Maven from resources/pom.xml (package data) (+ .installed stamp)
    config/        server.properties and log4j2.yaml rendered from resources/
    data/          topic data and the KRaft metadata log (formatted once)
    logs/          server.log, controller.log, state-change.log, server.out (JVM stdout/err)
    cluster.id     the KRaft cluster id the data dir was formatted with
    broker.pid     pid of the running JVM

The broker listens on 127.0.0.1 only: ``port`` for clients (PLAINTEXT, or SASL_PLAINTEXT
with one SCRAM user when ``up`` is given a ``ScramListener``) and ``port + 1`` for the
KRaft controller (PLAINTEXT). The JVM is started fully detached (its own session), so it
outlives the Python process that started it; ``down()`` stops it.

This package deliberately does not import Faust: the CLI and the test fixtures use it
before (or without) any stream processing.
"""

from streams.ops.broker.install import install_jars
from streams.ops.broker.layout import DEFAULT_PORT, HOST, BrokerError, BrokerStatus, ScramListener
from streams.ops.broker.lifecycle import down, launch, status, up
from streams.ops.broker.ready import wait_ready

__all__ = [
    "DEFAULT_PORT",
    "HOST",
    "BrokerError",
    "BrokerStatus",
    "ScramListener",
    "down",
    "install_jars",
    "launch",
    "status",
    "up",
    "wait_ready",
]
