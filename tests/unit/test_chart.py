"""``crossings report chart``: a lake of five quiet weeks and a surge gives a PNG that is
really drawn (opened with Pillow: size, ink, the red of days outside the band and of the
surge episode) and an HTML page with the inline SVG and the numbers; the band is the
detector's own full-day rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from test_report import make_alert, write_commit

from streams.cli.main import cli
from streams.core.effects import DailySnapshot
from streams.domain.counts import group_key
from streams.domain.detect import DetectorConfig, build_baseline, full_day_band
from streams.domain.detect.detector import assess_full_day
from streams.domain.registry import load_registry
from streams.query.chart import chart_data

CHECKPOINT = "zhibek-zholy"
START = date(2024, 2, 1)
QUIET_DAYS = 35
SURGE_DAYS = 5


def daily_total(n: int) -> int:
    if n >= QUIET_DAYS:
        return 3600 + 100 * (n - QUIET_DAYS)
    return 1500 + (150 if START.weekday() + n % 7 in (4, 5) else 0) + (n * 37) % 90


def day_rows(n: int) -> list[tuple[str, str, str, int]]:
    """Day ``n``'s counts in the lake: (direction, nationality, purpose, count)."""
    total = daily_total(n)
    return [
        ("entry", "UZB", "labour", total * 2 // 3),
        ("entry", "KAZ", "private", total - total * 2 // 3),
        ("exit", "UZB", "labour", 900 + (n * 13) % 60),
    ]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chart-lake")
    snapshots = []
    for n in range(QUIET_DAYS + SURGE_DAYS):
        day = START + timedelta(days=n)
        snapshots.append(
            DailySnapshot(CHECKPOINT, day, day_rows(n), datetime(2024, 3, 20, tzinfo=UTC).timestamp())
        )
    alerts = []
    for n, offset in enumerate(range(QUIET_DAYS, QUIET_DAYS + SURGE_DAYS)):
        day = START + timedelta(days=offset)
        alert = make_alert(n, CHECKPOINT, day, datetime.combine(day, datetime.min.time(), UTC))
        alert["episode_id"] = f"{CHECKPOINT}:entry:surge:{START + timedelta(days=QUIET_DAYS)}T10"
        alert["status"] = "resolved" if offset == QUIET_DAYS + SURGE_DAYS - 1 else "firing"
        alerts.append(alert)
    write_commit(root, 1, [], snapshots, alerts)
    return root


def test_chart_png_and_html(lake: Path, tmp_path: Path) -> None:
    png = tmp_path / "out" / "zz.png"
    result = CliRunner().invoke(
        cli,
        ["report", "chart", "--data", str(lake), "--checkpoint", CHECKPOINT, "--output", str(png)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "1 alert episode" in result.output and "episodes" not in result.output

    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1100, 680)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
    assert colours is not None
    ink = sum(count for count, rgb in colours if rgb != (255, 255, 255))
    assert ink > 0.05 * 1100 * 680  # axes, lines, band: not a blank canvas
    # days outside the band are marked red (#d62728)
    assert any(rgb == (214, 39, 40) for _, rgb in colours)

    page = Page()
    page.feed(png.with_suffix(".html").read_text())
    assert page.svg_count == 1 and page.title.startswith("Zhibek Zholy")
    series = page.tables["series"]
    assert len(series) == 2 * (QUIET_DAYS + SURGE_DAYS)  # both directions, every day
    entry = {row[0]: row for row in series if row[1] == "entry"}
    last = (START + timedelta(days=QUIET_DAYS + SURGE_DAYS - 1)).isoformat()
    assert int(entry[last][2]) == daily_total(QUIET_DAYS + SURGE_DAYS - 1)
    assert entry[START.isoformat()][3:] == ["", "", ""]  # still learning: no band
    assert float(entry[last][5]) < int(entry[last][2])  # the surge is above the band
    (episode,) = page.tables["episodes"]
    assert episode[2:6] == [
        "surge",
        (START + timedelta(days=QUIET_DAYS)).isoformat(),
        last,
        "resolved",
    ]


def test_band_is_the_detectors_full_day_rule(lake: Path) -> None:
    registry = load_registry()
    data = chart_data(lake, registry[CHECKPOINT])
    # The day profiles the detector would have had, from what the test wrote (not read
    # back from the lake by the chart's own code).
    profiles: dict = {}
    for n in range(QUIET_DAYS + SURGE_DAYS):
        for direction, nationality, purpose, count in day_rows(n):
            profile = profiles.setdefault(
                (direction, START + timedelta(days=n)), {"total": 0, "hourly": [0] * 24, "groups": {}}
            )
            profile["total"] += count
            profile["groups"][group_key(nationality, purpose)] = count
    config = DetectorConfig()
    checked = 0
    for point in data.points:
        if point.low is None:
            continue
        baseline = build_baseline(point.local_day, lambda d, p=point: profiles.get((p.direction, d)))
        assert baseline is not None
        assert full_day_band(baseline, config) == (point.low, point.high)
        # just below, inside and just above (nothing is below a low end of 0: no drop possible)
        for observed in (point.low - 1, (point.low + point.high) / 2, point.high + 1):
            if observed < 0:
                continue
            assessment = assess_full_day(
                {"total": int(observed), "hourly": [0] * 24, "groups": {}}, baseline, config
            )
            assert assessment is not None
            inside = point.low < int(observed) < point.high
            assert (assessment.kind is None) == inside, (point, observed, assessment)
            checked += 1
    assert checked > 50


def test_chart_needs_a_known_checkpoint(lake: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["report", "chart", "--data", str(lake)])
    assert missing.exit_code == 2 and "--checkpoint" in missing.output
    unknown = runner.invoke(cli, ["report", "chart", "--data", str(lake), "--checkpoint", "atlantis"])
    assert unknown.exit_code == 2 and "atlantis" in unknown.output


class Page(HTMLParser):
    """The title, how many <svg> elements, and each table's body rows as cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.svg_count = 0
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._in_title = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "svg":
            self.svg_count += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "table":
            self._table = dict(attrs).get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._table or ""].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
