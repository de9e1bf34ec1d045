"""Derive examples/bts_two_ports_daily.csv from the BTS Border Crossing Entry Data.

People entering the US (personal vehicle, bus and train passengers, pedestrians) per
month at San Ysidro (US-Mexico) and Buffalo Niagara Falls (US-Canada), 2018-2021, spread
evenly over each month's days (the data is monthly) and summed over the four measures.
Run from the repository root with the shared data beside it::

    .venv/bin/python examples/derive_bts_example.py \
        ../shared/data/bts/Border_Crossing_Entry_Data_full_1996-01_to_2025-02.csv.gz
"""

from __future__ import annotations

import csv
import sys
from datetime import timedelta
from pathlib import Path

import duckdb

PORTS = ("San Ysidro 2504", "Buffalo Niagara Falls 0901")
PEOPLE = ("Personal Vehicle Passengers", "Bus Passengers", "Pedestrians", "Train Passengers")
OUT = Path(__file__).resolve().parent / "bts_two_ports_daily.csv"


def main(source: str) -> None:
    con = duckdb.connect()
    monthly = con.execute(
        """SELECT "Port Name" || ' ' || "Port Code" AS port, strptime(Date, '%b %Y')::DATE AS month,
                  sum(value) AS people
           FROM (SELECT "Port Name", "Port Code", Date, Measure, max(Value) AS value
                 FROM read_csv(?, all_varchar=false) WHERE Measure IN (SELECT unnest(?)) GROUP BY ALL)
           WHERE "Port Name" || ' ' || "Port Code" IN (SELECT unnest(?))
             AND strptime(Date, '%b %Y')::DATE BETWEEN DATE '2018-01-01' AND DATE '2021-12-01'
           GROUP BY ALL ORDER BY port, month""",
        [source, list(PEOPLE), list(PORTS)],
    ).fetchall()
    with OUT.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["date", "checkpoint", "direction", "count"])
        for port, month, people in monthly:
            days = ((month.replace(day=28) + timedelta(days=4)).replace(day=1) - month).days
            base, extra = divmod(int(people), days)
            for i in range(days):
                writer.writerow([(month + timedelta(days=i)).isoformat(), port, "entry", base + (i < extra)])
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
