"""SIGKILL the worker again and again while traffic flows; once it drains, the lake must be exact.

    python -m load_tests.crash_test [--events N] [--kills K] [--workers 1..4] [--pauses P]
                                    [--bootstrap host:port] [--rate R] [--seed S] [--resend F]
                                    [--commit-interval C] [--lake L] [--keep]

Produces scenario traffic (valid events, late ones, the scenario's re-sent duplicates,
invalid messages) plus extra re-sent copies of recently sent events, paced so traffic
flows for the whole run. Meanwhile it SIGKILLs a worker (with several, one of them,
chosen at random) ``K`` times at random moments, starting it again each time.
With ``--workers 3`` (or 4) the group also changes size: it starts one worker short and
the last one joins at a random point of the traffic, so a rebalance moves partitions to
a new member while the others keep running; the events topic then has two partitions
per worker (``CROSSINGS_PARTITIONS``), so every member owns some.
With ``--pauses P`` it also SIGSTOPs a worker ``P`` times for longer than its session
timeout, then SIGCONTs it: a zombie, whose partitions the group gave to the others while
it stood still; its next commits must be refused (fenced) and it must let them go.
Then it waits until the consumer group has committed every offset, stops the workers
with SIGTERM and checks the lake against an oracle computed from what was sent:

- ``events/`` holds exactly one row per unique valid event sent (kinds ``valid`` and
  ``late``), and no ``event_id`` twice; nothing is left staged (``_staging/``): the lake's
  rows are staged and published every ``--roll-seconds``, so kills hit both kinds of commit;
- the sum of the ``daily_counts/`` snapshots per checkpoint, local day and direction
  equals the oracle's count;
- the dead-letter topic (``read_committed``) holds every invalid message exactly once.

It prints a JSON summary and exits 1 on any mismatch. Without ``--bootstrap`` it starts
its own embedded broker on a free port and stops it at the end. Worker logs are kept in
the run folder (printed in the summary).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
from kafka import KafkaConsumer

from load_tests.harness import WorkerProcess, broker_for, free_port, scrape, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams.core.records import REKEYED_HEADER
from streams.domain.registry import load_registry
from streams.ops.topics import ensure_topics
from streams.settings import load_settings
from streams.settings.lake import LakeConfig, load_lake
from streams.settings.values import ConfigError

#: The default lake (the reference replay of ``check_alerts`` writes it).
PARQUET = LakeConfig(format="parquet")

#: Records the scenario produces per simulated day (all checkpoints), roughly; used to
#: choose how many days to generate for ``--events``.
RECORDS_PER_DAY = 4000
#: A re-sent copy repeats one of this many most recently sent valid events.
RESEND_WINDOW = 2000
#: On the PYTHONPATH of workers whose commits with alerts are held open to be killed in.
ALERT_HOLD = Path(__file__).resolve().parent / "alert_hold"
#: Written into a worker's log at each kill (the log then shows what the restart found).
KILL_MARK = "===== crash test: SIGKILL "


@dataclass
class CrashRun:
    """What was sent, what was done to the workers, and what the lake holds."""

    records_sent: int = 0
    sent_by_kind: dict[str, int] = field(default_factory=dict)
    extra_resends: int = 0
    unique_valid_events: int = 0
    kills: int = 0
    kill_log: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1
    partitions: int = 4
    #: Members that joined while traffic flowed (worker, at which record).
    join_log: list[dict[str, Any]] = field(default_factory=list)
    #: Workers stopped (SIGSTOP) past their session timeout, then resumed (worker, at which record).
    pause_log: list[dict[str, Any]] = field(default_factory=list)
    #: Broker outages: at which record, how long, and seconds from the broker's return
    #: until the workers' first commit.
    outage_log: list[dict[str, Any]] = field(default_factory=list)
    #: Alerts on the alerts topic (read_committed), and alert ids found more than once.
    alerts_found: int = 0
    alerts_doubled: int = 0
    #: Forwarded copies on the events topic, and origins (partition/offset) copied twice.
    forwards_found: int = 0
    forwards_doubled: int = 0
    #: From the workers' logs: records dropped as not of the current assignment (stale
    #: batches across rebalances), partitions let go because another owner fenced them.
    stale_records_dropped: int = 0
    fenced_let_go: int = 0
    event_rows: int = 0
    distinct_event_ids: int = 0
    missing_event_ids: list[str] = field(default_factory=list)
    doubled_event_ids: dict[str, int] = field(default_factory=dict)
    unexpected_event_ids: list[str] = field(default_factory=list)
    #: "checkpoint day direction" -> [lake sum, oracle]
    count_mismatches: dict[str, list[int]] = field(default_factory=dict)
    dead_letters_expected: int = 0
    dead_letters_found: int = 0
    dead_letter_mismatch: int = 0
    #: Parquet files still staged (unpublished) after the workers stopped: none expected.
    staged_left: int = 0
    #: Files published in events/ (the kills and restarts each publish early).
    event_files: int = 0
    #: Alerts (when asked for): an uninterrupted ``crossings replay`` of the same topic is
    #: the reference; alert_id -> [times on the alerts topic, times in the lake, reference].
    alerts_reference: int = 0
    alert_mismatches: dict[str, list[int]] = field(default_factory=dict)
    #: Kills inside a commit whose Kafka transaction carried alerts (``alert_kills``): the
    #: worker, the partition and commit, the alert ids, and how many copies of them the
    #: alerts topic holds read_uncommitted beyond the committed ones (aborted: the kill
    #: landed after the broker had them, before the transaction committed).
    alert_kill_log: list[dict[str, Any]] = field(default_factory=list)
    alert_kills_missed: int = 0
    #: Why the consumer group did not commit every offset in time ("" when it did).
    not_drained: str = ""
    worker_exit_codes: list[int] = field(default_factory=list)
    produce_seconds: float = 0.0
    drain_seconds: float = 0.0
    seconds: float = 0.0
    home: str = ""
    #: The lake the workers wrote (``CROSSINGS_LAKE``).
    lake: str = ""
    #: A remote lake (PostgreSQL catalog, object store): each worker's own data folder, and
    #: the Parquet or catalog files found in them after the run (none: the lake is remote).
    worker_data_dirs: list[str] = field(default_factory=list)
    local_lake_files: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (
            not self.not_drained
            and self.event_rows == self.distinct_event_ids == self.unique_valid_events
            and not self.missing_event_ids
            and not self.doubled_event_ids
            and not self.unexpected_event_ids
            and not self.count_mismatches
            and self.dead_letter_mismatch == 0
            and self.staged_left == 0
            and not self.alert_mismatches
            and self.alert_kills_missed == 0
            and self.alerts_doubled == 0
            and self.forwards_doubled == 0
            and not self.local_lake_files
        )

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["exact"] = self.exact
        # Keep the summary readable: counts plus a few examples.
        for name in ("missing_event_ids", "unexpected_event_ids"):
            data[name] = {"count": len(data[name]), "examples": data[name][:10]}
        data["doubled_event_ids"] = {
            "count": len(self.doubled_event_ids),
            "examples": dict(islice(self.doubled_event_ids.items(), 10)),
        }
        data["count_mismatches"] = {
            "count": len(self.count_mismatches),
            "examples": dict(islice(sorted(self.count_mismatches.items()), 20)),
        }
        return data


# --------------------------------------------------------------------------- traffic


def make_records(
    events: int | None,
    seed: int = 1,
    resend: float = 0.02,
    days: int | None = None,
    miskeyed: float = 0.0,
    spec: ScenarioSpec | None = None,
) -> tuple[list, int]:
    """``events`` scenario records (about ``events / RECORDS_PER_DAY`` days; or all the
    records of ``days`` days when ``events`` is None), with a share
    ``resend`` of extra copies of recently sent valid events mixed in (kind ``duplicate``:
    an upstream retry that the worker must recognise), and a share ``miskeyed`` of valid
    records and copies sent with a null key (the producer spreads them over partitions: the
    worker forwards those on the wrong one). ``spec``: the scenario itself, instead of
    ``days`` of the default one. Returns the records and the number of extra copies."""
    if events is None and days is None and spec is None:
        raise ValueError("give events, days or spec")
    if spec is None:
        days = days or max(2, math.ceil((events or 0) / RECORDS_PER_DAY) + 1)
        spec = ScenarioSpec(days=days)
    scenario_records = list(islice(Scenario(spec).records(), events))
    rng = random.Random(seed)
    out: list = []
    recent: list = []
    for record in scenario_records:
        out.append(record)
        if record.kind in ("valid", "late"):
            recent.append(record)
            if len(recent) > RESEND_WINDOW:
                del recent[: len(recent) - RESEND_WINDOW]
        if recent and rng.random() < resend:
            out.append(replace(rng.choice(recent), kind="duplicate"))
    if miskeyed:
        out = [
            replace(r, key=None) if r.kind in ("valid", "duplicate") and rng.random() < miskeyed else r
            for r in out
        ]
    return out, len(out) - len(scenario_records)


def oracle(records: Sequence) -> tuple[set[str], Counter]:
    """Unique valid event ids sent, and their count per (checkpoint, local day, direction)."""
    registry = load_registry()
    seen: set[str] = set()
    per_day: Counter = Counter()
    for record in records:
        if record.kind not in ("valid", "late"):
            continue
        payload = json.loads(record.value)
        event_id = payload["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        tz = registry[payload["checkpoint_id"]].tz
        day = datetime.fromisoformat(payload["occurred_at"]).astimezone(tz).date()
        per_day[(payload["checkpoint_id"], day.isoformat(), payload["direction"])] += 1
    return seen, per_day


# --------------------------------------------------------------------------- lake


def _scan(data_dir: Path, dataset: str) -> str:
    return (
        f"read_parquet('{data_dir}/{dataset}/*/*/*.parquet', hive_partitioning = true, "
        "hive_types = {'date': DATE, 'checkpoint': VARCHAR}, filename = true)"
    )


def _ducklake_rows(lake: LakeConfig, data_dir: Path, table: str, query: str) -> list[tuple]:
    """``query`` over the DuckLake table ``table`` (``{t}`` in it), none if it is missing."""
    from streams.sinks.ducklake.read import attach, has_table

    con = attach(lake, data_dir)
    try:
        if not has_table(con, table):
            return []
        return con.execute(query.format(t=f"lake.{table}")).fetchall()
    finally:
        con.close()


def lake_event_ids(data_dir: Path, lake: LakeConfig = PARQUET) -> Counter:
    """event_id -> rows in ``events/``."""
    if lake.is_ducklake:
        return Counter(
            dict(_ducklake_rows(lake, data_dir, "events", "SELECT event_id, count(*) FROM {t} GROUP BY ALL"))
        )
    if not any((data_dir / "events").glob("*/*/*.parquet")):
        return Counter()
    rows = duckdb.sql(f"SELECT event_id, count(*) FROM {_scan(data_dir, 'events')} GROUP BY ALL").fetchall()
    return Counter(dict(rows))


def lake_counts(data_dir: Path, lake: LakeConfig = PARQUET) -> Counter:
    """(checkpoint, local day, direction) -> sum of the daily_counts snapshots."""
    if lake.is_ducklake:
        rows = _ducklake_rows(
            lake,
            data_dir,
            "daily_counts",
            "SELECT checkpoint_id, local_day, direction, sum(count) FROM {t} GROUP BY ALL",
        )
    elif not any((data_dir / "daily_counts").glob("*/*/*.parquet")):
        return Counter()
    else:
        rows = duckdb.sql(
            f"SELECT checkpoint, date, direction, sum(count) FROM {_scan(data_dir, 'daily_counts')} "
            "GROUP BY ALL"
        ).fetchall()
    return Counter({(c, d.isoformat(), r): int(n) for c, d, r, n in rows})


def files_holding(
    data_dir: Path, event_ids: Sequence[str], lake: LakeConfig = PARQUET
) -> dict[str, list[list]]:
    """For diagnosis: event_id -> [file (DuckLake: its commit), kafka_partition, kafka_offset]
    of every row."""
    if not event_ids:
        return {}
    wanted = ", ".join("'" + i.replace("'", "''") + "'" for i in event_ids)
    found: dict[str, list[list]] = {}
    if lake.is_ducklake:
        rows = _ducklake_rows(
            lake,
            data_dir,
            "events",
            "SELECT event_id, 'commit ' || commit_seq, kafka_partition, kafka_offset FROM {t} "
            f"WHERE event_id IN ({wanted}) ORDER BY ALL",
        )
        for event_id, commit, partition, offset in rows:
            found.setdefault(event_id, []).append([commit, partition, offset])
        return found
    rows = duckdb.sql(
        f"SELECT event_id, filename, kafka_partition, kafka_offset FROM {_scan(data_dir, 'events')} "
        f"WHERE event_id IN ({wanted}) ORDER BY ALL"
    ).fetchall()
    for event_id, filename, partition, offset in rows:
        found.setdefault(event_id, []).append([str(Path(filename).relative_to(data_dir)), partition, offset])
    return found


def lake_alert_ids(data_dir: Path, lake: LakeConfig = PARQUET) -> Counter:
    if lake.is_ducklake:
        return Counter(a for (a,) in _ducklake_rows(lake, data_dir, "alerts", "SELECT alert_id FROM {t}"))
    if not list(data_dir.glob("alerts/*/*/*.parquet")):
        return Counter()
    rows = duckdb.sql(f"SELECT alert_id FROM {_scan(data_dir, 'alerts')}").fetchall()
    return Counter(alert_id for (alert_id,) in rows)


def lake_event_stores(data_dir: Path, lake: LakeConfig = PARQUET) -> int:
    """Where the events are: Parquet files (today's lake), or commits holding events (DuckLake,
    whose small commits are inlined in the catalog, not files)."""
    if lake.is_ducklake:
        rows = _ducklake_rows(
            lake,
            data_dir,
            "events",
            "SELECT count(*) FROM (SELECT DISTINCT kafka_partition, commit_seq FROM {t})",
        )
        return rows[0][0] if rows else 0
    return sum(1 for _ in data_dir.glob("events/*/*/*.parquet"))


def reference_alert_ids(bootstrap: str, topic: str, partitions: int, home: Path) -> Counter:
    """The alerts of one uninterrupted run of the worker's core (``crossings replay``) over
    the topic the killed workers read, by id (ids are derived from what an alert says)."""
    import asyncio

    from streams.replay.run import replay as core_replay
    from streams.replay.sources import kafka_records

    asyncio.run(
        core_replay(
            kafka_records(bootstrap, topic),
            partitions=partitions,
            data_dir=home / "data",
            state_dir=home / "state",
        )
    )
    return lake_alert_ids(home / "data")


def read_topic(bootstrap: str, topic: str, *, committed_only: bool = True) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        consumer_timeout_ms=5000,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def where_sent(bootstrap: str, topic: str, event_ids: set[str]) -> dict[str, list[list[int]]]:
    """For diagnosis: event_id -> [partition, offset] of every copy on the events topic."""
    found: dict[str, list[list[int]]] = {}
    for message in read_topic(bootstrap, topic, committed_only=False):
        try:
            event_id = json.loads(message.value)["event_id"]
        except (ValueError, TypeError, KeyError):
            continue
        if event_id in event_ids:
            found.setdefault(event_id, []).append([message.partition, message.offset])
    return found


# --------------------------------------------------------------------------- the run


def run(
    bootstrap: str,
    home: Path,
    *,
    events: int | None = 37_000,
    kills: int = 3,
    workers: int = 1,
    rate: float | None = None,
    seed: int = 7,
    resend: float = 0.02,
    commit_interval: float = 1.0,
    roll_seconds: float = 2.0,
    days: int | None = None,
    session_timeout: float = 10.0,
    mode: str = "mixed",
    drain_timeout: float = 600.0,
    partitions: int | None = None,
    pauses: int = 0,
    miskeyed: float = 0.0,
    extra_env: dict[str, str] | None = None,
    outages: Sequence[float] = (),
    broker_control: tuple[Callable[[], object], Callable[[], object]] | None = None,
    outage_of: str = "broker",
    spec: ScenarioSpec | None = None,
    check_alerts: bool = False,
    alert_kills: int = 0,
    log=None,
) -> CrashRun:
    """One crash run against ``bootstrap`` with everything under ``home``.

    ``workers`` is the group's final size; from 3 on it starts one short and the last one
    joins at a random point of the traffic. ``outages``: the broker (or what
    ``outage_of`` names: the lake's object store, its catalog) is stopped for each of these
    many seconds at a random point of the traffic (``broker_control``: stop, start), while
    the workers and the producer keep running. ``check_alerts``: compare the
    alerts topic and the lake's alerts with an uninterrupted replay of the same topic
    (each alert once). ``alert_kills``: besides ``kills``, SIGKILL a worker that many times
    inside a commit whose transaction carries alerts (``load_tests/alert_hold``: the first
    such commits wait, their alerts sent, until killed)."""
    started = time.monotonic()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    partitions = partitions or (4 if workers <= 2 else 2 * workers)
    initial = workers if workers <= 2 else workers - 1
    result = CrashRun(home=str(home), workers=workers, partitions=partitions)
    home.mkdir(parents=True, exist_ok=True)
    namespace = f"crash-{int(time.time())}-{free_port()}"
    env = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_PARTITIONS": str(partitions),
        "CROSSINGS_COMMIT_INTERVAL": str(commit_interval),
        # Lake rows staged and published every couple of commits: kills land in both.
        "CROSSINGS_LAKE_ROLL_SECONDS": str(roll_seconds),
        # A killed member holds its partitions until its session times out (Faust's default
        # is 60 s); a shorter one keeps the run short and changes nothing about correctness.
        "BROKER_SESSION_TIMEOUT": str(session_timeout),
        # Time runs thousands of times faster here than at a border post: a forward that
        # waits out a killed member's session (15 s) is days of event time, which would make
        # copies ``too_late`` at their partition. The horizon is widened so lateness stays
        # out of a comparison that is about forwarding; no scenario record is that late.
        **({"CROSSINGS_DEDUP_HORIZON_HOURS": "720"} if miskeyed else {}),
        **(extra_env or {}),
    }
    hold_dir = home / "alert-hold"
    if alert_kills:
        hold_dir.mkdir(parents=True, exist_ok=True)
        for token in range(1, alert_kills + 1):
            (hold_dir / f"armed-{token}").touch()
        env["CROSSINGS_TEST_ALERT_HOLD_DIR"] = str(hold_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ALERT_HOLD), os.environ.get("PYTHONPATH")]))
    settings = load_settings(env)
    ensure_topics(settings)
    data_dir = settings.data_dir
    # Each worker its own state folder (as on two machines), one shared lake. A lake whose
    # catalog and files are both remote (a PostgreSQL catalog, an object store) shares
    # nothing else either: each worker gets a data folder of its own, checked empty of lake
    # files after the run, so the workers share only Kafka, the store and the catalog.
    remote = settings.lake.shares_nothing_local
    pool = [
        WorkerProcess(
            {
                **env,
                "CROSSINGS_HOME": str(home / f"w{n}"),
                "CROSSINGS_DATA_DIR": str(home / f"w{n}" / "data" if remote else data_dir),
            },
            free_port(),
            home / f"worker-{n}.log",
        )
        for n in range(workers)
    ]

    records, result.extra_resends = make_records(
        events, seed=seed, resend=resend, days=days, miskeyed=miskeyed, spec=spec
    )
    result.records_sent = len(records)
    result.sent_by_kind = dict(Counter(r.kind for r in records))
    expected_ids, expected_counts = oracle(records)
    result.unique_valid_events = len(expected_ids)
    # Pace the traffic so it lasts through every kill and restart (a restart waits about a
    # session timeout for the group to let go of the killed member).
    # Outages too: traffic flows through each and the time the workers take to recover.
    rate = rate or max(
        300.0,
        len(records)
        / ((kills + 2 * pauses) * (session_timeout + 5.0) + sum(s + 20.0 for s in outages) + 10.0),
    )
    joining = "" if initial == workers else f" ({initial} at first, then one joins)"
    say(
        f"crash test: {len(records)} records at {rate:.0f}/s, {kills} kills, {workers} worker(s){joining}, "
        f"{partitions} partitions in {home}"
    )

    rng = random.Random(seed)
    produced = [0]
    failure: list[BaseException] = []

    def counted():
        for record in records:
            yield record
            produced[0] += 1

    def produce() -> None:
        try:
            replay(counted(), bootstrap, settings.topics.events, rate=rate, progress=False)
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    try:
        for worker in pool[:initial]:
            worker.start(timeout=300)
        running = initial
        producing = threading.Thread(target=produce, name="crash-test-producer", daemon=True)
        producing.start()
        # Kill when the traffic reaches random points of the stream, a random fraction of a
        # commit interval later, so the kills land in every phase of the commit cycle.
        # Every kill hits a worker that is applying records: after a restart the next kill
        # waits until the new process handles records again (it owns partitions and runs).
        # A joining member comes in at a random point among them.
        plan = sorted(
            [(rng.uniform(0.05, 0.95) * len(records), "kill") for _ in range(kills)]
            + [(rng.uniform(0.2, 0.6) * len(records), "join") for _ in range(workers - initial)]
            + [(rng.uniform(0.1, 0.9) * len(records), "pause") for _ in range(pauses)]
            + [(rng.uniform(0.15, 0.85) * len(records), f"outage:{seconds}") for seconds in outages]
        )
        n = 0

        def kill_held() -> None:
            """SIGKILL the worker that holds a commit with alerts open, if one does."""
            for holding in sorted(hold_dir.glob("*.holding")):
                held = json.loads(holding.read_text())
                holding.rename(holding.with_suffix(".killed"))
                at = produced[0]
                victims = [w for w in pool if w.process is not None and w.process.pid == held["pid"]]
                for victim in victims:  # none: a random kill took it while it held
                    assert victim.process is not None
                    victim.process.kill()
                    victim.process.wait()
                    with victim.log_path.open("a") as handle:
                        handle.write(f"\n===== crash test: alert commit held, SIGKILL at record {at} =====\n")
                    victim.start(timeout=300)
                result.alert_kill_log.append({**held, "at_record": at, "killed_here": bool(victims)})
                say(
                    f"  kill inside commit {held['commit_seq']} of partition {held['partition']} "
                    f"with {len(held['alert_ids'])} alert(s) at record {at} of {len(records)}"
                )

        for threshold, event in plan:
            while produced[0] < threshold and producing.is_alive():
                if alert_kills:
                    kill_held()
                time.sleep(0.02)
            if alert_kills:
                kill_held()
            if event == "join":
                at = produced[0]
                pool[running].start(timeout=300)
                result.join_log.append({"worker": running, "at_record": at})
                say(f"  worker {running} joins at record {at} of {len(records)}")
                running += 1
                continue
            if event.startswith("outage:"):
                if broker_control is None:
                    raise ValueError("outages need broker_control (stop, start)")
                seconds = float(event.split(":", 1)[1])
                at = produced[0]
                before = sum(_commits(w) for w in pool[:running])
                broker_control[0]()
                say(f"  outage: {outage_of} stopped at record {at} of {len(records)} for {seconds:.0f}s")
                time.sleep(seconds)
                broker_control[1]()
                back = time.monotonic()
                # Resumed: a commit made after the service's return (none can be made without it).
                while sum(_commits(w) for w in pool[:running]) <= before and time.monotonic() - back < 600:
                    time.sleep(0.2)
                resumed = round(time.monotonic() - back, 1)
                result.outage_log.append({"at_record": at, "seconds": seconds, "resumed_after_s": resumed})
                say(f"  outage over: first commit {resumed}s after the {outage_of} came back")
                continue
            if event == "pause":
                index = rng.randrange(running)
                stopped = pool[index]
                _wait_working(stopped, timeout=300)
                assert stopped.process is not None
                at = produced[0]
                stopped.process.send_signal(signal.SIGSTOP)
                say(f"  pause: worker {index} stopped at record {at} of {len(records)}")
                time.sleep(session_timeout + 5.0)  # the group gives its partitions away
                stopped.process.send_signal(signal.SIGCONT)
                result.pause_log.append({"worker": index, "at_record": at, "seconds": session_timeout + 5.0})
                continue
            n += 1
            victim_index = rng.randrange(running)
            victim = pool[victim_index]
            _wait_working(victim, timeout=300)
            how = ("random", "commit")[n % 2] if mode == "mixed" else mode
            if how == "commit":
                # Right after a commit's first Parquet file lands, a few ms later: between the
                # files and the Kafka transaction, or inside either.
                _wait_lake_change(data_dir, timeout=10 * commit_interval + 10, lake=settings.lake)
                time.sleep(rng.uniform(0.0, 0.03))
            else:
                time.sleep(rng.uniform(0.0, 1.5 * commit_interval))
            assert victim.process is not None
            if victim.process.poll() is not None:
                raise RuntimeError(f"worker {victim_index} died by itself; see {victim.log_path}")
            at = produced[0]
            handled = victim.handled()
            victim.process.kill()  # SIGKILL: no flush, no commit, no goodbye
            victim.process.wait()
            result.kills += 1
            say(f"  kill {n} ({how}): worker {victim_index} at record {at} of {len(records)}")
            with victim.log_path.open("a") as handle:
                handle.write(f"\n{KILL_MARK}{n} ({how}) at record {at} =====\n")
            restart = time.monotonic()
            victim.start(timeout=300)
            result.kill_log.append(
                {
                    "worker": victim_index,
                    "mode": how,
                    "at_record": at,
                    "victim_had_handled": handled,
                    "restart_seconds": round(time.monotonic() - restart, 2),
                }
            )
        # Alerts come where the traffic has them (late in an alerting scenario): the kills
        # inside their commits are made as they come, and waited for after the traffic.
        hold_deadline = math.inf
        while alert_kills and len(result.alert_kill_log) < alert_kills:
            if not producing.is_alive():
                hold_deadline = min(hold_deadline, time.monotonic() + drain_timeout)
                if time.monotonic() > hold_deadline:
                    break
            kill_held()
            time.sleep(0.02)
        result.alert_kills_missed = alert_kills - len(result.alert_kill_log)
        producing.join()
        result.produce_seconds = round(time.monotonic() - started, 1)
        if failure:
            raise failure[0]
        drain_started = time.monotonic()
        try:
            wait_committed(bootstrap, settings.app_id, settings.topics.events, timeout=drain_timeout)
        except TimeoutError as error:  # a stuck worker: still look at what the lake holds
            result.not_drained = str(error)
            say(f"  NOT DRAINED: {error}")
        result.drain_seconds = round(time.monotonic() - drain_started, 1)
    finally:
        result.worker_exit_codes = [worker.stop() for worker in pool]
    say(f"  drained in {result.drain_seconds}s; checking the lake")
    for entry, opened in zip(result.kill_log, _reopenings(pool, kills), strict=True):
        entry.update(opened)
    result.stale_records_dropped, result.fenced_let_go = _rebalance_traces(pool)

    # -- the checks ------------------------------------------------------------------------
    lake = settings.lake
    if remote:
        result.worker_data_dirs = [worker.env["CROSSINGS_DATA_DIR"] for worker in pool]
        result.local_lake_files = sorted(
            str(path)
            for folder in result.worker_data_dirs
            for pattern in ("**/*.parquet", "**/*.sqlite", "**/*.ducklake")
            for path in Path(folder).glob(pattern)
        )
    result.lake = lake.describe(data_dir)
    ids = lake_event_ids(data_dir, lake)
    result.staged_left = sum(1 for _ in data_dir.glob("_staging/**/*.parquet"))
    result.event_files = lake_event_stores(data_dir, lake)
    result.event_rows = sum(ids.values())
    result.distinct_event_ids = len(ids)
    result.missing_event_ids = sorted(expected_ids - set(ids))
    result.unexpected_event_ids = sorted(set(ids) - expected_ids)
    result.doubled_event_ids = {i: n for i, n in sorted(ids.items()) if n > 1}
    counts = lake_counts(data_dir, lake)
    result.count_mismatches = {
        " ".join(key): [counts.get(key, 0), expected_counts.get(key, 0)]
        for key in sorted(set(counts) | set(expected_counts))
        if counts.get(key, 0) != expected_counts.get(key, 0)
    }
    alert_ids = Counter(
        json.loads(m.value)["alert_id"] for m in read_topic(bootstrap, settings.topics.alerts)
    )
    result.alerts_found = sum(alert_ids.values())
    result.alerts_doubled = sum(1 for n in alert_ids.values() if n > 1)
    origins = Counter(
        value
        for m in read_topic(bootstrap, settings.topics.events)
        for name, value in (m.headers or ())
        if name == REKEYED_HEADER
    )
    result.forwards_found = sum(origins.values())
    result.forwards_doubled = sum(1 for n in origins.values() if n > 1)
    dead = Counter(m.value for m in read_topic(bootstrap, settings.topics.dead_letter))
    invalid = Counter(r.value for r in records if r.kind == "invalid")
    result.dead_letters_expected = sum(invalid.values())
    result.dead_letters_found = sum(dead.values())
    result.dead_letter_mismatch = sum(((dead - invalid) + (invalid - dead)).values())
    if check_alerts:
        reference = reference_alert_ids(bootstrap, settings.topics.events, partitions, home / "reference")
        result.alerts_reference = sum(reference.values())
        on_topic = Counter(
            json.loads(m.value)["alert_id"] for m in read_topic(bootstrap, settings.topics.alerts)
        )
        in_lake = lake_alert_ids(data_dir, lake)
        if result.alert_kill_log:
            everything = Counter(
                json.loads(m.value)["alert_id"]
                for m in read_topic(bootstrap, settings.topics.alerts, committed_only=False)
            )
            for entry in result.alert_kill_log:
                ids = entry["alert_ids"]
                entry["aborted_copies"] = sum(everything[i] - on_topic[i] for i in ids)
                entry["committed_copies"] = sum(on_topic[i] for i in ids)
                entry["in_lake"] = sum(in_lake[i] for i in ids)
                entry["in_reference"] = sum(reference[i] for i in ids)
        result.alert_mismatches = {
            alert_id: [on_topic[alert_id], in_lake[alert_id], reference[alert_id]]
            for alert_id in sorted(set(on_topic) | set(in_lake) | set(reference))
            if not on_topic[alert_id] == in_lake[alert_id] == reference[alert_id] == 1
        }

    if not result.exact:
        suspects = [*result.missing_event_ids[:20], *list(result.doubled_event_ids)[:20]]
        result.diagnosis = {
            "lake_rows": files_holding(data_dir, suspects, lake),
            "topic_copies": where_sent(bootstrap, settings.topics.events, set(suspects)),
        }
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _wait_lake_change(data_dir: Path, timeout: float, lake: LakeConfig = PARQUET) -> None:
    """Until a file appears or is replaced in any events or daily_counts folder (DuckLake
    with a local catalog: until the catalog's file changes, i.e. a catalog commit)."""
    patterns = ("events/*/*", "_staging/*/events/*/*", "daily_counts/*/*")
    if lake.is_ducklake and lake.catalog_for(data_dir).startswith("postgres:"):
        _wait_catalog_commit(lake, data_dir, timeout)
        return
    if lake.is_ducklake:
        catalog = Path(lake.catalog_for(data_dir).removeprefix("sqlite:"))
        data_dir, patterns = catalog.parent, (catalog.name + "*",)

    def stamps() -> dict[str, int]:
        seen = {}
        for pattern in patterns:
            for folder in data_dir.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    seen[str(folder)] = folder.stat().st_mtime_ns
        return seen

    before = stamps()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.002)
        now = stamps()
        if any(before.get(folder) != stamp for folder, stamp in now.items()):
            return


def _wait_catalog_commit(lake: LakeConfig, data_dir: Path, timeout: float) -> None:
    """Until a DuckLake catalog server (PostgreSQL) records a new snapshot: a commit."""
    from streams.sinks.ducklake.read import attach

    con = attach(lake, data_dir)
    try:

        def latest() -> int:
            return con.execute("SELECT id FROM lake.current_snapshot()").fetchall()[0][0]

        before = latest()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and latest() == before:
            time.sleep(0.005)
    finally:
        con.close()


OPENED = re.compile(
    r"partition (\d+) open in [\d.]+s: applied offset (-?\d+), commit (\d+), (\d+) changelog records "
    r"read, (\d+) uncommitted files removed"
)


def _reopenings(pool: Sequence[WorkerProcess], kills: int) -> list[dict[str, int]]:
    """What the partitions' openings after each kill found, from the logs, in any worker:
    changelog records the local store lacked (with one worker: a kill between the Kafka
    transaction and the RocksDB write; with two, also what the other worker committed
    while it held the partition) and uncommitted files removed (a kill between the
    Parquet files and the transaction)."""
    found = [{"changelog_records_read": 0, "uncommitted_files_removed": 0} for _ in range(kills)]
    for worker in pool:
        if not worker.log_path.exists():
            continue
        current = None
        for line in worker.log_path.read_text(errors="replace").splitlines():
            if line.startswith(KILL_MARK):
                current = int(line[len(KILL_MARK) :].split()[0]) - 1
                continue
            match = OPENED.search(line)
            if match and current is not None and current < kills:
                found[current]["changelog_records_read"] += int(match[4])
                found[current]["uncommitted_files_removed"] += int(match[5])
    return found


DROPPED = re.compile(r"dropped (\d+) of \d+ records not of the current assignment")
FENCED = re.compile(r"let go of partitions \[([\d, ]*)\]: another owner fenced them")


def _rebalance_traces(pool: Sequence[WorkerProcess]) -> tuple[int, int]:
    """Stale records dropped and fenced partitions let go, summed over the workers' logs."""
    dropped = fenced = 0
    for worker in pool:
        if not worker.log_path.exists():
            continue
        text = worker.log_path.read_text(errors="replace")
        dropped += sum(int(m[1]) for m in DROPPED.finditer(text))
        fenced += sum(len(m[1].split(",")) for m in FENCED.finditer(text))
    return dropped, fenced


def _commits(worker: WorkerProcess) -> int:
    """Commits the worker has made (its commit histogram's count)."""
    try:
        return int(scrape(worker.metrics_url).get("crossings_commit_seconds_count", 0))
    except OSError:  # between a stop and a start, or busy
        return 0


def _wait_working(worker: WorkerProcess, timeout: float) -> None:
    """Until ``worker`` (this process of it) has handled a record: it owns partitions and runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process is not None
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker died with {worker.process.returncode}; see {worker.log_path}")
        try:
            if worker.handled() > 0:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"worker handled nothing within {timeout}s of starting; see {worker.log_path}")


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="scenario records to send")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2, 3, 4),
        default=1,
        help="group size; from 3 on, it starts one short and the last worker joins mid-run",
    )
    parser.add_argument(
        "--pauses", type=int, default=0, help="SIGSTOP a worker past its session timeout, then SIGCONT"
    )
    parser.add_argument(
        "--partitions", type=int, default=None, help="events topic partitions (default: 4, or 2 per worker)"
    )
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: start one)")
    parser.add_argument("--rate", type=float, default=None, help="records/s (default: lasts the kills)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resend", type=float, default=0.02, help="share of extra re-sent copies")
    parser.add_argument(
        "--miskeyed", type=float, default=0.0, help="share of valid records sent with a null key"
    )
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument(
        "--roll-seconds", type=float, default=2.0, help="CROSSINGS_LAKE_ROLL_SECONDS of the workers"
    )
    parser.add_argument("--session-timeout", type=float, default=10.0, help="the workers' Kafka session")
    parser.add_argument(
        "--mode",
        choices=("mixed", "random", "commit"),
        default="mixed",
        help="kill at random moments, right after a commit's files land, or alternately",
    )
    parser.add_argument(
        "--lake",
        default="ducklake",
        help="the workers' CROSSINGS_LAKE (ducklake, ducklake:<catalog>, parquet; several workers "
        "need a PostgreSQL catalog: ducklake:postgres:host=... dbname=...)",
    )
    parser.add_argument("--home", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder even when exact")
    args = parser.parse_args(argv)
    try:
        chosen = load_lake({"CROSSINGS_LAKE": args.lake})
    except ConfigError as error:
        parser.error(f"--lake: {error}")
    if args.workers > 1 and chosen.single_writer:
        parser.error(
            "--workers > 1 with a SQLite catalog, which takes one writing process: pass "
            "--lake ducklake:postgres:host=... dbname=... (`make pg-up` starts a PostgreSQL)"
        )

    home = args.home or Path(tempfile.mkdtemp(prefix="crossings-crash-"))
    shutil.rmtree(home / "run", ignore_errors=True)
    with broker_for(args.bootstrap, home / "kafka") as bootstrap:
        result = run(
            bootstrap,
            home / "run",
            events=args.events,
            kills=args.kills,
            workers=args.workers,
            rate=args.rate,
            seed=args.seed,
            resend=args.resend,
            commit_interval=args.commit_interval,
            roll_seconds=args.roll_seconds,
            session_timeout=args.session_timeout,
            mode=args.mode,
            partitions=args.partitions,
            pauses=args.pauses,
            miskeyed=args.miskeyed,
            extra_env={"CROSSINGS_LAKE": args.lake},
        )
    print(json.dumps(result.summary(), indent=2, default=str))
    if result.exact and not args.keep and args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
