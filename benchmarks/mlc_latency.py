"""The MLC's own latency: a new model version, from its registration in MLflow to the stable endpoint
answering with it.

How
    Starts `mlc up --no-demo`'s fleet in a temporary home, registers the sample model, then for each
    of ``--rounds`` rounds registers a new version of it with ``run_test`` = ``true`` and ``jira`` =
    ``false``: MLflow's webhook reaches the event bridge, which starts Deploy with run test and Jira;
    the version is tested (metrics job, test criteria, champion comparison), deployed to the DEV
    MLServer beside the version in service, switched to, and recorded. The clock runs from just
    before the version is created until an inference call on the model's stable URL
    (``/v2/models/<model>/infer``, the sample's first test rows, called every 20 ms) is answered by
    the new version. It also reads how long the Deploy process instance itself ran (from the engine's
    history), which leaves out the webhook and the bridge.

Output
    Progress on stderr, then one JSON line on stdout::

        {"rounds": 3, "seconds": [..], "median_s": .., "process_seconds": [..]}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet import admin_engine, local_fleet  # noqa: E402
from workers.clients.mlflow import ModelRegistry  # noqa: E402
from workers.config import DEPLOY_PROCESS  # noqa: E402
from workers.engine import EngineClient  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sample_request() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    from workers.clients.mlserver import pandas_inputs

    features = load_breast_cancer(as_frame=True).data.head(3)
    return {"inputs": pandas_inputs(features), "parameters": {"content_type": "pd"}}


def answered_by(session: requests.Session, url: str, body: dict[str, Any]) -> str | None:
    try:
        answer = session.post(url, json=body, timeout=5)
    except requests.RequestException:
        return None
    return str(answer.json().get("model_version")) if answer.status_code == 200 else None


def wait_answering(session: requests.Session, url: str, body: dict[str, Any], version: str, started: float,
                   timeout_s: float) -> None:
    while answered_by(session, url, body) != version:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"version {version} did not answer at {url} within {timeout_s:.0f}s")
        time.sleep(0.02)


def process_duration(engine: EngineClient, business_key: str, timeout_s: float = 60.0) -> float | None:
    """Seconds the Deploy instance of ``business_key`` ran, once it has ended (None if it does not)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = engine.get("/history/process-instance", processDefinitionKey=DEPLOY_PROCESS,
                           processInstanceBusinessKey=business_key)
        if found and found[0].get("durationInMillis") is not None:
            return round(found[0]["durationInMillis"] / 1000, 2)
        time.sleep(0.1)
    return None


def run_benchmark(rounds: int, timeout_s: float) -> dict[str, Any]:
    from workers.fleet.sample import register_sample_model

    with local_fleet(say) as fleet, EngineClient(admin_engine(fleet)) as engine:
        sample = register_sample_model(fleet.mlflow)
        registry = ModelRegistry(fleet.mlflow)
        first = registry.get_version(sample.name, sample.version)
        url = f"{fleet.mlserver_url}/v2/models/{sample.name}/infer"
        body = sample_request()
        session = requests.Session()
        # the sample's own first version deploys too: each round starts once the one before is in service
        wait_answering(session, url, body, sample.version, time.monotonic(), timeout_s)
        seconds, process_seconds = [], []
        for _ in range(rounds):
            started = time.monotonic()
            version = registry.create_version(sample.name, first.source, run_id=first.run_id,
                                              tags={"run_test": "true", "jira": "false"}).version
            wait_answering(session, url, body, version, started, timeout_s)
            seconds.append(round(time.monotonic() - started, 2))
            process_seconds.append(process_duration(engine, f"{sample.name}:{version}"))
            say(f"version {version}: {seconds[-1]} s to the stable endpoint; process {process_seconds[-1]} s")
    return {"rounds": rounds, "seconds": seconds, "median_s": statistics.median(seconds),
            "process_seconds": process_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for one version, seconds")
    args = parser.parse_args(argv)
    print(json.dumps(run_benchmark(args.rounds, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
