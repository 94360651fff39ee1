"""Pickup latency: from an external task's creation to its handler starting, in an idle fleet with long polling.

How
    Starts its own engine (the fleet's jar on H2, as ``throughput.py`` does; ``--engine-url`` uses a
    running one), deploys the one-task process, and runs a :class:`workers.harness.TaskLoop` with the
    default worker settings (long poll ``MLC_WORKER_ASYNC_RESPONSE_TIMEOUT_MS`` = 20 s) in this process.
    After ``--warmup`` untimed tasks it creates ``--tasks`` tasks one at a time, each after the
    previous one was handled and a pause of ``--gap`` seconds (0.2), so the loop is idle, waiting in its
    long poll, when each task is created. The latency of a task runs from just before the REST call
    that starts its process instance (the task is created inside that call's transaction) to the
    first line of its handler, on one clock; so it includes the start call itself.

Output
    One JSON line on stdout: ``{"tasks": .., "p50_ms": .., "p90_ms": .., "p99_ms": .., "max_ms": ..,
    "start_call_p50_ms": ..}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput import PROCESS_KEY, deploy, own_engine, quiet_logging, unique_topic  # noqa: E402
from workers.config import EngineSettings, WorkerSettings  # noqa: E402
from workers.engine.client import EngineClient  # noqa: E402
from workers.harness import TaskContext, TaskInput, TaskLoop, TaskOutput, Topic  # noqa: E402


class NoInput(TaskInput):
    pass


class NoOutput(TaskOutput):
    pass


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(settings: EngineSettings, tasks: int, warmup: int, gap_s: float) -> dict[str, float | int]:
    started_at: dict[str, float] = {}
    handled = threading.Condition()

    def record(data: NoInput, task: TaskContext) -> NoOutput:
        now = time.perf_counter()
        with handled:
            started_at[task.process_instance_id or ""] = now
            handled.notify_all()
        return NoOutput()

    topic = Topic(unique_topic("pickup"), NoInput, NoOutput, handler=record)
    worker = WorkerSettings(id="pickup-benchmark", health_port=0)
    with EngineClient(settings) as engine:
        deploy(engine)
        client = EngineClient(settings, worker.id, lock_duration_ms=worker.lock_duration_ms,
                              async_response_timeout_ms=worker.async_response_timeout_ms,
                              pool_size=worker.max_tasks + 4)
        loop = TaskLoop(topic, client, worker)
        thread = loop.start()
        latencies, start_calls = [], []
        try:
            for index in range(warmup + tasks):
                time.sleep(gap_s)
                before = time.perf_counter()
                instance = engine.start_process(PROCESS_KEY, {"topic": topic.name})["id"]
                start_calls.append(time.perf_counter() - before)
                with handled:
                    if not handled.wait_for(lambda i=instance: i in started_at, timeout=30):
                        raise TimeoutError(f"task of instance {instance} not picked up within 30 s")
                if index >= warmup:
                    latencies.append(started_at[instance] - before)
        finally:
            loop.stop()
            thread.join(30)
            client.close()
    in_ms = [value * 1000 for value in latencies]
    return {"tasks": tasks, "p50_ms": round(percentile(in_ms, 0.5), 1), "p90_ms": round(percentile(in_ms, 0.9), 1),
            "p99_ms": round(percentile(in_ms, 0.99), 1), "max_ms": round(max(in_ms), 1),
            "start_call_p50_ms": round(statistics.median(start_calls[warmup:]) * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds before each task is created")
    parser.add_argument("--engine-url", help="a running engine instead of one of its own")
    args = parser.parse_args(argv)
    quiet_logging()
    if args.engine_url:
        result = measure(EngineSettings(url=args.engine_url), args.tasks, args.warmup, args.gap)
    else:
        with own_engine(lambda message: print(message, file=sys.stderr)) as settings:
            result = measure(settings, args.tasks, args.warmup, args.gap)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
