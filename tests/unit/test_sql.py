"""``crossings sql``: the shipped views over a lake written by the sink, every output format,
read-only refusals, an empty lake, and the README documenting every column of every view."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_report import history  # noqa: F401  (the module fixture: a lake of 3,000 events)

from streams.cli.main import cli
from streams.domain.registry import load_registry
from streams.query.lake import VIEWS, open_lake, query

ROOT = Path(__file__).resolve().parents[2]


def run_sql(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sql", "--data", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_views_match_what_the_sink_wrote(history: tuple) -> None:  # noqa: F811
    root, events, alerts = history
    registry = load_registry()
    with open_lake(root, registry) as connection:
        per_day = query(
            connection,
            "SELECT local_day, checkpoint_id, count(*) AS n FROM events GROUP BY ALL",
        ).to_pylist()
        counted = query(connection, "SELECT sum(count) AS n FROM daily_counts").to_pylist()
        alert_ids = query(connection, "SELECT alert_id FROM alerts ORDER BY alert_id").column(0).to_pylist()
        names = query(
            connection,
            "SELECT DISTINCT e.checkpoint_id, c.name FROM events e JOIN checkpoints c USING (checkpoint_id)",
        ).to_pylist()
        checkpoints = query(connection, "SELECT count(*) AS n FROM checkpoints").to_pylist()
    expected = Counter((row.local_day, row.checkpoint_id) for row in events)
    assert {(r["local_day"], r["checkpoint_id"]): r["n"] for r in per_day} == expected
    assert counted == [{"n": len(events)}]
    assert alert_ids == sorted(a["alert_id"] for a in alerts)
    assert {r["checkpoint_id"]: r["name"] for r in names} == {
        cid: registry[cid].name for cid in {row.checkpoint_id for row in events}
    }
    assert checkpoints == [{"n": len(registry)}]


def test_every_output_format(history: tuple, tmp_path: Path) -> None:  # noqa: F811
    root, events, _ = history
    statement = "SELECT checkpoint_id, count(*) AS n FROM events GROUP BY ALL ORDER BY checkpoint_id"
    expected = sorted(Counter(row.checkpoint_id for row in events).items())

    code, table = run_sql(root, statement)
    assert code == 0
    assert table.splitlines()[0].split() == ["checkpoint_id", "n"]
    assert [line.split()[0] for line in table.splitlines()[2:]] == [cid for cid, _ in expected]

    code, text = run_sql(root, statement, "--format", "csv")
    assert code == 0
    assert [(r["checkpoint_id"], int(r["n"])) for r in csv.DictReader(io.StringIO(text))] == expected

    code, text = run_sql(root, statement, "--format", "json")
    assert code == 0
    assert [(r["checkpoint_id"], r["n"]) for r in json.loads(text)] == expected

    out = tmp_path / "out.parquet"
    code, _ = run_sql(root, statement, "--format", "parquet", "--output", str(out))
    assert code == 0
    assert [(r["checkpoint_id"], r["n"]) for r in pq.read_table(out).to_pylist()] == expected

    from_stdin = CliRunner().invoke(
        cli, ["sql", "--data", str(root), "--format", "json", "-"], input="SELECT count(*) AS n FROM events"
    )
    assert from_stdin.exit_code == 0 and json.loads(from_stdin.output) == [{"n": len(events)}]

    out_csv = tmp_path / "out.csv"
    code, _ = run_sql(root, statement, "--format", "csv", "--output", str(out_csv))
    assert code == 0 and out_csv.read_text().startswith("checkpoint_id,n\n")


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("COPY (SELECT 1) TO 'x.csv'", "only SELECT"),
        ("CREATE TABLE t AS SELECT 1", "only SELECT"),
        ("ATTACH 'other.db'", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("SELECT nope FROM events", "Binder Error"),
        ("SELEC 1", "Parser Error"),
    ],
)
def test_refused_or_bad_queries_fail_with_the_reason(
    history: tuple,  # noqa: F811
    tmp_path: Path,
    statement: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _, _ = history
    monkeypatch.chdir(tmp_path)
    code, output = run_sql(root, statement)
    assert code == 1
    assert message in output
    assert not list(tmp_path.iterdir())  # nothing written


def test_parquet_needs_an_output_file(history: tuple) -> None:  # noqa: F811
    code, output = run_sql(history[0], "SELECT 1", "--format", "parquet")
    assert code == 2 and "--output" in output


def test_an_empty_lake_has_every_view_with_its_columns(tmp_path: Path) -> None:
    with open_lake(tmp_path / "nothing-yet", load_registry()) as connection:
        for view in ("events", "daily_counts", "alerts"):
            assert query(connection, f"SELECT count(*) AS n FROM {view}").to_pylist() == [{"n": 0}]
        columns = query(connection, "SELECT * FROM alerts").column_names
    assert columns[:2] == ["local_day", "checkpoint_id"] and "drivers_json" in columns


def test_readme_documents_every_column_of_every_view(history: tuple) -> None:  # noqa: F811
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The lake's schema", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    current = None
    for line in section.splitlines():
        heading = re.match(r"^### `(\w+)`", line)
        if heading:
            current = documented.setdefault(heading.group(1), set())
        cell = re.match(r"^\| `(\w+)` \|", line)
        if cell and current is not None:
            current.add(cell.group(1))
    with open_lake(history[0], load_registry()) as connection:
        for view in VIEWS:
            columns = set(query(connection, f"SELECT * FROM {view} LIMIT 0").column_names)
            assert documented.get(view) == columns, view
