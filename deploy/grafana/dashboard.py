"""The crossings Grafana dashboard, built with grafana-foundation-sdk (Grafana 11.6 schema).

    .venv/bin/python deploy/grafana/dashboard.py          # rewrite dashboards/crossings.json
    .venv/bin/python deploy/grafana/dashboard.py --check  # exit 1 if the JSON is not this code's

Written in Python rather than by hand so that its structure is the SDK's typed models
(a misspelt option is an error here, not a panel Grafana silently ignores), and so that a
test can hold the committed JSON equal to what this builds. Queries read the recording
rules of deploy/prometheus/rules/recording.yml where one exists; tests/integration/
test_dashboard.py runs every one of them against a real Prometheus scraping a worker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "crossings.json"

#: Every panel and variable reads the Prometheus the user picks (datasource variable).
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Label matchers the checkpoint and direction variables put on every per-checkpoint query.
SELECTED = 'checkpoint=~"$checkpoint", direction=~"$direction"'

WIDTH = 24


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    return target.instant() if instant else target.range()


class Layout:
    """Panels left to right, wrapping into rows of the grid (24 columns)."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> dashboard.Row:
        self.newline()
        row = dashboard.Row(title).grid_pos(GridPos(h=1, w=WIDTH, x=0, y=self.y))
        self.y += 1
        return row

    def place(self, width: int, height: int) -> GridPos:
        if self.x + width > WIDTH:
            self.newline()
        pos = GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0


def variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
    board = board.with_variable(
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    )
    for name, label in (("checkpoint", "Checkpoint"), ("direction", "Direction")):
        board = board.with_variable(
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(f"label_values(crossings_today_crossings, {name})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return board


def traffic(board: dashboard.Dashboard, layout: Layout) -> dashboard.Dashboard:
    board = board.with_row(layout.row("Traffic against its expected band"))
    band = (
        timeseries.Panel()
        .title("$checkpoint: running day against its expected band")
        .description(
            "Crossings so far on the checkpoint's local day at each hourly evaluation, and the "
            "range the detector calls normal by then: at or above the upper bound the running day "
            "is a surge, at or below the lower one a drop (once 100 crossings are expected). "
            "Red markers: open surge/drop episodes."
        )
        .datasource(DATASOURCE)
        .repeat("checkpoint")
        .max_per_row(2)
        .unit("short")
        .min(0)
        .with_target(query(f"crossings_band_observed{{{SELECTED}}}", "{{direction}} observed", "A"))
        .with_target(query(f"crossings_band_expected{{{SELECTED}}}", "{{direction}} expected", "B"))
        .with_target(query(f"crossings_band_lower{{{SELECTED}}}", "{{direction}} lower", "C"))
        .with_target(query(f"crossings_band_upper{{{SELECTED}}}", "{{direction}} upper", "D"))
        .grid_pos(layout.place(12, 9))
    )
    board = board.with_panel(band)
    layout.newline()
    board = board.with_panel(
        timeseries.Panel()
        .title("Crossings counted per second")
        .description("Valid, first-seen crossings, by checkpoint and direction (counted at each commit).")
        .datasource(DATASOURCE)
        .unit("reqps")
        .with_target(
            query(
                f"checkpoint_direction:crossings_events_processed:rate5m{{{SELECTED}}}",
                "{{checkpoint}} {{direction}}",
            )
        )
        .grid_pos(layout.place(12, 8))
    )
    board = board.with_panel(
        table.Panel()
        .title("Today so far")
        .description("Crossings on each checkpoint's current local day (stream time).")
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"sum by (checkpoint, direction) (crossings_today_crossings{{{SELECTED}}})",
                "{{checkpoint}} {{direction}}",
                instant=True,
            )
        )
        .grid_pos(layout.place(12, 8))
    )
    return board


def movers(board: dashboard.Dashboard, layout: Layout) -> dashboard.Dashboard:
    board = board.with_row(layout.row("Top movers"))
    ratio = f"checkpoint_direction:crossings_band:ratio{{{SELECTED}}}"
    board = board.with_panel(
        bargauge.Panel()
        .title("Furthest above expected (observed / expected)")
        .description("The running day's ratio to its baseline at the last evaluation: 1 is as expected.")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(query(f"topk(5, {ratio})", "{{checkpoint}} {{direction}}", instant=True))
        .grid_pos(layout.place(9, 8))
    )
    board = board.with_panel(
        bargauge.Panel()
        .title("Furthest below expected (observed / expected)")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(query(f"bottomk(5, {ratio})", "{{checkpoint}} {{direction}}", instant=True))
        .grid_pos(layout.place(9, 8))
    )
    board = board.with_panel(
        stat.Panel()
        .title("Open episodes")
        .description("Surge and drop episodes open now (the detector's; delivered by crossings notify).")
        .datasource(DATASOURCE)
        .with_target(query("sum(crossings_alerts_open) or vector(0)", "open", instant=True))
        .grid_pos(layout.place(6, 8))
    )
    return board


def pipeline(board: dashboard.Dashboard, layout: Layout) -> dashboard.Dashboard:
    board = board.with_row(layout.row("Pipeline: lag, latency, dead letters, state"))
    panels = [
        timeseries.Panel()
        .title("Consumer lag per partition")
        .description("Messages of the events topic not applied yet (high watermark minus applied offset).")
        .unit("short")
        .with_target(query("partition:crossings_consumer_lag_messages:sum", "partition {{partition}}")),
        timeseries.Panel()
        .title("End-to-end latency")
        .description("From a record's arrival in Kafka to its commit (Parquet, transaction, state).")
        .unit("s")
        .with_target(query("job:crossings_arrival_to_processed_seconds:p50_5m", "p50", "A"))
        .with_target(query("job:crossings_arrival_to_processed_seconds:p95_5m", "p95", "B"))
        .with_target(query("job:crossings_arrival_to_processed_seconds:p99_5m", "p99", "C")),
        timeseries.Panel()
        .title("Dead letters by reason")
        .description("Events sent to the dead-letter topic per second; the header says why.")
        .unit("reqps")
        .with_target(query("reason:crossings_events_invalid:rate5m", "{{reason}}")),
        timeseries.Panel()
        .title("Events handled and duplicates")
        .unit("reqps")
        .with_target(query("job:crossings_events_handled:rate5m", "handled", "A"))
        .with_target(query("sum(rate(crossings_events_duplicate_total[5m]))", "duplicates", "B")),
        timeseries.Panel()
        .title("Commit duration (p95) and failures")
        .description("One partition's commit: Parquet files, Kafka transaction, local state.")
        .unit("s")
        .with_target(
            query(
                "histogram_quantile(0.95, sum by (le) (rate(crossings_commit_seconds_bucket[5m])))",
                "p95 commit",
                "A",
            )
        )
        .with_target(query("sum(increase(crossings_commit_failures_total[5m]))", "failures / 5m", "B")),
        timeseries.Panel()
        .title("Event time behind the wall clock")
        .description("Now minus each partition's newest event time: large during replays and backlogs.")
        .unit("s")
        .with_target(
            query("time() - max by (partition) (crossings_stream_time_seconds)", "partition {{partition}}")
        ),
        timeseries.Panel()
        .title("State restore")
        .description(
            "Changelog records still to read while a partition opens (0 once open), "
            "and read in the last hour."
        )
        .unit("short")
        .with_target(
            query(
                "max by (partition) (crossings_state_restore_remaining_records)", "{{partition}} to read", "A"
            )
        )
        .with_target(
            query(
                "sum by (partition) (increase(crossings_state_restored_records_total[1h]))",
                "{{partition}} read / 1h",
                "B",
            )
        ),
        stat.Panel()
        .title("Workers up")
        .with_target(query('sum(up{job="crossings-worker"})', "up", instant=True)),
    ]
    for panel in panels:
        board = board.with_panel(panel.datasource(DATASOURCE).grid_pos(layout.place(8, 8)))
    return board


def delivery(board: dashboard.Dashboard, layout: Layout) -> dashboard.Dashboard:
    """Metrics of ``crossings notify`` (its own process): empty until it runs."""
    board = board.with_row(layout.row("Delivery (crossings notify)"))
    panels = [
        timeseries.Panel()
        .title("Deliveries by outcome")
        .description(
            "delivered, rejected (4xx), gave_up or malformed (not an alert), per receiver kind: "
            "the last three are dead-lettered."
        )
        .unit("reqps")
        .with_target(query("sink_outcome:crossings_notify_deliveries:rate5m", "{{sink}} {{outcome}}")),
        timeseries.Panel()
        .title("Delivery retries")
        .unit("reqps")
        .with_target(
            query(
                "sum by (sink, target) (rate(crossings_notify_retries_total[5m]))",
                "{{sink}} {{target}}",
            )
        ),
        timeseries.Panel()
        .title("Delivery latency (p95)")
        .description("From a message's first attempt to its delivery, retries included.")
        .unit("s")
        .with_target(
            query(
                "histogram_quantile(0.95, sum by (sink, le) "
                "(rate(crossings_notify_delivery_seconds_bucket[5m])))",
                "{{sink}}",
            )
        ),
    ]
    for panel in panels:
        board = board.with_panel(panel.datasource(DATASOURCE).grid_pos(layout.place(8, 8)))
    return board


def annotations(board: dashboard.Dashboard) -> dashboard.Dashboard:
    return board.annotation(
        dashboard.AnnotationQuery()
        .name("Surge/drop episodes")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr('max by (checkpoint, direction, kind) (crossings_alerts_open{checkpoint=~"$checkpoint"}) > 0')
    ).annotation(
        dashboard.AnnotationQuery()
        .name("Pipeline alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        .expr('ALERTS{alertname=~"Crossings.*", alertstate="firing"}')
    )


def build() -> dict:
    """The dashboard as Grafana's JSON model (a dict)."""
    layout = Layout()
    board = (
        dashboard.Dashboard("Crossings")
        .uid("crossings")
        .description("Border crossings against their expected band, and the pipeline that counts them.")
        .tags(["crossings"])
        .editable()
        .refresh("30s")
        .time("now-24h", "now")
        .timezone("browser")
    )
    board = variables(board)
    board = annotations(board)
    for section in (traffic, movers, pipeline, delivery):
        board = section(board, layout)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is not what {__file__} builds: run it without --check", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
