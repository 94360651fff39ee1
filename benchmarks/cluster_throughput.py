"""Completed external tasks per second on one engine node and on two, and how soon a long poll sees a task.

What is measured
    An engine cluster of two nodes (the fleet's jar, one PostgreSQL database) with harness workers
    (:class:`workers.harness.TaskLoop`, a no-op topic, ``--workers`` loops of ``--max-tasks`` slots):

    one node      every worker on node 0, every instance started through node 0; node 1 runs but
                  serves nothing (its job executor idles), so both rounds see warm JVMs and the
                  same database.
    two nodes     worker ``w`` on node ``w % 2``, instances started through both nodes in turn.
    pickup        how long a task created through one node takes to reach a long poll (``--poll``
                  seconds) already waiting on a node: on the same node (the engine notifies its own
                  waiting polls) and on the other node (it does not: the waiting node looks again
                  for its pending polls every 30 s, or when another poll reaches it).

How
    Starts a PostgreSQL server of its own (``initdb`` and ``pg_ctl`` on the PATH, a temporary folder,
    a free port) unless ``--db-url`` names a database, and both nodes at once (they take turns on
    start-up: ``ClusterStartup``); deploys a process start → external task (topic from the variable
    ``topic``) → end; warms each node up with ``--warmup`` untimed tasks through it; then, for each
    round (``--rounds``), measures one node, then two: T instances (``--tasks``) are started first,
    outside the timing, then the workers; the clock runs until the workers' ``mlc_tasks_completed``
    metrics add up to T. With several rounds each figure is the median. Then ``--pickups`` samples of
    each pickup delay. Every wait is bounded (``--timeout``, ``--stall-timeout``).

Output
    A table on stderr, then exactly one JSON line on stdout::

        {"one_node_tps": .., "two_nodes_tps": .., "tasks": .., "workers": ..,
         "same_node_pickup_s": .., "cross_node_pickup_s": ..}

Run ``.venv/bin/python benchmarks/cluster_throughput.py --help`` for the options; benchmarks/README.md
has measured numbers.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` importable without installing
    sys.path.insert(0, str(REPO))

from benchmarks.common import BenchmarkError, at_least_one, engine_exit_code, reporter  # noqa: E402
from benchmarks.throughput import (  # noqa: E402
    PROCESS_KEY,
    NoInput,
    NoOutput,
    check_all_completed,
    deploy,
    do_nothing,
    quiet_logging,
    unique_topic,
    wait_for_completion,
)
from benchmarks.throughput import Options as WaitOptions  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.postgres import has_postgres, postgres_server  # noqa: E402
from workers.config import EngineSettings, FleetSettings, WorkerSettings  # noqa: E402
from workers.engine.client import EngineClient  # noqa: E402
from workers.fleet.processes import FleetError, ManagedProcess, engine_process  # noqa: E402
from workers.harness import TaskLoop, Topic  # noqa: E402

__all__ = ["Options", "Result", "main", "run_benchmark"]

CREATE_THREADS = 8


@dataclass(frozen=True)
class Options:
    tasks: int = 2000
    workers: int = 4
    max_tasks: int = 16
    warmup: int = 2000
    rounds: int = 1
    pickups: int = 2
    poll_s: float = 60.0
    timeout_s: float = 600.0
    stall_s: float = 30.0

    @property
    def waits(self) -> WaitOptions:
        return WaitOptions(timeout_s=self.timeout_s, stall_s=self.stall_s)


@dataclass(frozen=True)
class Result:
    one_node_tps: float
    two_nodes_tps: float
    tasks: int
    workers: int
    same_node_pickup_s: float | None  # None: not measured (--pickups 0)
    cross_node_pickup_s: float | None

    def line(self) -> str:
        return json.dumps({name: round(value, 3) if isinstance(value, float) else value
                           for name, value in self.__dict__.items()})


# -- work ----------------------------------------------------------------------------------------------


def start_instances(clients: list[EngineClient], topic: str, count: int) -> None:
    """``count`` instances on ``topic``, started through ``clients`` in turn."""
    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="bench-create") as pool:
        list(pool.map(lambda n: clients[n % len(clients)].start_process(PROCESS_KEY, {"topic": topic}),
                      range(count)))


def run_workers(nodes: list[EngineSettings], clients: list[EngineClient], count: int, options: Options) -> float:
    """Seconds ``options.workers`` task loops, worker ``w`` on ``nodes[w % len(nodes)]``, take for ``count`` tasks."""
    topic = Topic(name=unique_topic(f"{len(nodes)}-node"), input_model=NoInput, output_model=NoOutput,
                  handler=do_nothing)
    start_instances(clients, topic.name, count)
    loops = []
    for index in range(options.workers):
        worker = WorkerSettings(id=f"bench-cluster-{index}-{uuid.uuid4().hex[:6]}", max_tasks=options.max_tasks)
        client = EngineClient(nodes[index % len(nodes)], worker.id, lock_duration_ms=worker.lock_duration_ms,
                              async_response_timeout_ms=worker.async_response_timeout_ms,
                              pool_size=worker.max_tasks + 4)
        loops.append(TaskLoop(topic, client, worker))
    samples = {"topic": topic.name}

    def completed() -> int:
        return sum(int(loop.metrics.registry.get_sample_value("mlc_tasks_completed_total", samples) or 0)
                   for loop in loops)

    started = time.perf_counter()
    threads = [loop.start() for loop in loops]
    try:
        seconds = wait_for_completion(f"{len(nodes)} node(s)", count, completed, started, options.waits,
                                      interval_s=0.01, alive=lambda: all(t.is_alive() for t in threads))
    finally:
        for loop in loops:
            loop.stop()
        for loop, thread in zip(loops, threads, strict=True):
            thread.join(timeout=loop.settings.drain_timeout_s + 5)
            loop.client.close()
    check_all_completed(f"{len(nodes)} node(s)", clients[0], topic.name)
    return seconds


def pickup_seconds(poll_node: EngineSettings, start_through: EngineClient, options: Options) -> float:
    """Seconds from starting an instance through ``start_through`` until a poll waiting on ``poll_node`` has it."""
    topic = unique_topic("pickup")
    fetched: list[float] = []
    with EngineClient(poll_node, f"bench-pickup-{uuid.uuid4().hex[:6]}",
                      async_response_timeout_ms=int(options.poll_s * 1000)) as poller:
        def poll() -> None:
            tasks = poller.fetch_and_lock(topic, max_tasks=1)
            fetched.append(time.perf_counter())
            for task in tasks:
                poller.complete(task["id"])

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        time.sleep(1.0)  # the poll is waiting on its node
        started = time.perf_counter()
        start_through.start_process(PROCESS_KEY, {"topic": topic})
        thread.join(options.poll_s + 10)
    if not fetched or start_through.get("/external-task/count", topicName=topic)["count"]:
        raise BenchmarkError(f"a poll on {poll_node.url} did not get its task within {options.poll_s:.0f}s")
    return fetched[0] - started


def run_benchmark(nodes: list[EngineSettings], options: Options, report: Callable[[str], None] = lambda _: None
                  ) -> Result:
    with ExitStack() as stack:
        clients = [stack.enter_context(EngineClient(node, pool_size=CREATE_THREADS + 2)) for node in nodes]
        deploy(clients[0])
        for index, node in enumerate(nodes):
            if options.warmup:
                seconds = run_workers([node], [clients[index]], options.warmup, options)
                report(f"warm-up node {index}: {options.warmup} tasks, {options.warmup / seconds:.0f} tasks/s")
        one, two = [], []
        for round_ in range(options.rounds):
            one.append(options.tasks / run_workers(nodes[:1], clients[:1], options.tasks, options))
            two.append(options.tasks / run_workers(nodes, clients, options.tasks, options))
            report(f"round {round_ + 1}: one node {one[-1]:.0f} tasks/s, two nodes {two[-1]:.0f} tasks/s")
        same = [pickup_seconds(nodes[0], clients[0], options) for _ in range(options.pickups)]
        cross = [pickup_seconds(nodes[1], clients[0], options) for _ in range(options.pickups)]
        if options.pickups:
            report(f"pickup by a waiting poll: same node {same}, other node {cross} (s)")
    return Result(statistics.median(one), statistics.median(two), options.tasks, options.workers,
                  statistics.median(same) if same else None, statistics.median(cross) if cross else None)


# -- the cluster -----------------------------------------------------------------------------------------


@contextmanager
def own_postgres(report: Callable[[str], None]) -> Iterator[str]:
    """A PostgreSQL server in a temporary folder on a free port (user ``mlc``, trust on 127.0.0.1); its JDBC URL."""
    if not has_postgres():
        raise FleetError("PostgreSQL server binaries (initdb, pg_ctl) are not on the PATH; or give --db-url")
    with postgres_server("mlc-bench-postgres-") as server:
        report(f"PostgreSQL on 127.0.0.1:{server.port} ({server.data})")
        yield f"jdbc:postgresql://127.0.0.1:{server.port}/postgres"


@contextmanager
def own_cluster(db_url: str, db_user: str, report: Callable[[str], None]) -> Iterator[list[EngineSettings]]:
    """Two nodes of the fleet's jar on ``db_url``, started at once, without REST auth; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="mlc-bench-cluster-") as home:
        (Path(home) / "bpmn").mkdir()
        password = secrets.token_urlsafe(24)  # the engine has no default admin password; nobody logs in
        settings = [EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest") for _ in range(2)]
        nodes: list[ManagedProcess] = []
        for index, node in enumerate(settings):
            fleet = FleetSettings(home=Path(home) / f"node-{index}", bpmn_dir=Path(home) / "bpmn",
                                  engine_jar=REPO / "deploy/engine/target/mlc-engine.jar")
            nodes.append(engine_process(fleet, node, extra_env={
                "MLC_ENGINE_REST_AUTH": "false", "MLC_ENGINE_ADMIN_PASSWORD": password, "MLC_ENGINE_DB_URL": db_url,
                "MLC_ENGINE_DB_USER": db_user, "MLC_ENGINE_NODE_NAME": f"node-{index}"}))
        report(f"starting two nodes at {[node.url for node in settings]}")
        try:
            for node in nodes:
                node.launch()
            for node in nodes:
                node.wait_ready(FleetSettings().engine_start_timeout_s * 2)
            yield settings
        finally:
            report("stopping the nodes")
            for node in nodes:
                node.stop()


# -- command line ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=Options.tasks, help="tasks timed in each measurement")
    parser.add_argument("--workers", type=int, default=Options.workers, help="task loops (spread over the nodes)")
    parser.add_argument("--max-tasks", type=int, default=Options.max_tasks, help="each loop's max_tasks")
    parser.add_argument("--warmup", type=int, default=Options.warmup, help="untimed tasks through each node first")
    parser.add_argument("--rounds", type=int, default=Options.rounds, help="one node then two, this many times")
    parser.add_argument("--pickups", type=int, default=Options.pickups,
                        help="samples of each pickup delay (0: none)")
    parser.add_argument("--poll", type=float, default=Options.poll_s, help="long-poll seconds of the pickup probe")
    parser.add_argument("--timeout", type=float, default=Options.timeout_s, help="seconds a measurement may take")
    parser.add_argument("--stall-timeout", type=float, default=Options.stall_s,
                        help="seconds without a completed task before a measurement counts as stalled")
    parser.add_argument("--db-url", help="JDBC URL of an empty PostgreSQL database instead of a server of its own")
    parser.add_argument("--db-user", default="mlc", help="its user (password: MLC_ENGINE_DB_PASSWORD)")
    args = parser.parse_args(argv)
    at_least_one(parser, args, "tasks", "workers", "max_tasks", "rounds")
    if args.warmup < 0 or args.pickups < 0:
        parser.error("--warmup and --pickups must not be negative")
    if args.pickups and args.poll <= 35:
        parser.error("--poll must be longer than 35 s: the other node looks for tasks every 30 s")
    return args


say = reporter("cluster-throughput")


def table(result: Result) -> str:
    return "\n".join([
        f"{'one node':<28}{result.one_node_tps:>10.0f} tasks/s",
        f"{'two nodes':<28}{result.two_nodes_tps:>10.0f} tasks/s",
        *(f"{what:<28}{seconds:>10.2f} s" for what, seconds in (("pickup, same node", result.same_node_pickup_s),
                                                                ("pickup, other node", result.cross_node_pickup_s))
          if seconds is not None),
        f"({result.tasks} tasks, {result.workers} workers)",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(tasks=args.tasks, workers=args.workers, max_tasks=args.max_tasks, warmup=args.warmup,
                      rounds=args.rounds, pickups=args.pickups, poll_s=args.poll, timeout_s=args.timeout,
                      stall_s=args.stall_timeout)
    quiet_logging()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the nodes and the database are stopped too

    def run() -> Result:
        with ExitStack() as stack:
            db_url = args.db_url or stack.enter_context(own_postgres(say))
            nodes = stack.enter_context(own_cluster(db_url, args.db_user, say))
            return run_benchmark(nodes, options, say)

    def show(result: Result) -> None:
        print(table(result), file=sys.stderr)
        print(result.line(), flush=True)

    return engine_exit_code(run, show, say, "the cluster")


if __name__ == "__main__":
    sys.exit(main())
