"""The README's DuckDB lines for the DuckLake lake, typed as an analyst would: run verbatim
(from the folder the README assumes) against a lake a DuckLake replay wrote, they attach it,
sum the daily counts the lake's own views sum, and travel back to an earlier commit."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
from click.testing import CliRunner

from load_tests.backtest import scenario_records
from load_tests.scenario import ScenarioSpec
from streams.cli.main import cli
from streams.domain.registry import load_registry
from streams.query.lake import open_lake
from streams.settings.lake import load_lake
from streams.sinks.ducklake.commit import _install_extensions

ROOT = Path(__file__).resolve().parents[2]


def _readme_sql() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The DuckLake lake") :]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "the DuckLake section's SQL block"
    return [
        line.partition("--")[0].strip()
        for line in block.group(1).splitlines()
        if line.partition("--")[0].strip()
    ]


def test_the_readme_duckdb_lines_read_a_ducklake_lake(tmp_path, monkeypatch):
    lines = _readme_sql()
    local = [line for line in lines if "sqlite:" in line]
    assert len(local) == 1 and local[0].startswith("ATTACH 'ducklake:sqlite:.local/data/lake.sqlite'")
    daily = next(line for line in lines if "lake.daily_counts" in line)
    travel = next(line for line in lines if "AT (VERSION =>" in line)
    version = int(re.search(r"VERSION => (\d+)", travel).group(1))

    # A lake where the README assumes it: .local/data under the folder the analyst is in.
    records, _ = scenario_records(ScenarioSpec(days=8, checkpoints=("korday", "zhibek-zholy")), 2)
    history = tmp_path / "history.ndjson"
    history.write_bytes(b"".join(r.value.replace(b"\n", b" ") + b"\n" for r in records))
    monkeypatch.chdir(tmp_path)
    env = {"CROSSINGS_HOME": ".local", "CROSSINGS_LAKE": "ducklake", "CROSSINGS_PARTITIONS": "2"}
    result = CliRunner().invoke(cli, ["replay", "--file", str(history), "--jobs", "1"], env=env)
    assert result.exit_code == 0, result.output

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    _install_extensions(con)  # an analyst's own DuckDB: INSTALL ducklake; the test's: from PyPI
    con.execute(local[0])
    summed = con.execute(daily).fetchall()
    with open_lake(tmp_path / ".local" / "data", load_registry(), load_lake(env)) as views:
        expected = views.execute(
            "SELECT checkpoint_id, local_day, sum(count) FROM daily_counts GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert summed and summed == expected
    # The commits listed, and time travel to the README's: a commit that had written events,
    # fewer than the lake holds now.
    listing = next(line for line in lines if "ducklake_snapshots('lake')" in line)
    snapshots = [row[0] for row in con.execute(listing).fetchall()]
    assert version in snapshots and max(snapshots) > version
    (then,) = con.execute(travel).fetchall()[0]
    (now,) = con.execute("SELECT count(*) FROM lake.events").fetchall()[0]
    assert 0 < then < now
