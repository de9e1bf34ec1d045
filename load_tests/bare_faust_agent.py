"""The peer for ``make perf``: a bare Faust agent that only decodes JSON and counts in a dict.

    python -m load_tests.bare_faust_agent BOOTSTRAP TOPIC EXPECTED OUT_JSON

Reads TOPIC from the beginning with a fresh group and writes, once EXPECTED messages are
in, the seconds from the first to the last one to OUT_JSON; then exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import faust


def main() -> None:
    bootstrap, topic_name, expected, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    app = faust.App(
        f"bare-agent-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    topic = app.topic(
        topic_name, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    counts: Counter[str] = Counter()
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.Stream) -> None:
        async for value in stream:
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            counts[json.loads(value)["checkpoint_id"]] += 1
            seen["n"] += 1
            if seen["n"] == expected:
                seconds = time.perf_counter() - seen["first"]
                out.write_text(json.dumps({"messages": expected, "seconds": seconds}))
                os._exit(0)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
