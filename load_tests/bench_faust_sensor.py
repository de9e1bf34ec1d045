"""What Faust's Prometheus sensor would cost the worker, per event.

    python -m load_tests.bench_faust_sensor [--events 200000] [--rounds 7] [--worker-rate 4700]

Faust always runs its base ``Monitor``; ``faust.sensors.prometheus.PrometheusMonitor``
is a subclass that also updates ~10 Prometheus series in the per-event hooks
(``on_message_in``, ``on_stream_event_in``, ``on_stream_event_out``, ``on_message_out``)
which Faust calls for every record the worker's ``take_events`` stream reads. This calls
those four hooks for real Faust messages and a real Faust stream, interleaved rounds of
each monitor, and prints the extra time per event (median of the rounds) and what it
makes of the worker's events/s measured by ``make perf`` (``--worker-rate``):
``1 / (1 / rate + extra)``. The per-commit and per-rebalance hooks (commit latency,
offsets, rebalances) run a few times a second and are left out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faust
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from faust.types.tuples import Message
from prometheus_client import CollectorRegistry


class _AgentTask:
    """Stands for the asyncio task of the agent that owns a stream."""


def per_event_seconds(monitor: Monitor, stream: faust.Stream, events: int) -> float:
    tps = [TP("crossings.events.v1", p) for p in range(4)]
    messages = [
        Message(tp.topic, tp.partition, i, 0.0, 0, {}, b"k", b"v", None, tp=tp)
        for i, tp in zip(range(1000), tps * 250, strict=True)
    ]
    started = time.perf_counter()
    for i in range(events):
        message = messages[i % 1000]
        tp, offset = message.tp, message.offset
        monitor.on_message_in(tp, offset, message)
        state = monitor.on_stream_event_in(tp, offset, stream, None)
        monitor.on_stream_event_out(tp, offset, stream, None, state)
        monitor.on_message_out(tp, offset, message)
    return (time.perf_counter() - started) / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--worker-rate", type=float, default=4700.0, help="the worker's events/s without the sensor"
    )
    args = parser.parse_args()
    app = faust.App("bench-sensor", broker="kafka://127.0.0.1:1")
    stream = app.stream(app.topic("crossings.events.v1"))
    stream.task_owner = _AgentTask()  # as an agent's stream has (the monitors key by it)
    base = Monitor()
    prometheus = PrometheusMonitor(FaustMetrics.create(CollectorRegistry(), "crossings_faust"))
    timings: dict[str, list[float]] = {"base": [], "prometheus": []}
    for _ in range(args.rounds):
        timings["base"].append(per_event_seconds(base, stream, args.events))
        timings["prometheus"].append(per_event_seconds(prometheus, stream, args.events))
    base_s, prom_s = (statistics.median(timings[k]) for k in ("base", "prometheus"))
    extra = prom_s - base_s
    with_sensor = 1.0 / (1.0 / args.worker_rate + extra)
    print(f"base Monitor:        {base_s * 1e6:6.2f} us/event (median of {args.rounds} rounds)")
    print(f"PrometheusMonitor:   {prom_s * 1e6:6.2f} us/event")
    print(f"extra per event:     {extra * 1e6:6.2f} us")
    print(
        f"worker at {args.worker_rate:,.0f} events/s ({1e6 / args.worker_rate:.0f} us/event) "
        f"-> {with_sensor:,.0f} events/s with the sensor ({(with_sensor / args.worker_rate - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    main()
