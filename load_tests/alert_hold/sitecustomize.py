"""Imported at start-up by the crash test's workers only (this folder is on their
PYTHONPATH, nowhere else): holds open a commit whose Kafka transaction carries alerts, so
the crash test can SIGKILL the worker inside it (with
``CROSSINGS_TEST_ALERT_HOLD_AFTER_FILES=1``: once the lake's files, or DuckLake's catalog
commit, are written too, so the lake is one commit ahead of Kafka at the kill).

``CROSSINGS_TEST_ALERT_HOLD_DIR`` holds one ``armed-N`` file per kill the test wants. A
commit with alerts claims one (an atomic rename: one worker, one commit per file) once
the transaction's records, its alerts among them, are acknowledged by the broker and
before its Parquet files, offset and commit; it then writes ``N.holding`` (its pid, the
partition, the commit and the alert ids) and waits to be killed. The event loop is free
meanwhile (the wait is on the file-writing thread): heartbeats go on, so the group does
not take the partition away; the transaction stays open until the kill.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _claim(folder: Path) -> str | None:
    for armed in sorted(folder.glob("armed-*")):
        token = armed.name.removeprefix("armed-")
        try:
            armed.rename(folder / f"claimed-{token}")
        except FileNotFoundError:
            continue  # another worker took it
        return token
    return None


def _install(folder: Path) -> None:
    from streams.worker import kafka_outputs

    publish = kafka_outputs.KafkaOutputs.publish

    async def held_publish(self, batch, write_files):
        if not batch.alerts:
            return await publish(self, batch, write_files)

        def write_files_after_the_kill() -> object:
            if after_files:  # the lake's commit made, Kafka's not: the lake is one ahead
                write_files()
            token = _claim(folder)
            if token is not None:
                held = {
                    "pid": os.getpid(),
                    "partition": batch.partition,
                    "commit_seq": batch.commit_seq,
                    "alert_ids": [alert.alert_id for alert in batch.alerts],
                }
                tmp = folder / f"{token}.tmp"
                tmp.write_text(json.dumps(held))
                tmp.rename(folder / f"{token}.holding")
                while True:  # until the crash test's SIGKILL
                    time.sleep(1)
            return None if after_files else write_files()

        return await publish(self, batch, write_files_after_the_kill)

    kafka_outputs.KafkaOutputs.publish = held_publish


#: Hold after the lake's files (or DuckLake catalog commit) are written instead of before.
after_files = os.environ.get("CROSSINGS_TEST_ALERT_HOLD_AFTER_FILES") == "1"
_folder = os.environ.get("CROSSINGS_TEST_ALERT_HOLD_DIR")
if _folder:
    _install(Path(_folder))
