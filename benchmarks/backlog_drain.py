"""A backlog of external tasks drained by N worker replicas: rate over time, HTTP errors, engine CPU and memory.

How
    Starts its own engine (the fleet's jar on H2, as ``throughput.py`` does; with ``--database postgres``
    on a PostgreSQL server of its own, as ``cluster_throughput.py`` starts one), deploys the one-task
    process and creates ``--tasks`` (100,000) process instances on one topic, 8 at a time, before any
    worker runs. Then it starts ``--replicas`` (4) worker processes, each ``workers.harness.serve``
    (what ``mlc worker`` runs) with a no-op handler on that topic and the default settings but
    ``MLC_WORKER_MAX_TASKS`` (``--max-tasks``, 32), and times until no task of the topic is left.
    Every ``--every`` seconds (5) it reads the open tasks (``GET /external-task/count``), the engine's
    CPU seconds and RSS (``/proc``); at the end each replica's ``/metrics`` gives its completions and
    its failed engine calls (``mlc_engine_poll_errors``, ``mlc_tasks_failed``).

Output
    Progress on stderr, then one JSON line on stdout::

        {"tasks": .., "replicas": .., "seconds": .., "tasks_per_s": .., "rate_over_time": [[t, per_s], ..],
         "poll_errors": .., "failed_reports": .., "engine_cpu_share": .., "engine_peak_rss_mb": .., ...}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster_throughput import own_postgres  # noqa: E402
from benchmarks.fleet import free_port_block, tree_cpu_s, tree_rss_mb  # noqa: E402
from benchmarks.throughput import PROCESS_KEY, deploy, open_tasks, own_engine, unique_topic  # noqa: E402
from workers.config import EngineSettings  # noqa: E402
from workers.engine.client import EngineClient  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child(topic: str) -> int:
    """A replica: ``serve`` with a no-op topic, configured from the environment like ``mlc worker``."""
    from benchmarks.throughput import NoInput, NoOutput, do_nothing
    from workers.config import LogSettings, WorkerSettings, load
    from workers.harness import Topic
    from workers.harness.serve import serve
    from workers.logs import configure_logging

    configure_logging(LogSettings(level="WARNING", format="json"))
    return serve(Topic(topic, NoInput, NoOutput, handler=do_nothing), load(EngineSettings), load(WorkerSettings))


def engine_pid(settings: EngineSettings) -> int | None:
    """The engine's java process: the one whose environment names its port (``MLC_ENGINE_PORT``)."""
    port = f"MLC_ENGINE_PORT={settings.url.split(':')[2].split('/')[0]}".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and port in (entry / "environ").read_bytes().split(b"\0"):
                if b"java" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
        except OSError:
            continue
    return None


def metric(text: str, name: str) -> float:
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE))


def run_benchmark(settings: EngineSettings, tasks: int, replicas: int, max_tasks: int, every_s: float,
                  timeout_s: float) -> dict[str, Any]:
    with EngineClient(settings) as engine:
        deploy(engine)
        topic = unique_topic("backlog")
        began = time.monotonic()
        for start in range(0, tasks, 10_000):
            batch = min(10_000, tasks - start)
            _create(engine, topic, batch)
            say(f"created {start + batch} of {tasks} tasks ({time.monotonic() - began:.0f}s)")
        creation_s = time.monotonic() - began
        pid = engine_pid(settings)
        base = free_port_block(replicas, start=33_000, stop=40_000)
        environment = {**os.environ, "MLC_ENGINE_URL": settings.url, "MLC_WORKER_MAX_TASKS": str(max_tasks),
                       "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                       **({"MLC_ENGINE_USER": settings.user} if settings.user else {}),
                       **({"MLC_ENGINE_PASSWORD": settings.password.get_secret_value()} if settings.password else {})}
        # the replicas log to stderr with the progress: stdout holds only the result line
        workers = [subprocess.Popen([sys.executable, __file__, "--child", topic], stdout=sys.stderr,
                                    env={**environment, "MLC_WORKER_HEALTH_PORT": str(base + index),
                                         "MLC_WORKER_ID": f"replica-{index + 1}"})
                   for index in range(replicas)]
        try:
            cpu_before = tree_cpu_s(pid) if pid else 0.0
            started = time.monotonic()
            samples: list[tuple[float, int]] = [(0.0, tasks)]
            peak_rss = 0.0
            while samples[-1][1] > 0:
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"{samples[-1][1]} tasks left after {timeout_s:.0f}s")
                time.sleep(every_s)
                samples.append((round(time.monotonic() - started, 1), open_tasks(engine, topic)))
                peak_rss = max(peak_rss, tree_rss_mb(pid) if pid else 0.0)
                say(f"t={samples[-1][0]}s open={samples[-1][1]}")
            seconds = time.monotonic() - started
            cpu = (tree_cpu_s(pid) - cpu_before) if pid else 0.0
            texts = [requests.get(f"http://127.0.0.1:{base + index}/metrics", timeout=10).text
                     for index in range(replicas)]
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)
    rate = [[t1, round((n0 - n1) / (t1 - t0), 1)] for (t0, n0), (t1, n1) in zip(samples, samples[1:], strict=False)
            if t1 > t0]
    return {
        "tasks": tasks, "replicas": replicas, "max_tasks_per_replica": max_tasks,
        "creation_seconds": round(creation_s, 1), "seconds": round(seconds, 1),
        "tasks_per_s": round(tasks / seconds, 1), "rate_over_time": rate,
        "completed": int(sum(metric(text, "mlc_tasks_completed_total") for text in texts)),
        "poll_errors": int(sum(metric(text, "mlc_engine_poll_errors_total") for text in texts)),
        "failed_reports": int(sum(metric(text, "mlc_tasks_failed_total") for text in texts)),
        "engine_cpu_share": round(cpu / seconds, 2), "engine_peak_rss_mb": peak_rss,
    }


def _create(engine: EngineClient, topic: str, count: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: engine.start_process(PROCESS_KEY, {"topic": topic}), range(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--max-tasks", type=int, default=32)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--database", choices=("h2", "postgres"), default="h2",
                        help="the engine's database: embedded H2 (mlc up's) or a PostgreSQL server of its own")
    parser.add_argument("--child", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    # SIGTERM (a timeout, a kill) ends the run through the context managers: no engine or server left running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        db_url = stack.enter_context(own_postgres(say)) if args.database == "postgres" else None
        settings = stack.enter_context(own_engine(say, db_url, "mlc" if db_url else None))
        result = run_benchmark(settings, args.tasks, args.replicas, args.max_tasks, args.every, args.timeout)
    print(json.dumps({**result, "database": args.database}))
    return 0 if result["completed"] == args.tasks and result["poll_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
