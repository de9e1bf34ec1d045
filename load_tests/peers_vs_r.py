"""Cross-check load_tests/peers.py's EARS against R's ``surveillance::earsC`` (needs ``Rscript``
and the R package ``surveillance``; Debian: ``apt-get install r-cran-surveillance``).

    .venv/bin/python -m load_tests.peers_vs_r

Random series (200 x 80 days, levels 50 to 5,000, wide spread, a few outbreaks and dips).
C1 and C2 upper alarms are compared with ``earsC(method=..., alpha=1-pnorm(3), minSigma=0)``
(an upper bound of mean + 3 sd) on every day where our minimum-sd guard is not in force.
C3 is compared both with the published definition (sum of max(0, C2 - 1) over t-2 .. t
above 2) and with the reading of ``earsC``'s code (an upper bound of
``y_t + sd (z - lag parts)``, so in effect only days t-2 and t-1 count), alpha =
1 - pnorm(2).
"""

from __future__ import annotations

import csv
import random
import statistics
import subprocess
import tempfile
from pathlib import Path

from load_tests import peers

R_CODE = r"""
suppressMessages(library(surveillance))
x <- as.matrix(read.csv("{path}", header=FALSE))
for (m in c("C1", "C2", "C3")) for (i in 1:nrow(x)) {{
  s <- sts(observed=matrix(x[i,], ncol=1), frequency=365)
  a <- if (m == "C3") 1 - pnorm(2) else 1 - pnorm(3)
  r <- earsC(s, control=list(method=m, alpha=a, minSigma=0))
  cat(m, i, as.integer(alarms(r)), "\n")
}}
"""


def random_series(seed: int = 5, n: int = 200, days: int = 80) -> list[list[int]]:
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        level = rng.choice([50, 500, 5000])
        values = [max(0, round(rng.gauss(level, level * rng.uniform(0.2, 0.6)))) for _ in range(days)]
        for _ in range(3):
            i = rng.randrange(10, days)
            values[i] = round(values[i] * rng.choice([0.1, 2.5, 4]))
        found.append(values)
    return found


def _guarded(window: list[int]) -> bool:
    return statistics.stdev(window) < peers.min_sd(statistics.fmean(window))


def main() -> None:
    series = random_series()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "series.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(series)
        lines = subprocess.run(
            ["Rscript", "-e", R_CODE.format(path=path)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    tally = {"C1": [0, 0], "C2": [0, 0], "C3 published": [0, 0], "C3 lags only": [0, 0]}
    r_alarms = {"C1": 0, "C2": 0, "C3": 0}
    for line in lines:
        method, index, *flags = line.split()
        values = series[int(index) - 1]
        alarms = [int(f) for f in flags]
        r_alarms[method] += sum(alarms)
        first = {"C1": 7, "C2": 9, "C3": 11}[method]
        stats = [peers.ears_statistic(values, t, 3) for t in range(len(values))]
        ours = peers.c1(values) if method == "C1" else peers.c2(values)
        for k, alarm in enumerate(alarms):
            t = first + k
            if method != "C3":
                lag = 1 if method == "C1" else 3
                if _guarded(values[t - lag - 6 : t - lag + 1]):
                    continue
                tally[method][0] += 1
                tally[method][1] += (ours[t] == 1) == bool(alarm)
                continue
            if any(_guarded(values[j - 9 : j - 2]) for j in (t - 2, t - 1, t)):
                continue
            parts = [max(0.0, s - 1) for s in stats[t - 2 : t + 1] if s is not None]
            for name, fired in (("C3 published", sum(parts) > 2), ("C3 lags only", sum(parts[:2]) > 2)):
                tally[name][0] += 1
                tally[name][1] += fired == bool(alarm)
    print(f"R alarms: {r_alarms}")
    for name, (days, agree) in tally.items():
        print(f"{name}: R agrees on {agree:,} of {days:,} days")


if __name__ == "__main__":
    main()
