"""A year of national-scale traffic replayed into the object-store DuckLake lake (issue 19).

``python -m load_tests.lake_year --events N`` (default 1,000,000):

1. **Generate** a year of events, vectorised (numpy, pyarrow), into Parquet files that
   ``crossings replay --parquet`` reads (``checkpoint=ID/MM.parquet``, the columns of
   ``streams.replay.sources.LAKE_EVENT_COLUMNS``). The traffic model is the scenario's
   (``load_tests.scenario.model``): every registry checkpoint, its cells (nationality,
   purpose, mode, outcome) and their rates, the weekday and hour-of-day rhythm of its
   kind; scaled to exactly N events (multinomial over checkpoint, direction and day, with a
   fixed seed: the same N and seed give the same files). No duplicates, late or invalid
   records: this measures the lake, not the dead-letter path.
2. **Start** SeaweedFS (S3) and PostgreSQL (the catalog) with the project's own
   ``streams.ops.lakestore``, on ``CROSSINGS_TEST_KAFKA_PORT`` + 4 and + 9 (or ``--s3-port``,
   ``--pg-port``); a fresh catalog database and S3 prefix per run.
3. **Replay** them with ``crossings replay --parquet`` (``--jobs``) into
   ``CROSSINGS_LAKE=ducklake:postgres:…``, ``CROSSINGS_LAKE_DATA_PATH=s3://lake/<run>/``;
   timed (events/s).
4. **Compact** with ``crossings lake compact --keep-hours 0``, then the unlinked files are
   deleted as the next upkeep run would (``upkeep.cleanup``), so the bucket holds the
   compacted lake only.
5. **Measure**: bytes on the object store (listed in the bucket), data files and row groups
   of ``events`` before and after compaction (DuckLake's ``ducklake_list_files``, the
   Parquet footers), and the query times of an analyst: a fresh ``python`` process with
   DuckDB that attaches the lake read-only as the README shows, for (a) one checkpoint's
   day, (b) a month of one checkpoint, (c) the year of all checkpoints (daily totals per
   checkpoint) -- cold (the first run in a fresh process) and warm (repeated), medians.

The services are stopped and the generated input and lake deleted at the end (``--keep``
keeps the folder). Results go to ``<work>/result-<N>.json`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from load_tests.scenario.model import _HOUR_WEIGHTS, DIRECTIONS, CheckpointModel
from load_tests.scenario.spec import ScenarioSpec, load_checkpoints

ROOT = Path(__file__).resolve().parents[1]
CROSSINGS = ROOT / ".venv" / "bin" / "crossings"
START = date(2025, 1, 1)
DAYS = 365
#: The analyst's three questions; {cp}, {day}, {first}, {last} filled in.
QUERIES = {
    "checkpoint_day": (
        "SELECT direction, nationality, count(*) AS n FROM lake.events "
        "WHERE checkpoint_id = '{cp}' AND local_day = DATE '{day}' GROUP BY ALL ORDER BY ALL"
    ),
    "checkpoint_month": (
        "SELECT local_day, direction, count(*) AS n FROM lake.events WHERE checkpoint_id = '{cp}' "
        "AND local_day BETWEEN DATE '{first}' AND DATE '{last}' GROUP BY ALL ORDER BY ALL"
    ),
    "year_all": "SELECT checkpoint_id, local_day, count(*) AS n FROM lake.events GROUP BY ALL ORDER BY ALL",
}


# -- 1. generation ---------------------------------------------------------------------------


def generate(events: int, seed: int, out: Path, start: date = START, days: int = DAYS) -> dict:
    """Write ``events`` events of ``days`` local days into ``out/checkpoint=ID/MM.parquet``."""
    started = time.perf_counter()
    spec = ScenarioSpec(start=start, days=days, anomalies=(), seed=seed)
    registry = load_checkpoints()
    models = [CheckpointModel(registry[c], spec) for c in spec.checkpoints]
    day_list = [start + timedelta(days=i) for i in range(days)]
    # Expected events/day of each (checkpoint, direction, day): the scenario's rates.
    weights = np.array(
        [[[sum(m.rates(d, day)) for day in day_list] for d in DIRECTIONS] for m in models], dtype=float
    )
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(events, (weights / weights.sum()).ravel()).reshape(weights.shape)
    months = np.array([day.month for day in day_list])
    out.mkdir(parents=True, exist_ok=True)
    files = written = 0
    for ci, model in enumerate(models):
        zone = ZoneInfo(model.zone.key)
        midnight = np.array(
            [int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()) for d in day_list], dtype=np.int64
        )
        hour_p = np.array(_HOUR_WEIGHTS[model.kind], dtype=float)
        hour_p /= hour_p.sum()
        folder = out / f"checkpoint={model.checkpoint_id}"
        folder.mkdir(exist_ok=True)
        serial = 0
        for month in sorted(set(months.tolist())):
            crng = np.random.default_rng([seed, ci, month])  # stable per checkpoint and month
            in_month = np.flatnonzero(months == month)
            parts = []
            for di, direction in enumerate(DIRECTIONS):
                per_day = counts[ci, di, in_month]
                n = int(per_day.sum())
                if n == 0:
                    continue
                cells = model.cells[direction]
                cell_p = np.array([c.rate for c in cells], dtype=float)
                pick = crng.choice(len(cells), size=n, p=cell_p / cell_p.sum())
                hour = crng.choice(24, size=n, p=hour_p)
                second = crng.integers(0, 3600, size=n)
                millis = crng.integers(0, 1000, size=n) if model.kind == "airport" else np.zeros(n, np.int64)
                day_index = np.repeat(in_month, per_day)
                occurred_ms = (midnight[day_index] + hour * 3600 + second) * 1000 + millis
                lag_ms = (crng.exponential(1.5, size=n) * 1000).astype(np.int64) + 1
                parts.append(
                    {
                        "direction": np.full(n, di, np.int8),
                        "cell": pick,
                        "occurred_ms": occurred_ms,
                        "kafka_ms": occurred_ms + lag_ms,
                        "cells": cells,
                    }
                )
            if not parts:
                continue
            table = _month_table(model.checkpoint_id, seed, serial, parts)
            serial += len(table)
            pq.write_table(table, folder / f"{month:02d}.parquet", row_group_size=1_000_000)
            files += 1
            written += len(table)
    assert written == events, (written, events)
    return {
        "events": written,
        "files": files,
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": sum(f.stat().st_size for f in out.rglob("*.parquet")),
        "checkpoints": len(models),
        "first_day": start.isoformat(),
        "last_day": day_list[-1].isoformat(),
    }


def _month_table(checkpoint_id: str, seed: int, serial: int, parts: list[dict]) -> pa.Table:
    """One checkpoint's month in arrival order, as the replay reads a lake's events."""
    columns: dict[str, list] = {k: [] for k in ("direction", "nationality", "purpose", "mode", "outcome")}
    occurred, kafka = [], []
    for part in parts:
        cells = part["cells"]
        dictionary = {
            name: pa.array([getattr(c, name) for c in cells]) for name in ("nationality", "purpose", "mode")
        }
        dictionary["outcome"] = pa.array([c.outcome for c in cells])
        index = pa.array(part["cell"].astype(np.int32))
        for name, values in dictionary.items():
            columns[name].append(pc.take(values, index))
        columns["direction"].append(pc.take(pa.array(list(DIRECTIONS)), pa.array(part["direction"])))
        occurred.append(part["occurred_ms"])
        kafka.append(part["kafka_ms"])
    occurred_ms, kafka_ms = np.concatenate(occurred), np.concatenate(kafka)
    order = np.argsort(kafka_ms, kind="stable")
    n = len(order)
    ids = pa.array(np.arange(serial, serial + n, dtype=np.int64)).cast(pa.string())
    event_id = pc.binary_join_element_wise(pa.scalar(f"{checkpoint_id}-y{seed}-"), ids, "")
    table = pa.table(
        {
            "event_id": event_id,
            **{
                name: pa.chunked_array(chunks).combine_chunks().take(order)
                for name, chunks in columns.items()
            },
            "occurred_at": pa.array(occurred_ms[order] * 1000, pa.timestamp("us", tz="UTC")),
            "kafka_partition": pa.array(np.zeros(n, np.int32)),
            "kafka_offset": pa.array(np.arange(n, dtype=np.int64)),
            "kafka_timestamp": pa.array(kafka_ms[order], pa.timestamp("ms")),
        }
    )
    return table


# -- 2. services -----------------------------------------------------------------------------


def start_services(work: Path, s3_port: int, pg_port: int):
    """SeaweedFS and PostgreSQL, the project's way; returns (store, catalog)."""
    from streams.ops.lakestore import postgres, seaweedfs

    seaweedfs.install()
    store = seaweedfs.up(work / "s3", s3_port)
    pg_dir = work / "pg"
    pg_dir.mkdir(exist_ok=True)
    os.chmod(pg_dir, 0o755)  # the server runs as 'postgres' when this runs as root
    catalog = postgres.up(pg_dir / "cluster", pg_port)
    return store, catalog


def stop_services(work: Path) -> None:
    from streams.ops.lakestore import postgres, seaweedfs

    for stop, folder in ((seaweedfs.down, work / "s3"), (postgres.down, work / "pg" / "cluster")):
        if folder.exists():
            try:
                stop(folder)
            except Exception as error:  # report it, go on stopping the other
                print(f"warning: stopping {folder}: {error}", file=sys.stderr)


def lake_env(store, catalog, name: str) -> dict[str, str]:
    libpq = catalog.create_database(name).libpq
    return {
        "CROSSINGS_LAKE": f"ducklake:postgres:{libpq}",
        "CROSSINGS_LAKE_DATA_PATH": f"s3://{store.bucket}/{name}/",
        "AWS_ACCESS_KEY_ID": store.access_key,
        "AWS_SECRET_ACCESS_KEY": store.secret_key,
        "AWS_ENDPOINT_URL": f"http://{store.endpoint}",
    }


# -- 3-5. replay, compaction, measurements ---------------------------------------------------


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(CROSSINGS), *args], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"crossings {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return seconds, done.stdout.strip()


def _connect(env: dict[str, str], data_dir: Path):
    """The lake as the project opens it (the environment the replay had)."""
    from streams.settings.lake import load_lake
    from streams.sinks.ducklake.commit import connect
    from streams.sinks.ducklake.sink import location_of

    full = {**os.environ, **env}
    return connect(location_of(load_lake(full), data_dir, full))


def lake_files(env: dict[str, str], data_dir: Path) -> dict:
    """Data files per table, and the events files' rows, bytes and row groups."""
    con = _connect(env, data_dir)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name='lake'"
            ).fetchall()
        ]
        per_table = {
            t: con.execute(
                "SELECT count(*), coalesce(sum(data_file_size_bytes), 0) "
                f"FROM ducklake_list_files('lake', '{t}')"
            ).fetchall()[0]
            for t in tables
        }
        paths = [
            r[0]
            for r in con.execute("SELECT data_file FROM ducklake_list_files('lake', 'events')").fetchall()
        ]
        groups = []
        if paths:
            groups = [
                r[0]
                for r in con.execute(
                    "SELECT row_group_num_rows FROM parquet_metadata(?) GROUP BY file_name, row_group_id, "
                    "row_group_num_rows",
                    [paths],
                ).fetchall()
            ]
        rows = con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0]
    finally:
        con.close()
    return {
        "events_rows": rows,
        "files": {t: {"files": n, "bytes": b} for t, (n, b) in per_table.items()},
        "data_files": sum(n for n, _ in per_table.values()),
        "events_row_groups": _summary(groups),
    }


def _summary(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "at_least_100k": sum(1 for v in values if v >= 100_000),
    }


def bucket_bytes(store, prefix: str) -> dict:
    """What the object store holds under the lake's prefix (listed, not the catalog's word)."""
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        access_key=store.access_key,
        secret_key=store.secret_key,
        endpoint_override=store.endpoint,
        scheme="http",
        region="us-east-1",
    )
    infos = s3.get_file_info(fs.FileSelector(f"{store.bucket}/{prefix}", recursive=True))
    files = [i for i in infos if i.type == fs.FileType.File]
    return {"objects": len(files), "bytes": sum(i.size for i in files)}


def cleanup_unlinked(env: dict[str, str], data_dir: Path) -> int:
    """Delete the files compaction unlinked, as the next upkeep run (an hour on) would."""
    from streams.sinks.ducklake import upkeep

    con = _connect(env, data_dir)
    try:
        return upkeep.cleanup(con, datetime.now(UTC) + timedelta(days=1))
    finally:
        con.close()


#: The analyst's process: the README's lines (extensions from their PyPI packages: offline).
ANALYST_ATTACH = r"""
import json, os, sys, time
import duckdb
from streams.sinks.ducklake.commit import _install_extensions
query, runs = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
con = duckdb.connect(config={"autoinstall_known_extensions": False})
_install_extensions(con)
con.execute(
    "CREATE SECRET lake_s3 (TYPE s3, KEY_ID $k, SECRET $s, ENDPOINT $e, URL_STYLE 'path', "
    "USE_SSL false, REGION 'us-east-1')",
    {"k": os.environ["AWS_ACCESS_KEY_ID"], "s": os.environ["AWS_SECRET_ACCESS_KEY"],
     "e": os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")},
)
con.execute("ATTACH 'ducklake:" + os.environ["LAKE_CATALOG"] + "' AS lake (READ_ONLY)")
attach = time.perf_counter() - t0
"""
ANALYST = (
    ANALYST_ATTACH
    + r"""
times, rows = [], None
for _ in range(runs):
    t = time.perf_counter()
    rows = con.execute(query).fetchall()
    times.append(time.perf_counter() - t)
print(json.dumps({"attach": attach, "times": times, "rows": len(rows),
                  "total": sum(r[-1] for r in rows)}))
"""
)
EXPLAIN = (
    ANALYST_ATTACH
    + r"""
con.execute("PRAGMA enable_profiling = 'no_output'")
print(con.execute("EXPLAIN ANALYZE " + query).fetchall()[0][1])
"""
)


def query_times(env: dict[str, str], queries: dict[str, str], processes: int, warm_runs: int) -> dict:
    """Per query: ``processes`` fresh processes, each running it once cold then warm."""
    analyst_env = {**os.environ, **env, "LAKE_CATALOG": env["CROSSINGS_LAKE"].removeprefix("ducklake:")}
    results = {}
    for name, sql in queries.items():
        runs = []
        for _ in range(processes):
            done = subprocess.run(
                [sys.executable, "-c", ANALYST, sql, str(1 + warm_runs)],
                env=analyst_env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        results[name] = {
            "sql": sql,
            "rows": runs[0]["rows"],
            "events": runs[0]["total"],
            "attach_s": round(statistics.median(r["attach"] for r in runs), 3),
            "cold_s": round(statistics.median(r["times"][0] for r in runs), 3),
            "warm_s": round(statistics.median(t for r in runs for t in r["times"][1:]), 3),
            "cold_runs": [round(r["times"][0], 3) for r in runs],
        }
    return results


def partition_events(env: dict[str, str], data_dir: Path, keys: str) -> None:
    """Create the lake's tables as the replay would, with ``events`` partitioned by ``keys``."""
    from streams.settings.lake import load_lake
    from streams.sinks.ducklake.sink import location_of, open_lake

    full = {**os.environ, **env}
    con = open_lake(location_of(load_lake(full), data_dir, full), dead_letters=True)
    try:
        con.execute(f"ALTER TABLE lake.events SET PARTITIONED BY ({keys})")
    finally:
        con.close()


def bulk_load(env: dict[str, str], data_dir: Path, input_dir: Path, partitions: int) -> dict:
    """The events table loaded straight from the generated files, without the core: for
    a lake of a size the replay cannot reach in the time at hand. One INSERT (one catalog
    commit) per month, all checkpoints in arrival order, with the columns the replay
    writes (local day and hour in the checkpoint's zone, the partition the checkpoint is
    routed to). Daily counts and alerts are not written."""
    from streams.core.partitioning import partition_for
    from streams.settings.lake import load_lake
    from streams.sinks.ducklake.sink import location_of, open_lake

    full = {**os.environ, **env}
    con = open_lake(location_of(load_lake(full), data_dir, full))
    started = time.perf_counter()
    try:
        con.execute("SET TimeZone = 'UTC'")
        registry = load_checkpoints()
        routes = ", ".join(
            f"('{c}', '{registry[c].tz.key}', {partition_for(c.encode(), partitions)})" for c in registry
        )
        offset = 0
        for month in range(1, 13):
            files = str(input_dir / "*" / f"{month:02d}.parquet")
            con.execute(
                f"""INSERT INTO lake.events BY NAME
                SELECT CAST(timezone(r.tz, e.occurred_at) AS DATE) AS local_day,
                       e.checkpoint AS checkpoint_id, e.event_id, e.direction, e.occurred_at,
                       CAST(hour(timezone(r.tz, e.occurred_at)) AS TINYINT) AS local_hour,
                       e.nationality, e.purpose, e.mode, e.outcome, r.part AS kafka_partition,
                       {offset} + row_number() OVER (ORDER BY e.kafka_timestamp) AS kafka_offset,
                       CAST(e.kafka_timestamp AS TIMESTAMPTZ) AS kafka_timestamp, {month} AS commit_seq
                FROM read_parquet('{files}', hive_partitioning = true) e
                JOIN (VALUES {routes}) r(id, tz, part) ON r.id = e.checkpoint
                ORDER BY e.kafka_timestamp"""
            )
            offset = con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0]
            print(f"bulk load: month {month}, {offset:,} rows", flush=True)
    finally:
        con.close()
    return {"seconds": round(time.perf_counter() - started, 1), "rows": offset}


def explain(env: dict[str, str], sql: str) -> str:
    """EXPLAIN ANALYZE of ``sql`` in a fresh analyst process (what it read)."""
    analyst_env = {**os.environ, **env, "LAKE_CATALOG": env["CROSSINGS_LAKE"].removeprefix("ducklake:")}
    done = subprocess.run(
        [sys.executable, "-c", EXPLAIN, sql, "1"],
        env=analyst_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def busiest(input_dir: Path) -> tuple[str, str]:
    """The busiest checkpoint, and its busiest day in June (the query's subject)."""
    import duckdb

    files = str(input_dir / "*" / "*.parquet")
    cp = duckdb.sql(
        f"SELECT checkpoint FROM read_parquet('{files}', hive_partitioning=true) "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()[0][0]
    return cp, "2025-06-16"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.lake_year", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument(
        "--jobs", type=int, default=2, help="replay processes (the PostgreSQL catalog takes several)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / ".local" / "lake_year")
    port = int(os.environ.get("CROSSINGS_TEST_KAFKA_PORT", "19092"))
    parser.add_argument("--s3-port", type=int, default=port + 4)
    parser.add_argument("--pg-port", type=int, default=port + 9)
    parser.add_argument(
        "--processes", type=int, default=3, help="fresh analyst processes per query (cold runs)"
    )
    parser.add_argument("--warm", type=int, default=3, help="warm runs per analyst process")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the services running")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument(
        "--load",
        choices=["replay", "bulk"],
        default="replay",
        help="replay: crossings replay --parquet (the measurement); bulk: the events table "
        "loaded straight from the files, without the core (a lake of a size the replay cannot reach)",
    )
    parser.add_argument(
        "--partition-by",
        default="",
        help="DuckLake partition keys of events set before loading, e.g. 'checkpoint_id, month(local_day)'",
    )
    args = parser.parse_args(argv)

    work = args.work / f"n{args.events}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result: dict = {
        "events": args.events,
        "seed": args.seed,
        "jobs": args.jobs,
        "load_before": load_average(),
    }
    input_dir = work / "input"
    result["generate"] = generate(args.events, args.seed, input_dir)
    print(f"generated: {result['generate']}", flush=True)
    if args.generate_only:
        return 0
    try:
        store, catalog = start_services(work, args.s3_port, args.pg_port)
        name = f"year_{args.events}_{uuid.uuid4().hex[:6]}"
        env = lake_env(store, catalog, name)
        env["CROSSINGS_HOME"] = str(work / "home")
        data_dir = work / "data"
        result["load"] = args.load
        if args.partition_by:
            partition_events(env, data_dir, args.partition_by)
            result["partition_by"] = args.partition_by
        if args.load == "replay":
            seconds, out = run_cli(
                ["replay", "--parquet", str(input_dir), "--data", str(data_dir), "--jobs", str(args.jobs)],
                env,
            )
        else:
            partitions = int(os.environ.get("CROSSINGS_PARTITIONS", "4"))
            loaded = bulk_load(env, data_dir, input_dir, partitions)
            seconds, out = loaded["seconds"], f"bulk-loaded {loaded['rows']:,} rows"
        result["replay"] = {
            "seconds": round(seconds, 1),
            "events_per_s": round(args.events / seconds),
            # The largest process of the load (a job, its source reader), once they are gone.
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
            "output": out,
            "load_after": load_average(),
        }
        print(f"{args.load}: {result['replay']}", flush=True)
        result["before_compaction"] = {**lake_files(env, data_dir), "bucket": bucket_bytes(store, name)}
        print(f"before compaction: {result['before_compaction']}", flush=True)
        seconds, out = run_cli(
            ["lake", "compact", "--keep-hours", "0"], {**env, "CROSSINGS_DATA_DIR": str(data_dir)}
        )
        deleted = cleanup_unlinked(env, data_dir)
        result["compact"] = {"seconds": round(seconds, 1), "output": out, "unlinked_deleted": deleted}
        print(f"compact: {result['compact']}", flush=True)
        result["after_compaction"] = {**lake_files(env, data_dir), "bucket": bucket_bytes(store, name)}
        print(f"after compaction: {result['after_compaction']}", flush=True)
        cp, day = busiest(input_dir)
        queries = {
            k: q.format(cp=cp, day=day, first="2025-06-01", last="2025-06-30") for k, q in QUERIES.items()
        }
        result["queries"] = query_times(env, queries, args.processes, args.warm)
        result["explain_checkpoint_day"] = explain(env, queries["checkpoint_day"])
        result["load_end"] = load_average()
        print(f"queries: {json.dumps(result['queries'], indent=1)}", flush=True)
    finally:
        (args.work / f"result-{args.events}.json").write_text(
            json.dumps(result, indent=1, default=str) + "\n"
        )
        if not args.keep:
            stop_services(work)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
