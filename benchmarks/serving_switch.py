"""The blue-green switch of a model's endpoint: how long it takes and how many requests fail meanwhile.

What is measured
    A real MLServer (the fleet's ``mlserver_process``: MLflow runtime, ``parallel_workers: 0``) on free
    ports serves version 1 of a small scikit-learn model (saved with ``mlflow.sklearn.save_model``,
    no MLflow server needed) under the model's name. ``--clients`` threads (4) call the stable URL
    ``/v2/models/<model>/infer`` without pause, each with its own kept-alive session. Then the endpoint
    is switched to version 2 with :class:`workers.domain.switch.NameSwitch`, the code
    ``record-deployments`` runs: load beside version 1 and check on the pinned URL, unload version 1,
    check on the stable URL. Then it is switched back to version 1 (a rollback), the same way. Each
    switch is timed from its first call until its last check answered; every answer of the stable URL
    during the run is counted by status and by the version that answered (``model_version``).

Output
    One JSON line on stdout::

        {"switch_seconds": .., "rollback_seconds": .., "requests": .., "requests_during_switches": ..,
         "failed_requests": .., "failed_during_switches": .., "versions_answered": {"1": .., "2": ..}}

Run ``.venv/bin/python benchmarks/serving_switch.py --help`` for the options; benchmarks/README.md has
measured numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers``, ``benchmarks`` and ``tests`` importable
    sys.path.insert(0, str(REPO))

from benchmarks.common import ResultLine  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

__all__ = ["Hammer", "Options", "Result", "run_benchmark"]


class Hammer:
    """``threads`` threads calling ``url`` with ``body`` without pause, counting every answer.

    ``answers`` counts ``(status, model_version)`` pairs (status ``None``: no answer); ``versions``
    lists, per thread, the versions that answered in the order they changed.
    """

    def __init__(self, url: str, body: dict[str, Any], threads: int = 1, timeout_s: float = 30.0) -> None:
        self.url = url
        self.body = body
        self.timeout_s = timeout_s
        self.answers: Counter[tuple[int | None, str | None]] = Counter()
        self.versions: list[list[str | None]] = [[] for _ in range(threads)]
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index,), daemon=True) for index in range(threads)]

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def counts(self) -> Counter[tuple[int | None, str | None]]:
        with self._lock:
            return Counter(self.answers)

    def wait_for(self, answers: int, timeout_s: float = 30.0) -> None:
        """Until ``answers`` more answers were counted."""
        target = sum(self.counts().values()) + answers
        deadline = time.monotonic() + timeout_s
        while sum(self.counts().values()) < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self, index: int) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                version: str | None = None
                try:
                    answer = session.post(self.url, json=self.body, timeout=self.timeout_s)
                    status: int | None = answer.status_code
                    if status == 200:
                        version = answer.json().get("model_version")
                    else:
                        self._error(f"{status}: {answer.text[:200]}")
                except requests.RequestException as exc:
                    status = None
                    self._error(str(exc))
                with self._lock:
                    self.answers[(status, version)] += 1
                seen = self.versions[index]
                if status == 200 and (not seen or seen[-1] != version):
                    seen.append(version)

    def _error(self, text: str) -> None:
        with self._lock:
            if len(self.errors) < 20:
                self.errors.append(text)


@dataclass(frozen=True)
class Options:
    clients: int = 4
    settle_s: float = 1.0
    """Seconds of calls before, between and after the switches."""


@dataclass(frozen=True)
class Result(ResultLine):
    switch_seconds: float
    rollback_seconds: float
    requests: int
    requests_during_switches: int
    failed_requests: int
    failed_during_switches: int
    versions_answered: dict[str, int]


class _StderrLog:
    """The switch's progress lines, on stderr: stdout holds only the result line."""

    def info(self, message: str, **values: Any) -> None:
        print(message, json.dumps(values, default=str), file=sys.stderr)


def _save_versions(store: Path) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Two versions of a logistic regression on the breast-cancer data, and V2 inputs of three rows."""
    import mlflow.sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from workers.clients.mlserver import pandas_inputs

    data = load_breast_cancer(as_frame=True)
    folders = {}
    for version, c in (("1", 0.1), ("2", 1.0)):
        model = LogisticRegression(C=c, max_iter=5000).fit(data.data, data.target)
        folders[version] = store / f"v{version}"
        mlflow.sklearn.save_model(model, folders[version])
    return folders, pandas_inputs(data.data.head(3))


def _failed(counts: Counter[tuple[int | None, str | None]]) -> int:
    return sum(count for (status, _), count in counts.items() if status != 200)


def run_benchmark(options: Options) -> Result:
    from workers.clients.mlserver import MlserverClient
    from workers.config import FleetSettings
    from workers.domain.runtimes import Runtime
    from workers.domain.serving import ServingFolders, served_name
    from workers.domain.switch import NameSwitch
    from workers.fleet.processes import mlserver_process
    from workers.harness.topic import TaskContext

    home = Path(tempfile.mkdtemp(prefix="serving-switch-"))
    try:
        folders, inputs = _save_versions(home / "store")
        repository = home / "models"
        port = free_port()
        process = mlserver_process(FleetSettings(home=home), port, free_port(), free_port(), repository)
        process.start(timeout_s=180)
        try:
            endpoint = f"http://127.0.0.1:{port}"
            runtime = Runtime(name="bench-online", stage="DEV", service_tags=("bench",), endpoints=(endpoint,),
                              model_repository=repository)
            served = served_name("serving-switch-bench")
            task = TaskContext(task_id="bench", topic="record-deployments", process_instance_id="bench",
                               process_definition_key="bench", activity_id="bench", business_key=None,
                               retries=None, worker_id="bench", log=_StderrLog())
            client = MlserverClient(endpoint)

            def switch_to(version: str) -> float:
                started = time.monotonic()
                target = ServingFolders(repository, served, version)
                copy = home / f"copy-{version}-{time.monotonic_ns()}"
                shutil.copytree(folders[version], copy)
                target.show(copy)
                switch = NameSwitch(runtime, served, version, [client], task)
                switch.bring_in(inputs)
                switch.switch(inputs)
                seconds = time.monotonic() - started
                switch.finish()
                return seconds

            switch_to("1")
            body = {"inputs": inputs, "parameters": {"content_type": "pd"}}
            with Hammer(f"{endpoint}/v2/models/{served}/infer", body, threads=options.clients) as hammer:
                time.sleep(options.settle_s)
                before = hammer.counts()
                switch_seconds = switch_to("2")
                after_switch = hammer.counts()
                time.sleep(options.settle_s)
                between = hammer.counts()
                rollback_seconds = switch_to("1")
                after_rollback = hammer.counts()
                time.sleep(options.settle_s)
            counts = hammer.counts()
            during = (after_switch - before) + (after_rollback - between)
            if hammer.errors:
                print("\n".join(hammer.errors), file=sys.stderr)
            return Result(switch_seconds=round(switch_seconds, 3), rollback_seconds=round(rollback_seconds, 3),
                          requests=sum(counts.values()), requests_during_switches=sum(during.values()),
                          failed_requests=_failed(counts), failed_during_switches=_failed(during),
                          versions_answered={str(version): count for (status, version), count in counts.items()
                                             if status == 200})
        finally:
            process.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=Options.clients, help="threads calling the endpoint (4)")
    parser.add_argument("--settle", type=float, default=Options.settle_s,
                        help="seconds of calls before, between and after the switches (1)")
    args = parser.parse_args(argv)
    result = run_benchmark(Options(clients=args.clients, settle_s=args.settle))
    print(result.line())
    return 0 if result.failed_requests == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
