"""State expires by event time, and keeps expiring after a restart: remembered ids past
the de-duplication horizon and day profiles past the retention leave memory and the local
store, whatever the process that applied them (one that crashed, one that restarted)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from test_core import START, engine, make_records

from streams.core.processor import CoreConfig
from streams.core.state import PartitionState
from streams.core.store import PROFILE, SEEN_CHUNK, LocalStore
from streams.domain.counts import parse_profile_key

DAYS = 60
#: How ``make_records`` spells an invalid message.
BROKEN = b'{"event_id": "broken'
HORIZON_HOURS = CoreConfig().dedup_horizon_s / 3600
RETENTION_DAYS = CoreConfig().retention_days


def test_ids_and_profiles_expire_by_event_time_across_restarts_and_a_crash(tmp_path):
    # One event every 6 hours for 60 days at the posts of partition 0.
    records = [r for r in make_records([(n, 0, n * 360, n % 2) for n in range(DAYS * 4)]) if r.partition == 0]
    thirds = [records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3]]

    async def go() -> None:
        core = engine(tmp_path)
        await core.process(thirds[0])
        await core.commit()
        await core.close([0])  # a restart
        core = engine(tmp_path)
        await core.process(thirds[1])
        await core.commit()
        await core.process(records[2 * len(records) // 3 :])
        await core.close([0])  # a crash: the last third is not committed
        core = engine(tmp_path)
        await core.process(records)  # delivered again from the start; applied ones are skipped
        await core.commit()
        await core.close([0])

    asyncio.run(go())
    store = LocalStore(engine(tmp_path).task_path(0))
    try:
        state = PartitionState.load(0, store)
        assert state.applied_offset == records[-1].offset
        stream_time = datetime.fromtimestamp(state.stream_ts, UTC)
        oldest_bucket = int((state.stream_ts - HORIZON_HOURS * 3600) // 3600)
        buckets = {int(key[1:].split(b"|", 1)[0]) for key in store.keys(SEEN_CHUNK)}
        assert buckets and min(buckets) >= oldest_bucket
        oldest_day = stream_time.date() - timedelta(days=RETENTION_DAYS)
        days = {parse_profile_key(key[1:].decode())[2] for key in store.keys(PROFILE)}
        assert days and min(days) >= oldest_day
        # What expired had been there: the first events' day and ids are long gone.
        assert min(days) > (START + timedelta(days=1)).date()
        valid = [json.loads(r.value)["event_id"] for r in records if not r.value.startswith(BROKEN)]
        assert store.remembered(valid[:1]) == [None]  # past the horizon: forgotten
        assert store.remembered(valid[-1:])[0] is not None  # within it: remembered
    finally:
        store.close()
