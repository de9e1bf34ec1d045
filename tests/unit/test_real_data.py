"""The real data sets of load_tests/data (issue 17, item 6): the committed files load as
their SOURCE.md says, labels resolve, and the one scoring counts found, settling and
false alarms as its docstring says."""

import csv
import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from load_tests import real_data
from streams.backtest import Columns, EpisodeRow, build_series


def test_each_set_has_its_files_and_loads():
    expected = {"hk_immd": 32, "akl_pedestrians": 21, "dc_bikeshare": 1}
    assert set(real_data.SETS) == set(expected)
    for name, series in expected.items():
        folder = real_data.SETS[name].folder
        assert (folder / "SOURCE.md").read_text().count("Licence") >= 1
        data, labels, _ = real_data.load(name)
        assert data.granularity == "day"
        assert len(data.series) == series
        assert labels and {label.checkpoint for label in labels} <= {c for c, _ in data.series}


def test_hong_kong_directions_and_groups_are_the_detectors():
    data, _, _ = real_data.load("hk_immd")
    assert {d for _, d in data.series} == {"entry", "exit"}
    lo_wu = data.series[("lo-wu", "entry")]
    # 2023-02-06, Lo Wu's reopening: 30,319 arrivals in the source (all three groups)
    hours = lo_wu.cells[date(2023, 2, 6)]
    assert sum(sum(b.values()) for b in hours) == 30319
    groups = {g.split("|")[0] for b in hours for g in b}
    assert groups == {"hk_residents", "mainland_visitors", "other_visitors"}
    # the source's 2026 spelling is the same post
    assert ("macao-ferry-terminal", "entry") not in data.series
    assert data.series[("macau-ferry-terminal", "entry")].last.date() == date(2026, 3, 7)  # 3-08 local


def test_a_star_label_goes_to_the_posts_that_carried_traffic_the_week_before():
    _, labels, _ = real_data.load("hk_immd")
    talim = {label.checkpoint for label in labels if "Talim" in label.name}
    assert {"lo-wu", "airport", "shenzhen-bay"} <= talim
    assert not {"hung-hom", "sha-tau-kok"} & talim  # zero every day
    first = min(label.start for label in labels if "Talim" in label.name)
    assert first == datetime(2023, 7, 16, 16, tzinfo=UTC)  # local midnight of 17 July


def _row(checkpoint: str, kind: str, opened: datetime, cause: str = "level") -> EpisodeRow:
    return EpisodeRow(
        checkpoint=checkpoint,
        direction="all",
        kind=kind,
        start=opened.date().isoformat(),
        end=opened.date().isoformat(),
        observed=0,
        expected=0.0,
        ratio=0.0,
        score=0.0,
        window="day",
        cause=cause,
        drivers="",
        summary="",
        opened_at=opened,
        resolved_at=opened + timedelta(days=1),
    )


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> real_data.RealSet:
    """Two posts, 2024-01-01 .. 2024-12-31 at 100 a day (UTC); a 3-day closure labelled at A."""
    folder = tmp_path / "toy"
    folder.mkdir()
    with gzip.open(folder / "daily.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "count"])
        for i in range(366):
            day = (date(2024, 1, 1) + timedelta(days=i)).isoformat()
            writer.writerow([day, "a", 100])
            writer.writerow([day, "b", 0 if i < 200 else 100])
    (folder / "labels.csv").write_text(
        "date,end,checkpoint,direction,kind,name,source\n2024-03-01,2024-03-03,*,,drop,closure,test\n"
    )
    spec = real_data.RealSet("toy", "toy", "UTC", (), ((date(2024, 2, 1), date(2024, 4, 30)),))
    monkeypatch.setattr(real_data, "DATA", tmp_path)
    monkeypatch.setitem(real_data.SETS, "toy", spec)
    return spec


def test_the_scoring_counts_found_settling_rebounds_and_alarms(toy):
    data, labels, spec = real_data.load("toy")
    assert [label.checkpoint for label in labels] == ["a"]  # b carried nothing before 2024-03-01
    assert labels[0].end == datetime(2024, 3, 4, tzinfo=UTC) + real_data.SETTLE
    run = real_data.scorer(data, labels, spec)
    day = datetime(2024, 3, 1, tzinfo=UTC)
    found = run(
        [
            _row("a", "drop", day + timedelta(days=1)),  # finds the label, 24 h late
            _row("a", "surge", day + timedelta(days=4)),  # the rebound: neither found nor false
            _row("a", "drop", day + timedelta(days=20)),  # after settling: an alarm
            _row("a", "surge", day + timedelta(days=25), cause="group"),  # a group alarm
            _row("b", "surge", day),  # b: an alarm (no label there)
            _row("a", "drop", day + timedelta(days=70)),  # outside the quiet window
        ]
    )
    assert found["recall"] == "1/1"
    assert found["median_delay_h"] == 24.0
    assert found["rebound_surges"] == "1/1"
    assert found["alarms"] == 3 and found["group_alarms"] == 1
    # one series carried traffic in the quiet window (b is at zero until July): 3 / 1 / 90 * 90
    assert found["alarms_per_series_90d"] == 3.0
    assert found["by_event"] == {"closure": "1/1"}
    assert run([_row("a", "surge", day)])["recall"] == "0/1"  # a surge does not find a drop


def test_a_label_naming_an_unknown_series_is_an_error(toy):
    (real_data.DATA / "toy" / "labels.csv").write_text(
        "date,end,checkpoint,direction,kind,name,source\n2024-03-01,,nowhere,,drop,x,test\n"
    )
    with pytest.raises(ValueError, match="nowhere"):
        real_data.load("toy")


def test_derive_hong_kong_checks_the_total_and_merges_the_renamed_post(tmp_path):
    raw = tmp_path / "raw.csv"
    header = (
        "\ufeffDate,Control Point,Arrival / Departure,"
        "Hong Kong Residents,Mainland Visitors,Other Visitors,Total,\n"
    )
    raw.write_text(
        header
        + "31-12-2025,Macau Ferry Terminal,Arrival,1,2,3,6,\n"
        + "01-01-2026,Macao Ferry Terminal,Arrival,4,5,6,15,\n",
        encoding="utf-8",
    )
    assert real_data.derive_hk_immd(raw, tmp_path / "out") == 2
    rows = list(real_data.daily_rows(tmp_path / "out" / "daily.csv.gz"))
    data = build_series(rows, "date", Columns(), {})
    assert list(data.series) == [("macau-ferry-terminal", "entry")]
    raw.write_text(header + "01-01-2026,Lo Wu,Departure,1,1,1,4,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Total"):
        real_data.derive_hk_immd(raw, tmp_path / "out")


def test_derive_auckland_sums_the_reported_hours(tmp_path):
    raw = tmp_path / "hourly.csv"
    raw.write_text(
        "date,hour,year,1 Courthouse Lane,107 Quay Street\n"
        "2019-01-01,0:00-0:59,2019,4.0,\n"
        "2019-01-01,1:00-1:59,2019,6.0,\n"
        "2019-01-02,0:00-0:59,2019,,3.0\n"
    )
    assert real_data.derive_akl_pedestrians(raw, tmp_path / "out") == 2
    with gzip.open(tmp_path / "out" / "daily.csv.gz", "rt") as handle:
        assert handle.read().splitlines() == [
            "date,checkpoint,count",
            "2019-01-01,1-courthouse-lane,10",
            "2019-01-02,107-quay-street,3",
        ]


def test_the_peers_table_shows_each_events_labels_found_per_detector():
    from load_tests.evaluate_peers import table

    row = {"recall": "1/2", "median_delay_h": 0.0, "alarms_per_series_90d": 1.5, "alarms": 3}
    results = {
        "ours": {**row, "by_event": {"storm": "1/1", "reopening": "0/1"}},
        "EARS C1": {**row, "by_event": {"storm": "0/1", "reopening": "1/1"}},
        "_series": 2,
    }
    text = table("toy", results)
    assert "| ours | 1/2 | 0.0 | 1.5 | 3 |" in text  # by_event is not a column
    assert "| event (labels found) | ours | EARS C1 |" in text
    assert "| storm | 1/1 | 0/1 |" in text and "| reopening | 0/1 | 1/1 |" in text
