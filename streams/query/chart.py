"""``crossings report chart``: one checkpoint's daily series, its expected band and its
alert episodes, as a PNG and a self-contained HTML page.

The band is the detector's own: each day's baseline is built by ``build_baseline`` from the
lake's earlier daily counts (the same profiles the worker keeps, rebuilt from
``daily_counts``), and ``full_day_band`` turns it into the range of whole-day totals the
detector calls normal. Days before the baseline has enough history have no band. Episodes
come from the ``alerts`` folder: from the local day of an episode's first message to that
of its last. The figure is drawn with matplotlib's object API (no pyplot, no display);
the HTML page inlines the same figure as SVG, with the numbers as a table, so it opens
offline and can be mailed as one file.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from streams.domain.counts import HOURS, DayProfile, group_key
from streams.domain.detect import POST_DIRECTION, DetectorConfig, build_baseline, full_day_band
from streams.domain.registry import Checkpoint
from streams.query.reports import alerts as alert_rows
from streams.query.scan import FILTER, SCAN, DayLike, _as_day, fetch_rows
from streams.sinks.parquet.layout import DAILY_COUNTS

DIRECTIONS = ("entry", "exit")
COLOURS = {"surge": "#d62728", "drop": "#1f77b4"}

_GROUPS_SQL = f"""
SELECT date AS local_day, direction, nationality, purpose, sum(count)::BIGINT AS n
FROM {SCAN}
WHERE {FILTER}
GROUP BY ALL
"""


@dataclass(frozen=True)
class DayPoint:
    local_day: date
    direction: str
    observed: int
    expected: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class EpisodeSpan:
    episode_id: str
    direction: str
    kind: str
    first_day: date
    last_day: date
    resolved: bool
    peak_ratio: float


@dataclass(frozen=True)
class ChartData:
    checkpoint: Checkpoint
    points: list[DayPoint]
    episodes: list[EpisodeSpan]


def chart_data(root: Path, checkpoint: Checkpoint, since: DayLike = None, until: DayLike = None) -> ChartData:
    """The series, band and episodes for ``checkpoint`` between ``since`` and ``until``."""
    first, last = _as_day("since", since), _as_day("until", until)
    profiles = _profiles(root, checkpoint.checkpoint_id)
    days = sorted({day for _, day in profiles})
    if not days:
        return ChartData(checkpoint, [], [])
    first = max(first or days[0], days[0])
    last = min(last or days[-1], days[-1])
    config = DetectorConfig()
    points = []
    for direction in DIRECTIONS:
        if not any(d == direction for d, _ in profiles):
            continue
        day = first
        while day <= last:
            baseline = build_baseline(day, lambda d, direction=direction: profiles.get((direction, d)))
            band = full_day_band(baseline, config) if baseline else None
            observed = profiles.get((direction, day), {"total": 0})["total"]
            points.append(
                DayPoint(
                    day,
                    direction,
                    observed,
                    baseline.expected_day if band else None,
                    band[0] if band else None,
                    band[1] if band else None,
                )
            )
            day += timedelta(days=1)
    return ChartData(checkpoint, points, _episodes(root, checkpoint.checkpoint_id, first, last))


def _profiles(root: Path, checkpoint_id: str) -> dict[tuple[str, date], DayProfile]:
    """Day profiles per (direction, local day), rebuilt from the daily-count snapshots.
    Hourly buckets are not in ``daily_counts``; the full-day band does not use them."""
    profiles: dict[tuple[str, date], DayProfile] = {}
    for row in fetch_rows(_GROUPS_SQL, root, DAILY_COUNTS, checkpoint_id, None, None):
        key = (row["direction"], row["local_day"])
        profile = profiles.setdefault(key, {"total": 0, "hourly": [0] * HOURS, "groups": {}})
        profile["total"] += row["n"]
        group = group_key(row["nationality"], row["purpose"])
        profile["groups"][group] = profile["groups"].get(group, 0) + row["n"]
    return profiles


def _episodes(root: Path, checkpoint_id: str, first: date, last: date) -> list[EpisodeSpan]:
    by_episode: dict[str, list[dict]] = defaultdict(list)
    for row in alert_rows(root, checkpoint=checkpoint_id):
        by_episode[row["episode_id"]].append(row)
    spans = []
    for episode_id, rows in sorted(by_episode.items()):
        days = [row["local_day"] for row in rows]
        span = EpisodeSpan(
            episode_id=episode_id,
            direction=rows[0]["direction"],
            kind=rows[0]["kind"],
            first_day=min(days),
            last_day=max(days),
            resolved=any(row["status"] == "resolved" for row in rows),
            peak_ratio=max(row["ratio"] for row in rows),
        )
        if span.last_day >= first and span.first_day <= last:
            spans.append(span)
    return spans


def figure(data: ChartData) -> Figure:
    """One panel per direction: observed totals, the expected band, episodes shaded."""
    directions = [d for d in DIRECTIONS if any(p.direction == d for p in data.points)] or ["entry"]
    fig = Figure(figsize=(11, 3.4 * len(directions)), dpi=100, layout="constrained")
    axes = fig.subplots(len(directions), 1, squeeze=False, sharex=True)[:, 0]
    for ax, direction in zip(axes, directions, strict=True):
        points = [p for p in data.points if p.direction == direction]
        days = [p.local_day for p in points]
        banded = [p for p in points if p.low is not None]
        if banded:
            ax.fill_between(
                [p.local_day for p in banded],
                [p.low for p in banded],
                [p.high for p in banded],
                color="#999999",
                alpha=0.25,
                step="mid",
                label="expected band",
            )
            ax.plot(
                [p.local_day for p in banded],
                [p.expected for p in banded],
                color="#555555",
                linestyle="--",
                linewidth=1,
                label="expected",
            )
        ax.plot(
            days, [p.observed for p in points], color="black", linewidth=1.6, marker=".", label="observed"
        )
        outside = [p for p in banded if not p.low <= p.observed <= p.high]  # type: ignore[operator]
        if outside:
            ax.scatter(
                [p.local_day for p in outside], [p.observed for p in outside], color="#d62728", zorder=3, s=18
            )
        for span in data.episodes:
            # A post-level episode (direction both: the post stopped reporting) is shaded on
            # both panels, and says so.
            if span.direction not in (direction, POST_DIRECTION):
                continue
            post = " (post: both directions)" if span.direction == POST_DIRECTION else ""
            ax.axvspan(
                span.first_day - timedelta(hours=12),
                span.last_day + timedelta(hours=12),
                color=COLOURS.get(span.kind, "#ff7f0e"),
                alpha=0.15,
                hatch="//" if post else None,
                label=f"{span.kind} episode{post}",
            )
        ax.set_title(f"{data.checkpoint.name}: {direction}", loc="left", fontsize=11)
        ax.set_ylabel("crossings per local day")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8)
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if not data.points:
        axes[0].text(0.5, 0.5, "no daily counts in the lake", ha="center", transform=axes[0].transAxes)
    return fig


def write_chart(data: ChartData, png: Path) -> tuple[Path, Path]:
    """Write ``png`` and an HTML page beside it (same name, ``.html``); returns both."""
    fig = figure(data)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    page = png.with_suffix(".html")
    page.write_text(_html(data, svg.getvalue()), encoding="utf-8")
    return png, page


def _html(data: ChartData, svg: str) -> str:
    name = html.escape(data.checkpoint.name)
    svg = svg[svg.index("<svg") :]  # drop the XML prologue and doctype: inline SVG
    rows = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            p.local_day.isoformat(),
            p.direction,
            p.observed,
            "" if p.expected is None else f"{p.expected:.0f}",
            "" if p.low is None else f"{p.low:.0f}",
            "" if p.high is None else f"{p.high:.0f}",
        )
        for p in data.points
    )
    episodes = "\n".join(
        f"<tr><td>{html.escape(s.episode_id)}</td><td>{s.direction}</td><td>{s.kind}</td>"
        f"<td>{s.first_day}</td><td>{s.last_day}</td><td>{'resolved' if s.resolved else 'open'}</td>"
        f"<td>{s.peak_ratio:.2f}</td></tr>"
        for s in data.episodes
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{name}: daily crossings</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head>
<body>
<h1>{name} ({html.escape(data.checkpoint.checkpoint_id)}): crossings per local day</h1>
<p>Grey: the range of whole-day totals the detector calls normal (its baseline from the
same weekday in the four weeks before; none while it is still learning). Shaded: alert
episodes (red surge, blue drop). Red dots: days outside the band.</p>
<figure id="chart">{svg}</figure>
<h2>Alert episodes</h2>
<table id="episodes"><thead><tr><th>episode</th><th>direction</th><th>kind</th><th>first day</th>
<th>last day</th><th>status</th><th>peak ratio</th></tr></thead><tbody>
{episodes}
</tbody></table>
<h2>Daily series</h2>
<table id="series"><thead><tr><th>local day</th><th>direction</th><th>observed</th><th>expected</th>
<th>low</th><th>high</th></tr></thead><tbody>
{rows}
</tbody></table>
</body></html>
"""
