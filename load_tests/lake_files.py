"""How many Parquet files live traffic leaves in ``events/``: every commit publishing
against rows staged and published every ``--roll`` seconds, from one run on one broker.

Live, a commit holds a few seconds of a post's crossings, so a file per commit and folder
is a file per handful of rows. This sends the scenario's first days at a steady rate
(event time runs ``speed`` times faster than a wall clock, so a day's folders stay open
for a while, as live), through a real worker with a 1 s commit interval, once with
``CROSSINGS_LAKE_ROLL_SECONDS=0`` and once with ``--roll``; then checks each lake against
the oracle (the crash test's checks, with no kills) and prints the files and rows per
folder.

    python -m load_tests.lake_files --days 2 --rate 200 --roll 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from load_tests.crash_test import RECORDS_PER_DAY, run
from load_tests.harness import broker_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2, help="scenario days to send")
    parser.add_argument("--rate", type=float, default=200.0, help="records per second")
    parser.add_argument(
        "--roll", type=float, default=10.0, help="CROSSINGS_LAKE_ROLL_SECONDS to compare with 0"
    )
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: start one)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="crossings-lake-files-"))
    rows = []
    try:
        with broker_for(args.bootstrap, home / "kafka") as bootstrap:
            for roll in (0.0, args.roll):
                result = run(
                    bootstrap,
                    home / f"roll-{roll:g}",
                    events=None,
                    days=args.days,
                    kills=0,
                    rate=args.rate,
                    roll_seconds=roll,
                    extra_env={"CROSSINGS_LAKE": "parquet"},  # the Parquet lake's own files
                )
                folders = {
                    path.parent for path in (home / f"roll-{roll:g}" / "data").glob("events/*/*/*.parquet")
                }
                rows.append(
                    {
                        "roll_seconds": roll,
                        "exact": result.exact,
                        "event_rows": result.event_rows,
                        "event_files": result.event_files,
                        "folders": len(folders),
                        "files_per_folder": round(result.event_files / max(len(folders), 1), 1),
                        "rows_per_file": round(result.event_rows / max(result.event_files, 1), 1),
                        "staged_left": result.staged_left,
                        "seconds": result.seconds,
                    }
                )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    speed = args.rate / (RECORDS_PER_DAY / 86400)  # how much faster than a live day
    summary = {"days": args.days, "rate": args.rate, "event_time_speed": round(speed), "runs": rows}
    print(json.dumps(summary, indent=2))
    return 0 if all(row["exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
