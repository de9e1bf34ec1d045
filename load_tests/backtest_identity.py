"""Does a change to the detector's speed change a single output? (issue 17, item 9)

Runs ``crossings backtest`` (the code it runs, ``streams.backtest``) over every data set
the project judges the detector on and writes, per set, the JSON lines the command prints
(``--format json``) and a digest of every baseline the detector built along the way (its
``repr``: each float to the last bit), so a speed-up that moves a band by one ulp shows
even where no episode moves. ``--against REF`` does the same with the code of a git
commit (exported once into ``.local/backtest_identity/<sha>/``, its outputs kept there)
and compares, file by file, byte for byte::

    .venv/bin/python -m load_tests.backtest_identity --against main
    .venv/bin/python -m load_tests.backtest_identity --only bench,examples --against main
    .venv/bin/python -m load_tests.backtest_identity --jobs 2 --against main   # in 2 processes
    .venv/bin/python -m load_tests.backtest_identity --write DIR    # this tree's outputs only

The sets: the benchmark's file (``bench_backtest``), ``examples/``, the real sets of
``load_tests/data`` (``real_data``), and the synthetic, NAB and BTS sets of
``evaluate_detector`` (those two from ``CROSSINGS_SHARED_DATA``; skipped when absent).
The synthetic and NAB sets are hourly: the worker's own cadence.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".local" / "backtest_identity"
PARTS = ("bench", "examples", "hk_immd", "akl_pedestrians", "dc_bikeshare", "synthetic", "nab", "bts")


def _data(part: str) -> Any:
    """The series set of one part, built as the command (or the evaluation) builds it."""
    from streams.backtest import Columns, build_series, read_rows
    from streams.domain.registry import load_registry

    if part in ("bench", "examples"):
        from load_tests import bench_backtest

        if part == "bench":
            path, tz, countries = bench_backtest.DEFAULT_FILE, "Europe/Helsinki", ("FI", "RU")
            if not path.exists():
                bench_backtest.write_file(path)
        else:  # the README's worked example: the command's defaults
            path, tz, countries = ROOT / "examples" / "bts_two_ports_daily.csv", "UTC", ()
        rows, time_column = read_rows(path, Columns())
        return build_series(
            rows,
            time_column,
            Columns(),
            load_registry(),
            default_checkpoint=path.stem,
            tz=tz,
            countries=countries,
        )
    from load_tests import evaluate_detector, real_data

    if part in real_data.SETS:
        return real_data.load(part)[0]
    if part == "synthetic":
        return evaluate_detector.synthetic_data()[0]
    import csv

    shared = evaluate_detector.shared_data()
    if part == "nab":
        path = shared / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"
        if not path.exists():
            return None
        with path.open() as handle:
            raw = list(csv.DictReader(handle))
        return build_series(
            ({"time": r["timestamp"], "count": r["value"]} for r in raw),
            "time",
            Columns(),
            {},
            default_checkpoint="nyc_taxi",
            countries=("US",),
        )
    path = shared / "bts" / "Border_Crossing_Entry_Data_full_1996-01_to_2025-02.csv.gz"
    if not path.exists():
        return None
    return build_series(evaluate_detector.bts_rows(path)[0], "date", Columns(), {})


class _Trace:
    """Every baseline ``CheckpointDetector.baseline`` returns, in call order, hashed (its repr)."""

    def __init__(self) -> None:
        from streams.domain.detect.detector import CheckpointDetector

        self.reset()
        original = CheckpointDetector.baseline
        trace = self

        def baseline(detector: Any, day: Any) -> Any:
            found = original(detector, day)
            line = f"{detector.checkpoint.checkpoint_id} {detector.direction} {day} {found!r}\n"
            trace.digest.update(line.encode())
            trace.calls += 1
            return found

        CheckpointDetector.baseline = baseline  # type: ignore[method-assign]

    def reset(self) -> None:
        self.digest = hashlib.sha256()
        self.calls = 0


def write(folder: Path, parts: list[str], jobs: int = 1) -> None:
    """This interpreter's ``streams`` (the tree it imports) over ``parts``, into ``folder``.
    ``jobs`` > 1 (``crossings backtest --jobs``): the episodes only (the baselines are
    built in the other processes, unseen)."""
    from streams.backtest import backtest, render

    folder.mkdir(parents=True, exist_ok=True)
    trace = _Trace()
    for part in parts:
        data = _data(part)
        if data is None:
            print(f"{part}: skipped (data absent)", file=sys.stderr)
            (folder / f"{part}.skipped").touch()
            continue
        trace.reset()
        started = time.perf_counter()
        episodes = backtest(data, jobs=jobs) if jobs > 1 else backtest(data)
        seconds = time.perf_counter() - started
        (folder / f"{part}.jsonl").write_text(render(episodes, "json"))
        if jobs == 1:
            (folder / f"{part}.baselines").write_text(f"{trace.calls} {trace.digest.hexdigest()}\n")
        print(f"{part}: {len(episodes)} episodes, {trace.calls} baselines, {seconds:.1f} s", file=sys.stderr)


def _run_at(sha: str, parts: list[str]) -> Path:
    """The outputs of commit ``sha`` (exported once, kept under ``CACHE``)."""
    base = CACHE / sha
    out = base / "out"
    wanted = [p for p in parts if not (out / f"{p}.jsonl").exists() and not (out / f"{p}.skipped").exists()]
    if wanted:
        src = base / "src"
        if not (src / "streams").exists():
            src.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", sha], check=True, capture_output=True
            )
            tar_path = base / "src.tar"
            tar_path.write_bytes(archive.stdout)
            with tarfile.open(tar_path) as tar:
                tar.extractall(src, filter="data")
            tar_path.unlink()
        env = {**os.environ, "PYTHONPATH": str(src)}
        code = f"import sys; sys.path.insert(0, {str(src)!r}); " + (
            "import runpy; sys.argv = ['x', '--write', {out!r}, '--only', {only!r}]; "
            "runpy.run_path({script!r}, run_name='__main__')"
        ).format(out=str(out), only=",".join(wanted), script=__file__)
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=src)
    return out


def compare(old: Path, new: Path, part: str) -> bool:
    same = True
    for suffix in (".jsonl", ".baselines"):
        a, b = old / f"{part}{suffix}", new / f"{part}{suffix}"
        if suffix == ".baselines" and not b.exists():
            continue  # not traced (--jobs)
        if not a.exists() or not b.exists() or a.read_bytes() != b.read_bytes():
            print(f"DIFFERENT: {part}{suffix} ({a} vs {b})")
            same = False
    return same


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--write", type=Path, default=None, help="Write this tree's outputs here, only.")
    parser.add_argument("--against", default=None, help="A git commit to compare this tree with.")
    parser.add_argument("--jobs", type=int, default=1, help="This tree's backtest in N processes.")
    args = parser.parse_args(argv)
    parts = args.only.split(",")
    if args.write:
        write(args.write, parts, args.jobs)
        return
    if not args.against:
        parser.error("--against REF or --write DIR")
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", args.against], check=True, capture_output=True, text=True
    ).stdout.strip()
    old = _run_at(sha, parts)
    new = CACHE / f"this-tree-jobs{args.jobs}"
    write(new, parts, args.jobs)
    results = {part: compare(old, new, part) for part in parts if (old / f"{part}.jsonl").exists()}
    for part, same in results.items():
        lines = (new / f"{part}.jsonl").read_text().count("\n")
        print(f"{part}: {'identical' if same else 'DIFFERENT'} ({lines} episodes) to {sha[:10]}")
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
