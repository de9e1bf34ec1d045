"""How good is the detector? Synthetic scenarios, NAB nyc_taxi, the BTS 2020 closure, and the
real sets kept in the repository (``load_tests/data``: Hong Kong control points, Auckland
pedestrians; see :mod:`load_tests.real_data`).

Every figure comes from the code ``crossings backtest`` runs (``streams.backtest``),
which is the worker's detector. Usage::

    .venv/bin/python -m load_tests.evaluate_detector            # every data set
    .venv/bin/python -m load_tests.evaluate_detector --only nab --episodes
    .venv/bin/python -m load_tests.evaluate_detector --write-synthetic .local/synthetic

NAB and BTS are read from ``../shared/data`` (``CROSSINGS_SHARED_DATA`` overrides); a
part whose data is absent is skipped with a message. The sets of ``load_tests/data`` are
in the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from load_tests import detector_synthetic as synthetic
from load_tests import real_data
from load_tests.nab_score import load_windows, score_file
from streams.backtest import Columns, EpisodeRow, Label, SeriesSet, backtest, build_series, score
from streams.backtest.series import local_midnight
from streams.domain.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    return Path(os.environ.get("CROSSINGS_SHARED_DATA", ROOT.parent / "shared" / "data"))


# -- synthetic ---------------------------------------------------------------------------


def synthetic_data() -> tuple[SeriesSet, list[Label]]:
    registry = load_registry()
    data = build_series(synthetic.rows(), "time", Columns(), registry)
    labels = []
    for row in synthetic.labels():
        zone = registry[row["checkpoint"]].tz
        start = local_midnight(date.fromisoformat(row["date"]), zone).astimezone(UTC)
        end = local_midnight(date.fromisoformat(row["end"]) + timedelta(days=1), zone).astimezone(UTC)
        labels.append(
            Label(start, end, row["checkpoint"], row["kind"], row["direction"] or None, row["name"])
        )
    return data, labels


def evaluate_synthetic(show: bool) -> dict[str, Any]:
    started = time.perf_counter()
    data, labels = synthetic_data()
    rows = backtest(data)
    scored_from = local_midnight(synthetic.SCORED_FROM, load_registry()["korday"].tz).astimezone(UTC)
    result = score(rows, labels, data, scored_from=scored_from)
    per_label = {}
    for label in labels:
        hits = [r for r in rows if label.covers(r, timedelta(0), timedelta(days=2))]
        first = min(hits, key=lambda r: r.opened_at) if hits else None
        per_label[label.name] = (
            f"{(first.opened_at - label.start).total_seconds() / 3600:.0f} h" if first else "missed"
        )
    scored = [r for r in rows if r.opened_at >= scored_from]
    seasonal = _false_alarms_on(scored, labels, _harvest_days(), "harvest")
    holiday = _false_alarms_on(scored, labels, _holiday_days(data), "holiday")
    if show:
        _show(scored)
    return {
        "recall": f"{result.found}/{result.labels}",
        "median_delay_h": round(result.median_delay_h, 1),
        "false_alarms": result.false_alarms,
        "fa_per_series_90d": round(result.false_alarms_per_series_90d, 2),
        "harvest_alarms": seasonal,
        "holiday_alarms": holiday,
        "per_label": per_label,
        "series": len(data.series),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _harvest_days() -> set[date]:
    return {date(2024, 9, 1) + timedelta(days=i) for i in range(61)}


def _holiday_days(data: SeriesSet) -> dict[str, set[date]]:
    found: dict[str, set[date]] = {}
    for (checkpoint_id, _), series in data.series.items():
        days = {
            d
            for d in (synthetic.SCORED_FROM + timedelta(days=i) for i in range(366))
            if synthetic.holiday_factor(series.checkpoint, d) != 1.0
        }
        found[checkpoint_id] = days
    return found


def _false_alarms_on(rows: Sequence[EpisodeRow], labels: Sequence[Label], days: Any, what: str) -> int:
    """Unlabelled episodes opening on a harvest day (or a holiday of their checkpoint, +1 day)."""
    count = 0
    for row in rows:
        if any(label.during(row, timedelta(days=2)) for label in labels):
            continue
        day = datetime.fromisoformat(row.start).date() if "T" in row.start else date.fromisoformat(row.start)
        wanted = days if what == "harvest" else days.get(row.checkpoint, set())
        if day in wanted or (what == "holiday" and day - timedelta(days=1) in wanted):
            count += 1
    return count


# -- NAB ---------------------------------------------------------------------------------


def evaluate_nab(show: bool) -> dict[str, Any] | str:
    root = shared_data() / "nab"
    path = root / "data" / "realKnownCause" / "nyc_taxi.csv"
    if not path.exists():
        return f"skipped: {path} not found"
    with path.open() as handle:
        raw = list(csv.DictReader(handle))
    timestamps = [datetime.fromisoformat(r["timestamp"]) for r in raw]
    data = build_series(
        ({"time": r["timestamp"], "count": r["value"]} for r in raw),
        "time",
        Columns(),
        {},
        default_checkpoint="nyc_taxi",
        # New York taxi rides: the holidays of the series' own country, as a checkpoint gets
        # its two countries' (`crossings backtest --country US`). Without them: one more
        # false positive (Labor Day night), the same windows found.
        countries=("US",),
    )
    rows = backtest(data)
    step = timestamps[1] - timestamps[0]
    # An alert at hour H has seen the rows before H: it flags the last of them.
    detections = [r.opened_at.replace(tzinfo=None) - step for r in rows]
    windows = load_windows(root, "realKnownCause/nyc_taxi.csv")
    result = score_file(timestamps, detections, windows)
    published = json.loads((root / "results" / "final_results.json").read_text())
    if show:
        _show(rows)
    return {
        "windows_detected": f"{result.detected}/{result.windows}",
        "false_positives": result.false_positives,
        "nab_standard_score": round(result.normalised, 1),
        "median_delay_into_window_h": round(sorted(result.delays_h)[len(result.delays_h) // 2], 1)
        if result.delays_h
        else None,
        "published_corpus_scores": {
            k: round(published[k]["standard"], 1)
            for k in ("numenta", "knncad", "windowedGaussian", "null")
            if k in published
        },
    }


# -- BTS ---------------------------------------------------------------------------------

PEOPLE = ("Personal Vehicle Passengers", "Bus Passengers", "Pedestrians", "Train Passengers")


def bts_rows(path: Path, ports: int = 10) -> tuple[list[dict[str, Any]], list[str]]:
    """Daily rows (each month's people spread evenly over its days) of the busiest ports of 2019."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE bts AS
        SELECT "Port Name" || ' ' || "Port Code" AS port, Border AS border,
               strptime(Date, '%b %Y')::DATE AS month, Measure AS measure, max(Value) AS value
        FROM read_csv('{path}', all_varchar=false)
        WHERE Measure IN {PEOPLE!r}
        GROUP BY ALL"""
    )
    top = [
        r[0]
        for r in con.execute(
            "SELECT port FROM bts WHERE year(month) = 2019 GROUP BY port ORDER BY sum(value) DESC LIMIT ?",
            [ports],
        ).fetchall()
    ]
    monthly = con.execute(
        "SELECT port, border, month, measure, value FROM bts WHERE port IN (SELECT unnest(?)) "
        "AND month BETWEEN DATE '2016-01-01' AND DATE '2021-12-01' ORDER BY ALL",
        [top],
    ).fetchall()
    out = []
    for port, _, month, measure, value in monthly:
        days = ((month.replace(day=28) + timedelta(days=4)).replace(day=1) - month).days
        base, extra = divmod(int(value), days)
        for i in range(days):
            out.append(
                {
                    "date": (month + timedelta(days=i)).isoformat(),
                    "checkpoint": port,
                    "direction": "entry",
                    "group": measure,
                    "count": base + (1 if i < extra else 0),
                }
            )
    return out, top


def evaluate_bts(show: bool) -> dict[str, Any] | str:
    path = shared_data() / "bts" / "Border_Crossing_Entry_Data_full_1996-01_to_2025-02.csv.gz"
    if not path.exists():
        return f"skipped: {path} not found"
    rows, ports = bts_rows(path)
    data = build_series(rows, "date", Columns(), {})
    episodes = backtest(data)
    flagged = {}
    for port in ports:
        hits = [
            r
            for r in episodes
            if r.checkpoint == port and r.kind == "drop" and "2020-03-01" <= r.start[:10] <= "2020-04-30"
        ]
        flagged[port] = f"{hits[0].start[:10]} x{hits[0].ratio:.2f}" if hits else "missed"
    quiet = [r for r in episodes if "2017-01-01" <= r.start[:10] < "2020-03-01"]
    days = (date(2020, 3, 1) - date(2017, 1, 1)).days
    if show:
        _show(episodes)
    return {
        "april_2020_drop_flagged": f"{sum(v != 'missed' for v in flagged.values())}/{len(ports)}",
        "ports": flagged,
        "fa_2017_2020_02": len(quiet),
        "fa_per_series_90d": round(len(quiet) / len(ports) / days * 90, 2),
    }


# -- the real sets of load_tests/data ------------------------------------------------


def evaluate_real(name: str, show: bool) -> dict[str, Any]:
    """Ours on one set of :mod:`load_tests.real_data`, scored as the peers are there."""
    started = time.perf_counter()
    data, labels, spec = real_data.load(name)
    rows = backtest(data)
    if show:
        _show(rows)
    return {
        **real_data.scorer(data, labels, spec)(rows),
        "series": len(data.series),
        "seconds": round(time.perf_counter() - started, 1),
    }


PARTS = {
    "synthetic": evaluate_synthetic,
    "nab": evaluate_nab,
    "bts": evaluate_bts,
    **{name: (lambda show, name=name: evaluate_real(name, show)) for name in real_data.SETS},
}


def _show(rows: Sequence[EpisodeRow]) -> None:
    for row in rows:
        print(f"  {row.start} {row.checkpoint} {row.direction} {row.kind} {row.cause}: {row.summary}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--episodes", action="store_true", help="Print every scored episode.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument("--write-synthetic", type=Path, default=None, help="Write series.csv + labels.csv.")
    args = parser.parse_args(argv)
    if args.write_synthetic:
        write_synthetic(args.write_synthetic)
        return
    results: dict[str, Any] = {}
    for part in args.only.split(","):
        print(f"== {part}", file=sys.stderr)
        results[part] = PARTS[part](args.episodes)
        print(json.dumps(results[part], indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


def write_synthetic(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "series.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["time", "checkpoint", "direction", "group", "count"])
        writer.writeheader()
        writer.writerows(synthetic.rows())
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["date", "end", "checkpoint", "direction", "kind", "name"])
        writer.writeheader()
        writer.writerows(synthetic.labels())
    print(f"wrote {folder / 'series.csv'} and {folder / 'labels.csv'}")


if __name__ == "__main__":
    main()
