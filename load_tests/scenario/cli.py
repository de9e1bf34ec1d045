"""``python -m load_tests.scenario {generate,replay,summary}``: the command line.

Kept out of ``__main__.py``, which runs when imported, so :func:`main` can be imported
and called with arguments. The help text is the package docstring.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import load_tests.scenario as package
from load_tests.scenario.generate import Scenario, write_labels
from load_tests.scenario.kafka_replay import replay
from load_tests.scenario.manifest import Manifest
from load_tests.scenario.spec import DEFAULT_DAYS, DEFAULT_START, ScenarioSpec

DEFAULT_TOPIC = "crossings.events.v1"


def _spec_from_args(args: argparse.Namespace) -> ScenarioSpec:
    return ScenarioSpec(
        start=date.fromisoformat(args.start),
        days=args.days,
        seed=args.seed,
        other_scale=args.other_scale,
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        invalid_rate=args.invalid_rate,
    )


def _print_summary(manifest: Manifest, out: Any = sys.stdout) -> None:
    days = max(1, manifest.spec["days"])
    print(
        f"scenario   {manifest.spec['start']} .. {manifest.spec['end']} "
        f"({days} days, seed {manifest.spec['seed']}, other_scale "
        f"{manifest.spec['other_scale']})",
        file=out,
    )
    print(
        f"records    {manifest.total_records:,} " + " ".join(f"{k}={v:,}" for k, v in manifest.sent.items()),
        file=out,
    )
    print("invalid    " + " ".join(f"{k}={v}" for k, v in manifest.invalid_reasons.items()), file=out)
    print(f"unique     {manifest.unique_events:,} events, {manifest.unique_events / days:,.0f}/day", file=out)
    per_checkpoint: dict[tuple[str, str], int] = {}
    for (checkpoint_id, _, direction), count in manifest.expected_counts.items():
        per_checkpoint[(checkpoint_id, direction)] = per_checkpoint.get((checkpoint_id, direction), 0) + count
    print("mean events/day per checkpoint (entry / exit):", file=out)
    for checkpoint_id in manifest.spec["checkpoints"]:
        entry = per_checkpoint.get((checkpoint_id, "entry"), 0) / days
        exit_ = per_checkpoint.get((checkpoint_id, "exit"), 0) / days
        print(f"  {checkpoint_id:<14} {entry:>8,.0f} / {exit_:>8,.0f}", file=out)
    print("anomalies:", file=out)
    for anomaly in manifest.anomalies:
        print(
            f"  {anomaly.name} [{anomaly.kind}] {anomaly.checkpoint_id} "
            f"{anomaly.starts} .. {anomaly.ends}: {anomaly.description}",
            file=out,
        )


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, but for flags and options with none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def _replay_plan(spec: ScenarioSpec, records: int, broker: str, topic: str, rate: float | None) -> str:
    """What a replay is about to send and for how long, and which anomalies are in it."""
    last = spec.start.toordinal() + spec.days - 1
    window = f"{spec.start} .. {date.fromordinal(last)}, {spec.days} days"
    if rate:
        minutes, seconds = divmod(round(records / rate), 60)
        pace = f"at {rate:,.0f}/s: about {minutes} min {seconds:02d} s (Ctrl-C stops it)"
    else:
        pace = "as fast as the broker takes them (a minute or two here; --rate N paces it)"
    lines = [f"sending {records:,} records ({window}) to {topic} at {broker} {pace}"]
    anomalies = spec.anomalies or ()
    if anomalies:
        lines.append("anomalies: " + "; ".join(f"{a.name} from {a.starts}" for a in anomalies))
    else:
        lines.append(
            "anomalies: none in this window (they start on days 29, 33 and 37 of the default "
            f"{DEFAULT_DAYS}-day one): expect no alerts; --days {DEFAULT_DAYS} for all three"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m load_tests.scenario {generate,replay,summary}``."""
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.scenario",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--start",
        default=DEFAULT_START.isoformat(),
        help="first local day (the anomalies move with it: they start on days 29, 33 and 37)",
    )
    common.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help="days of traffic (~6,000 records a day; fewer than 29 have no anomaly)",
    )
    common.add_argument("--seed", type=int, default=7, help="the same seed gives the same bytes")
    common.add_argument(
        "--other-scale",
        type=float,
        default=1.0,
        help="volume multiplier for every checkpoint but zhibek-zholy",
    )
    common.add_argument("--duplicate-rate", type=float, default=0.01, help="share of events sent twice")
    common.add_argument(
        "--late-rate", type=float, default=0.01, help="share of events uploaded hours after they happened"
    )
    common.add_argument(
        "--invalid-rate", type=float, default=0.002, help="share of broken messages (dead letters)"
    )
    common.add_argument("--labels", type=Path, help="also write anomalies + ground truth JSON here")
    defaults = _ShowDefaults

    gen = commands.add_parser(
        "generate", parents=[common], help="write records as JSON lines", formatter_class=defaults
    )
    gen.add_argument("--out", type=Path, required=True, help="the JSON-lines file to write")
    rep = commands.add_parser(
        "replay",
        parents=[common],
        help="produce the scenario to Kafka",
        description="Produce the scenario to Kafka: 253,267 records with the defaults, in about a "
        "minute as fast as the broker takes them, or records / --rate seconds (8.5 minutes at "
        "500/s). It says how long before it starts.",
        formatter_class=defaults,
    )
    rep.add_argument(
        "--broker",
        default=None,
        help="Kafka bootstrap host:port (default: KAFKA_BOOTSTRAP, else 127.0.0.1:CROSSINGS_KAFKA_PORT)",
    )
    rep.add_argument("--topic", default=DEFAULT_TOPIC, help="the worker's events topic")
    rep.add_argument("--rate", type=float, help="records/s (default: as fast as possible)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    summ = commands.add_parser(
        "summary", parents=[common], help="print the manifest totals", formatter_class=defaults
    )
    summ.add_argument("--json", action="store_true", help="print the full labels JSON")

    args = parser.parse_args(argv)
    try:
        spec = _spec_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    scenario = Scenario(spec)

    if args.command == "generate":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as out:
            for record in scenario.records():
                line: dict[str, Any] = {
                    "key": record.key.decode("utf-8", "replace"),
                    "kind": record.kind,
                    "arrival_ts": round(record.arrival_ts, 3),
                    "invalid_reason": record.invalid_reason,
                }
                try:
                    line["value"] = record.value.decode("utf-8")
                except UnicodeDecodeError:
                    line["value_b64"] = base64.b64encode(record.value).decode("ascii")
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
        _print_summary(scenario.manifest, sys.stderr)
    elif args.command == "replay":
        if args.broker is None:  # where every crossings command looks
            from streams.settings import load_settings

            args.broker = load_settings().bootstrap
        records = list(scenario.records())
        print(_replay_plan(spec, len(records), args.broker, args.topic, args.rate), file=sys.stderr)
        stats = replay(
            records,
            args.broker,
            args.topic,
            rate=args.rate,
            progress=not args.no_progress,
            total=len(records),
        )
        print(
            f"sent {stats.sent:,} records in {stats.seconds:.1f}s "
            f"({stats.rate_achieved:,.0f}/s): {stats.by_kind}",
            file=sys.stderr,
        )
    else:
        for _ in scenario.records():
            pass
        if args.json:
            print(json.dumps(scenario.manifest.to_json(), indent=1))
        else:
            _print_summary(scenario.manifest)
    if args.labels:
        write_labels(args.labels, manifest=scenario.manifest)
    return 0
