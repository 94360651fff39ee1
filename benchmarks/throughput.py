"""Completed external tasks per second of a no-op handler: raw REST loop, our harness, plain client.

What is measured
    How many external tasks per second each client fetches, handles (the handler does nothing) and
    completes, against one Camunda engine, in one run:

    raw loop      one thread, one kept-alive ``requests.Session``: ``POST /external-task/fetchAndLock``
                  with ``maxTasks`` N (``--max-tasks``, 50), then ``POST /external-task/{id}/complete``
                  for each task. The baseline: what the engine allows a Python client without a harness.
    harness       :class:`workers.harness.TaskLoop` with a no-op topic (no input, no output fields) and
                  default worker settings except ``max_tasks`` (``--harness-max-tasks``, 32), in a
                  background thread, logging at WARNING.
    plain client  ``ExternalTaskWorker`` of camunda-external-task-client-python3 with its defaults
                  (one task per fetch, a new connection per call), ``subscribe()`` in a child process
                  that is killed when its tasks are done.

How
    The script starts its own engine (the fleet's jar, embedded H2 in a temporary home, a free port,
    no REST auth) unless ``--engine-url`` names a running one, deploys a process
    start → external task (topic from the variable ``topic``) → end, and warms the engine up with
    untimed tasks (``--warmup``, 5000: on a fresh engine the raw loop ran at 80-100 tasks/s for the
    first 3000 tasks and settled at about 300/s after 5000), four fifths through the raw loop and
    the last fifth through the harness, so the engine's concurrent paths are warm too. Then, for
    each client in turn: T process instances are started on that client's own topic (in parallel,
    not timed), the client is started, and the clock runs from its start until all T tasks are
    completed. The raw loop counts its own completions, the harness's ``mlc_tasks_completed``
    metric is read every 10 ms, and the plain client's topic is polled with
    ``GET /external-task/count`` every 100 ms. Every wait is bounded: a client that makes no
    progress for ``--stall-timeout`` seconds, or is not done after ``--timeout``, ends the run with
    exit code 1 and a message naming it. On a busy machine, ``--rounds R`` measures the three
    clients R times in turn and reports each one's median.

Output
    A table on stderr, then exactly one JSON line on stdout::

        {"raw_loop_tps": .., "harness_tps": .., "plain_client_tps": .., "tasks": ..}

Run ``.venv/bin/python benchmarks/throughput.py --help`` for the options; benchmarks/README.md has
measured numbers.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
import structlog

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` importable without installing
    sys.path.insert(0, str(REPO))

from benchmarks.common import BenchmarkError, at_least_one, engine_exit_code, reporter  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from workers.config import EngineSettings, FleetSettings, LogSettings, WorkerSettings, load  # noqa: E402
from workers.engine.client import EngineClient  # noqa: E402
from workers.fleet.processes import ManagedProcess, engine_process  # noqa: E402
from workers.harness import TaskContext, TaskInput, TaskLoop, TaskOutput, Topic  # noqa: E402
from workers.logs import configure_logging  # noqa: E402

__all__ = ["BenchmarkError", "Measurement", "Options", "main", "result_line", "run_benchmark"]

PROCESS_KEY = "mlc-benchmark-noop"
NOOP_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="mlc-benchmark-noop-definitions" targetNamespace="http://mlc-manager/benchmarks">
  <bpmn:process id="mlc-benchmark-noop" name="Benchmark: one external task" isExecutable="true"
                camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to-work" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" name="No-op" camunda:type="external" camunda:topic="${topic}"/>
    <bpmn:sequenceFlow id="to-end" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
#: the child process running the plain client reads its engine, topic and auth from this variable
PLAIN_WORKER_ENV = "MLC_BENCHMARK_PLAIN_WORKER"
CREATE_THREADS = 8
WARMUP_BATCH = 1000


@dataclass(frozen=True)
class Options:
    tasks: int = 2000
    plain_tasks: int | None = None  # None: min(tasks, 300)
    max_tasks: int = 50
    harness_max_tasks: int = 32
    warmup: int = 5000
    timeout_s: float = 600.0
    stall_s: float = 30.0
    rounds: int = 1

    @property
    def plain_count(self) -> int:
        return self.plain_tasks if self.plain_tasks is not None else min(self.tasks, 300)


@dataclass(frozen=True)
class Measurement:
    client: str
    tasks: int
    seconds: float
    rounds_tps: tuple[float, ...] = ()

    @property
    def tps(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


# -- engine set-up -----------------------------------------------------------------------------------


def deploy(client: EngineClient) -> None:
    client.deploy("mlc-benchmark", {"noop.bpmn": NOOP_BPMN})


def open_tasks(client: EngineClient, topic: str) -> int:
    """External tasks of ``topic`` not completed yet (locked or not)."""
    return int(client.get("/external-task/count", topicName=topic)["count"])


def create_instances(client: EngineClient, topic: str, count: int) -> None:
    """Start ``count`` instances whose external task is on ``topic``; the client's pool is shared."""
    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="bench-create") as pool:
        list(pool.map(lambda _: client.start_process(PROCESS_KEY, {"topic": topic}), range(count)))
    found = open_tasks(client, topic)
    if found != count:
        raise BenchmarkError(f"{topic}: {found} open tasks after starting {count} instances")


def unique_topic(client: str) -> str:
    return f"bench-{client}-{uuid.uuid4().hex[:8]}"


# -- waiting -----------------------------------------------------------------------------------------


def wait_for_completion(
    client: str,
    count: int,
    completed: Callable[[], int],
    started: float,
    options: Options,
    *,
    interval_s: float,
    alive: Callable[[], bool] = lambda: True,
) -> float:
    """Seconds from ``started`` (perf_counter) until ``completed()`` reaches ``count``; bounded."""
    last_done, last_progress = 0, time.perf_counter()
    while True:
        done = completed()
        now = time.perf_counter()
        if done >= count:
            return now - started
        if done > last_done:
            last_done, last_progress = done, now
        if not alive():
            raise BenchmarkError(f"{client}: stopped after {done} of {count} tasks")
        if now - last_progress > options.stall_s:
            raise BenchmarkError(f"{client}: stalled at {done} of {count} tasks "
                                 f"(no task completed for {options.stall_s:.0f}s)")
        if now - started > options.timeout_s:
            raise BenchmarkError(f"{client}: only {done} of {count} tasks after {options.timeout_s:.0f}s")
        time.sleep(interval_s)


def check_all_completed(client: str, engine: EngineClient, topic: str) -> None:
    left = open_tasks(engine, topic)
    if left:
        raise BenchmarkError(f"{client}: {left} tasks of {topic} still open after it reported all done")


# -- 1. raw loop -------------------------------------------------------------------------------------


def basic_auth_header(settings: EngineSettings) -> dict[str, str]:
    if not settings.user:
        return {}
    password = settings.password.get_secret_value() if settings.password else ""
    token = base64.b64encode(f"{settings.user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def raw_loop(settings: EngineSettings, topic: str, count: int, options: Options) -> float:
    """Fetch-and-complete ``count`` tasks of ``topic`` on one kept-alive connection; returns seconds."""
    base = settings.url.rstrip("/")
    fetch_body = {"workerId": "bench-raw", "maxTasks": options.max_tasks, "asyncResponseTimeout": 1_000,
                  "topics": [{"topicName": topic, "lockDuration": 60_000, "variables": []}]}
    with requests.Session() as session:
        session.headers.update({"Content-Type": "application/json", **basic_auth_header(settings)})
        started = last_progress = time.perf_counter()
        done = 0
        while done < count:
            response = session.post(f"{base}/external-task/fetchAndLock", json=fetch_body, timeout=10)
            response.raise_for_status()
            for task in response.json():
                session.post(f"{base}/external-task/{task['id']}/complete", json={"workerId": "bench-raw"},
                             timeout=10).raise_for_status()
                done += 1
                last_progress = time.perf_counter()
            now = time.perf_counter()
            if now - last_progress > options.stall_s:
                raise BenchmarkError(f"raw loop: stalled at {done} of {count} tasks "
                                     f"(no task fetched for {options.stall_s:.0f}s)")
            if now - started > options.timeout_s:
                raise BenchmarkError(f"raw loop: only {done} of {count} tasks after {options.timeout_s:.0f}s")
        return time.perf_counter() - started


def run_raw_loop(settings: EngineSettings, engine: EngineClient, count: int, options: Options) -> Measurement:
    topic = unique_topic("raw")
    create_instances(engine, topic, count)
    seconds = raw_loop(settings, topic, count, options)
    check_all_completed("raw loop", engine, topic)
    return Measurement("raw loop", count, seconds)


# -- 2. our harness ----------------------------------------------------------------------------------


class NoInput(TaskInput):
    pass


class NoOutput(TaskOutput):
    pass


def do_nothing(data: NoInput, task: TaskContext) -> NoOutput:
    return NoOutput()


def run_harness(settings: EngineSettings, engine: EngineClient, count: int, options: Options) -> Measurement:
    topic = Topic(name=unique_topic("harness"), input_model=NoInput, output_model=NoOutput, handler=do_nothing)
    create_instances(engine, topic.name, count)
    worker = WorkerSettings(id=f"bench-harness-{uuid.uuid4().hex[:6]}", max_tasks=options.harness_max_tasks)
    client = EngineClient(settings, worker.id, lock_duration_ms=worker.lock_duration_ms,
                          async_response_timeout_ms=worker.async_response_timeout_ms,
                          pool_size=worker.max_tasks + 4)  # as workers.harness.serve builds it
    loop = TaskLoop(topic, client, worker)
    samples = {"topic": topic.name}

    def completed() -> int:
        return int(loop.metrics.registry.get_sample_value("mlc_tasks_completed_total", samples) or 0)

    started = time.perf_counter()
    thread = loop.start()
    try:
        seconds = wait_for_completion("harness", count, completed, started, options, interval_s=0.01,
                                      alive=thread.is_alive)
    finally:
        loop.stop()
        thread.join(timeout=worker.drain_timeout_s + 5)
        client.close()
    check_all_completed("harness", engine, topic.name)
    return Measurement("harness", count, seconds)


# -- 3. plain client (child process) -------------------------------------------------------------------


def plain_worker_config(settings: EngineSettings, topic: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if settings.user:
        password = settings.password.get_secret_value() if settings.password else ""
        config["auth_basic"] = {"username": settings.user, "password": password}
    return {"url": settings.url.rstrip("/"), "topic": topic, "config": config}


def plain_worker_child() -> None:
    """Body of the child process: the library's worker with its defaults, a no-op action; never returns."""
    from camunda.external_task.external_task_worker import ExternalTaskWorker

    spec = json.loads(os.environ[PLAIN_WORKER_ENV])
    worker = ExternalTaskWorker(worker_id="bench-plain", base_url=spec["url"], config=spec["config"])
    print("ready", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nobody reads the pipe any more
    worker.subscribe(spec["topic"], lambda task: task.complete({}))


@contextmanager
def plain_worker_process(settings: EngineSettings, topic: str, ready_timeout_s: float = 60.0) -> Iterator[
        subprocess.Popen[bytes]]:
    """The child running the plain client, once it is ready to subscribe; killed on exit."""
    env = {**os.environ, PLAIN_WORKER_ENV: json.dumps(plain_worker_config(settings, topic))}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--plain-worker"], env=env,
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], ready_timeout_s)
        if not readable or child.stdout.readline().strip() != b"ready":
            raise BenchmarkError(f"plain client: its process was not ready after {ready_timeout_s:.0f}s "
                                 f"(exit code {child.poll()})")
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()


def run_plain_client(settings: EngineSettings, engine: EngineClient, count: int, options: Options) -> Measurement:
    topic = unique_topic("plain")
    create_instances(engine, topic, count)
    with plain_worker_process(settings, topic) as child:
        started = time.perf_counter()
        seconds = wait_for_completion("plain client", count, lambda: count - open_tasks(engine, topic), started,
                                      options, interval_s=0.1, alive=lambda: child.poll() is None)
    return Measurement("plain client", count, seconds)


# -- the run -----------------------------------------------------------------------------------------


def run_benchmark(settings: EngineSettings, options: Options, report: Callable[[str], None] = lambda _: None
                  ) -> list[Measurement]:
    """Deploy, warm up, then measure the three clients one after another on the engine at ``settings``.

    With ``options.rounds`` > 1 the three are measured in turn that many times, and each client's
    median round is returned (carrying every round's rate in ``rounds_tps``).
    """
    with EngineClient(settings, "bench-setup", pool_size=CREATE_THREADS) as engine:
        deploy(engine)
        warm_up(settings, engine, options, report)
        rounds = [measure_round(settings, engine, options, report, number)
                  for number in range(1, options.rounds + 1)]
    return [median_of([r[i] for r in rounds]) for i in range(len(rounds[0]))]


def warm_up(settings: EngineSettings, engine: EngineClient, options: Options, report: Callable[[str], None]) -> None:
    """``options.warmup`` untimed tasks: raw-loop batches of at most 1000, then a fifth (at most 1000) through
    the harness, whose many parallel connections and small fetches take engine paths the raw loop does not."""
    concurrent = min(WARMUP_BATCH, options.warmup // 5)
    left = options.warmup - concurrent
    while left > 0:
        batch = min(left, WARMUP_BATCH)
        rate = run_raw_loop(settings, engine, batch, options).tps
        left -= batch
        report(f"warm-up: {batch} tasks at {rate:.0f}/s through the raw loop")
    if concurrent:
        rate = run_harness(settings, engine, concurrent, options).tps
        report(f"warm-up: {concurrent} tasks at {rate:.0f}/s through the harness")


def measure_round(settings: EngineSettings, engine: EngineClient, options: Options,
                  report: Callable[[str], None], number: int) -> list[Measurement]:
    results = []
    for name, run, count in (("raw loop", run_raw_loop, options.tasks),
                             ("harness", run_harness, options.tasks),
                             ("plain client", run_plain_client, options.plain_count)):
        report(f"{name}: {count} tasks" + (f" (round {number} of {options.rounds})" if options.rounds > 1 else ""))
        results.append(run(settings, engine, count, options))
    return results


def median_of(measurements: list[Measurement]) -> Measurement:
    """The median round (the lower one of an even count), with every round's rate attached."""
    ordered = sorted(measurements, key=lambda m: m.tps)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(middle, rounds_tps=tuple(m.tps for m in measurements))


def summary(results: list[Measurement], tasks: int) -> dict[str, float | int]:
    by_client = {m.client: round(m.tps, 1) for m in results}
    return {"raw_loop_tps": by_client["raw loop"], "harness_tps": by_client["harness"],
            "plain_client_tps": by_client["plain client"], "tasks": tasks}


def result_line(results: list[Measurement], tasks: int) -> str:
    return json.dumps(summary(results, tasks))


def table(results: list[Measurement], options: Options) -> str:
    raw = next(m.tps for m in results if m.client == "raw loop")
    plain = next(m.tps for m in results if m.client == "plain client")
    rows = [f"{'client':<14}{'tasks':>7}{'seconds':>9}{'tasks/s':>9}{'× raw':>8}{'× plain':>9}"
            + ("   every round (tasks/s)" if options.rounds > 1 else "")]
    for m in results:
        rounds = "   " + " ".join(f"{tps:.0f}" for tps in m.rounds_tps) if options.rounds > 1 else ""
        rows.append(f"{m.client:<14}{m.tasks:>7}{m.seconds:>9.2f}{m.tps:>9.1f}"
                    f"{m.tps / raw if raw else 0:>8.2f}{m.tps / plain if plain else 0:>9.1f}{rounds}")
    rows.append(f"(raw loop maxTasks={options.max_tasks}, harness max_tasks={options.harness_max_tasks}, "
                f"plain client defaults{f'; median of {options.rounds} rounds' if options.rounds > 1 else ''}; "
                f"targets: harness ≥ 0.8 × raw and ≥ 5 × plain)")
    return "\n".join(rows)


# -- engine of our own ---------------------------------------------------------------------------------


@contextmanager
def own_engine(report: Callable[[str], None], db_url: str | None = None,
               db_user: str | None = None) -> Iterator[EngineSettings]:
    """The fleet's engine jar in a temporary home, without REST auth, on embedded H2 there (or on ``db_url``,
    a JDBC URL, as ``db_user``); stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as home:
        (Path(home) / "bpmn").mkdir()
        settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest")
        fleet = FleetSettings(home=Path(home), engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                              bpmn_dir=Path(home) / "bpmn")
        engine: ManagedProcess = engine_process(fleet, settings, extra_env={
            "MLC_ENGINE_REST_AUTH": "false",
            # the engine has no default admin password; nobody logs in to this throwaway one
            "MLC_ENGINE_ADMIN_PASSWORD": secrets.token_urlsafe(24),
            "MLC_ENGINE_DB_URL": db_url or f"jdbc:h2:file:{home}/engine/camunda-h2;DB_CLOSE_ON_EXIT=FALSE",
            **({"MLC_ENGINE_DB_USER": db_user} if db_user else {}),
        })
        report(f"starting the engine at {settings.url} (home {home})")
        try:
            engine.start(timeout_s=fleet.engine_start_timeout_s)
            yield settings
        finally:
            report("stopping the engine")
            engine.stop()


# -- command line --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=Options.tasks, help="tasks for the raw loop and the harness")
    parser.add_argument("--plain-tasks", type=int, default=None,
                        help="tasks for the (slow) plain client; default min(tasks, 300)")
    parser.add_argument("--max-tasks", type=int, default=Options.max_tasks, help="maxTasks of the raw loop's fetch")
    parser.add_argument("--harness-max-tasks", type=int, default=Options.harness_max_tasks,
                        help="the harness's max_tasks (tasks held and run at once)")
    parser.add_argument("--warmup", type=int, default=Options.warmup,
                        help="untimed warm-up tasks (4/5 raw loop, 1/5 harness)")
    parser.add_argument("--rounds", type=int, default=Options.rounds,
                        help="measure the three clients this many times in turn and report each one's median "
                             "(useful on a busy machine)")
    parser.add_argument("--timeout", type=float, default=Options.timeout_s, help="seconds each client may take")
    parser.add_argument("--stall-timeout", type=float, default=Options.stall_s,
                        help="seconds without a completed task before a client counts as stalled")
    parser.add_argument("--engine-url", help="use this running engine (credentials from MLC_ENGINE_USER and "
                                             "MLC_ENGINE_PASSWORD) instead of starting one")
    parser.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    at_least_one(parser, args, "tasks", "max_tasks", "harness_max_tasks", "rounds")
    if args.plain_tasks is not None and args.plain_tasks < 1:
        parser.error("--plain-tasks must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def options_from(args: argparse.Namespace) -> Options:
    return Options(tasks=args.tasks, plain_tasks=args.plain_tasks, max_tasks=args.max_tasks,
                   harness_max_tasks=args.harness_max_tasks, warmup=args.warmup, timeout_s=args.timeout,
                   stall_s=args.stall_timeout, rounds=args.rounds)


def quiet_logging() -> None:
    """Harness logs at WARNING, as JSON, on stderr: stdout is kept for the result line."""
    configure_logging(LogSettings(level="WARNING", format="json"))
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


say = reporter("throughput")


@contextmanager
def engine_for(args: argparse.Namespace) -> Iterator[EngineSettings]:
    if args.engine_url:
        yield load(EngineSettings, url=args.engine_url)
    else:
        with own_engine(say) as settings:
            yield settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain_worker:
        plain_worker_child()
        return 0
    options = options_from(args)
    quiet_logging()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the engine is stopped on SIGTERM too

    def run() -> list[Measurement]:
        with engine_for(args) as settings:
            return run_benchmark(settings, options, say)

    def show(results: list[Measurement]) -> None:
        print(table(results, options), file=sys.stderr)
        print(result_line(results, options.tasks), flush=True)

    return engine_exit_code(run, show, say, "the engine")


if __name__ == "__main__":
    sys.exit(main())
