"""How fast is ``crossings backtest`` on a realistic file? (issue 17, item 9)

The file issue 17 timed: 16 control points x 2 directions = 32 daily series of five years,
three nationality|purpose groups each (~175,000 rows). :func:`write_file` generates one
like it, deterministically (a seeded generator): a weekly rhythm (Friday and Sunday peaks,
a quiet Tuesday), a yearly swell, day-level noise, and per point its own size and group mix.

The benchmark runs what the command runs, in one process, timing each stage::

    .venv/bin/python -m load_tests.bench_backtest                 # generate into .local/, time it
    .venv/bin/python -m load_tests.bench_backtest --out episodes.jsonl   # also keep the JSON lines
    .venv/bin/python -m load_tests.bench_backtest --file examples/bts_two_ports_daily.csv
    .venv/bin/python -m load_tests.bench_backtest --jobs 2      # the series in two processes

It prints rows, seconds per stage and rows/s. ``--out`` writes exactly what
``crossings backtest FILE --format json`` prints, to prove a speed-up changed nothing.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / ".local" / "bench_backtest" / "daily_32x5y.csv"

#: (nationality|purpose, share of a point's traffic): three groups per series.
GROUPS = (("local|work", 0.55), ("local|tourism", 0.25), ("foreign|tourism", 0.20))
#: Monday .. Sunday: a border's weekly rhythm (weekend trips out on Friday, back on Sunday).
WEEKDAY = (1.00, 0.88, 0.92, 0.97, 1.22, 1.08, 1.30)


def generate(
    points: int = 16, years: int = 5, start: date = date(2019, 1, 1), seed: int = 17
) -> list[dict[str, str | int]]:
    """Daily rows (date, checkpoint, direction, group, count), the same for the same arguments."""
    rng = random.Random(seed)
    days = (date(start.year + years, start.month, start.day) - start).days
    rows: list[dict[str, str | int]] = []
    for p in range(points):
        size = rng.choice((800, 2_500, 6_000, 15_000, 40_000))
        mix = [share * rng.uniform(0.7, 1.3) for _, share in GROUPS]
        total = sum(mix)
        mix = [m / total for m in mix]
        phase = rng.uniform(0, 2 * math.pi)
        for direction in ("entry", "exit"):
            level = size * rng.uniform(0.9, 1.1)
            for i in range(days):
                day = start + timedelta(days=i)
                season = 1 + 0.25 * math.sin(2 * math.pi * i / 365.25 + phase)
                noise = math.exp(rng.gauss(0, 0.08))
                mean = level * season * WEEKDAY[day.weekday()] * noise
                for (group, _), share in zip(GROUPS, mix, strict=True):
                    count = max(0, round(rng.gauss(mean * share, math.sqrt(mean * share))))
                    rows.append(
                        {
                            "date": day.isoformat(),
                            "checkpoint": f"point{p:02d}",
                            "direction": direction,
                            "group": group,
                            "count": count,
                        }
                    )
    return rows


def write_file(path: Path, **kwargs: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = generate(**kwargs)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["date", "checkpoint", "direction", "group", "count"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def run(path: Path, tz: str, countries: tuple[str, ...], out: Path | None, jobs: int = 1) -> dict[str, float]:
    """What ``crossings backtest PATH --format json --tz TZ --country ...`` does, timed by stage."""
    from streams.backtest import Columns, backtest, build_series, read_rows, render
    from streams.domain.registry import load_registry

    times: dict[str, float] = {}
    started = time.perf_counter()
    registry = load_registry()
    columns = Columns()
    rows, time_column = read_rows(path, columns)
    times["read"] = time.perf_counter() - started
    mark = time.perf_counter()
    data = build_series(
        rows, time_column, columns, registry, default_checkpoint=path.stem, tz=tz, countries=countries
    )
    times["build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    episodes = backtest(data, jobs=jobs)
    times["evaluate"] = time.perf_counter() - mark
    mark = time.perf_counter()
    text = render(episodes, "json")
    times["render"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    times["rows"] = data.rows
    times["episodes"] = len(episodes)
    if out is not None:
        out.write_text(text)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=None, help="Time this file, not the generated one.")
    parser.add_argument("--write", type=Path, default=None, help="Only write the generated file here.")
    parser.add_argument("--tz", default="Europe/Helsinki")
    parser.add_argument("--country", action="append", default=None, help="[default: FI, RU]")
    parser.add_argument("--out", type=Path, default=None, help="Write the episodes' JSON lines here.")
    parser.add_argument(
        "--jobs", type=int, default=1, help="Processes (crossings backtest --jobs) [default: 1]."
    )
    args = parser.parse_args(argv)
    if args.write:
        print(f"wrote {write_file(args.write):,} rows to {args.write}")
        return
    path = args.file or DEFAULT_FILE
    if args.file is None and not path.exists():
        write_file(path)
    countries = tuple(args.country or ("FI", "RU"))
    times = run(path, args.tz, countries, args.out, args.jobs)
    stages = ", ".join(f"{k} {times[k]:.2f} s" for k in ("read", "build", "evaluate", "render"))
    print(
        f"{path.name}: {int(times['rows']):,} rows, {int(times['episodes'])} episodes, {args.jobs} job(s), "
        f"{times['total']:.2f} s ({stages}), {times['rows'] / times['total']:,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
