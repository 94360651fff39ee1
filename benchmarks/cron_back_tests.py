"""The Cron Triggered Back Test over many models, with 1, 2 and 4 replicas of the metrics workers, and the
memory of the fleet after its start and after the runs.

How
    Starts `mlc up --no-demo`'s fleet in a temporary home (engine on H2, MLflow, MLServer, bridge, the
    development servers and the worker groups), registers the sample model once and then ``--models``
    copies of it (``bench-0000`` ...): each a registered model whose version has the sample's model
    files, test data and test criteria, the tag ``schedule.backtest`` = ``* * * * *`` and the alias
    ``deployed``. For each replica count of ``--replicas`` (1,2,4) it starts that many metrics worker
    processes in all (the fleet's own plus extras), waits for a new minute (so every schedule is due in
    the window since the previous firing), fires the cron timer (``POST /job/{id}/execute``) and times
    until that Cron Triggered Back Test instance ends. It counts the back tests that passed (its
    ``PASSED_COUNT``) and the incidents raised meanwhile. The RSS of every process of the fleet is read
    after the start (before any model is registered) and after the last run.

Output
    Progress on stderr, then one JSON line on stdout::

        {"models": 1000, "runs": [{"metrics_replicas": 1, "seconds": .., "back_tests_per_s": ..,
          "passed": .., "incidents": 0}, ...], "memory_after_start_mb": {...}, "memory_after_runs_mb": {...}}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet import admin_engine, fleet_memory, local_fleet, replicas  # noqa: E402
from workers.clients.mlflow.rest import MlflowRest, RestFailure  # noqa: E402
from workers.engine import EngineClient  # noqa: E402
from workers.fleet.local import LocalFleet  # noqa: E402

PROCESS = "cron-triggered-back-test"
WEBHOOK_CACHE_S = 62


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register_copies(fleet: LocalFleet, count: int) -> list[str]:
    """``count`` registered models, each a deployed copy of the sample with a schedule due every minute."""
    from workers.fleet.sample import register_sample_model

    sample = register_sample_model(fleet.mlflow)
    rest = MlflowRest(fleet.mlflow.tracking_uri)
    version = rest.get("model-versions/get", name=sample.name, version=sample.version)["model_version"]
    tags = [tag for tag in version.get("tags", []) if not tag["key"].startswith("schedule.")]
    tags.append({"key": "schedule.backtest", "value": "* * * * *"})
    model_tags = rest.get("registered-models/get", name=sample.name)["registered_model"].get("tags", [])

    def copy(index: int) -> str:
        name = f"bench-{index:04d}"
        try:
            rest.post("registered-models/create", {"name": name, "tags": model_tags})
        except RestFailure as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = version["source"]
        created = rest.post("model-versions/create", {
            "name": name, "source": source, "run_id": version["run_id"], "tags": tags,
            **({"model_id": source.removeprefix("models:/")} if source.startswith("models:/") else {})})
        rest.post("registered-models/alias", {"name": name, "alias": "deployed",
                                              "version": created["model_version"]["version"]})
        return name

    # models already in service before the fleet knew them: no Deploy process for the copies, whose new
    # versions would otherwise each start one through the bridge's webhook and compete with the back tests
    with webhooks_disabled(fleet), ThreadPoolExecutor(8) as pool:
        names = list(pool.map(copy, range(count)))
    # the sample itself is deployed but has no schedule: it is not due
    return names


@contextmanager
def webhooks_disabled(fleet: LocalFleet) -> Iterator[None]:
    """MLflow's webhooks (the bridge's) disabled meanwhile; MLflow's server caches the webhooks of an event
    for ``MLFLOW_WEBHOOK_CACHE_TTL`` (60 s), so this waits that long for the change to be seen."""
    from mlflow import MlflowClient
    from mlflow.entities.webhook import WebhookStatus

    client = MlflowClient(fleet.mlflow.tracking_uri)
    active = [hook for hook in client.list_webhooks() if hook.status == WebhookStatus.ACTIVE]
    for hook in active:
        client.update_webhook(hook.webhook_id, status="DISABLED")
    time.sleep(WEBHOOK_CACHE_S)
    try:
        yield
    finally:
        for hook in active:
            client.update_webhook(hook.webhook_id, status="ACTIVE")


def wait_for_new_minute(after: datetime) -> None:
    while datetime.now(UTC).replace(second=0, microsecond=0) <= after.replace(second=0, microsecond=0):
        time.sleep(0.5)
    time.sleep(1)


def fire_and_time(engine: EngineClient, timeout_s: float) -> dict[str, Any]:
    timer = engine.get("/job", processDefinitionKey=PROCESS, timers="true")[0]
    incidents_before = engine.get("/history/incident/count")["count"]
    started = time.monotonic()
    engine.post(f"/job/{timer['id']}/execute")
    instance = None
    while time.monotonic() - started < timeout_s:
        found = engine.get("/history/process-instance", processDefinitionKey=PROCESS, sortBy="startTime",
                           sortOrder="desc", maxResults=1)
        instance = found[0] if found else None
        if instance and instance["state"] != "ACTIVE":
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"the Cron Triggered Back Test did not end within {timeout_s:.0f}s")
    seconds = time.monotonic() - started
    passed = engine.get("/history/variable-instance", processInstanceId=instance["id"], variableName="PASSED_COUNT")
    return {"seconds": round(seconds, 1), "state": instance["state"],
            "passed": passed[0]["value"] if passed else None,
            "incidents": engine.get("/history/incident/count")["count"] - incidents_before}


def run_benchmark(models: int, replica_counts: list[int], timeout_s: float) -> dict[str, Any]:
    with local_fleet(say) as fleet, EngineClient(admin_engine(fleet)) as engine:
        time.sleep(5)
        after_start = fleet_memory(fleet)
        say(f"fleet started; RSS {after_start}")
        began = time.monotonic()
        register_copies(fleet, models)
        say(f"registered {models} copies of the sample in {time.monotonic() - began:.1f}s")
        runs = []
        fired_at = datetime.now(UTC)
        extra: list[Any] = []
        for count in replica_counts:
            with replicas(fleet, "metrics", count - 1) as started:
                wait_for_new_minute(fired_at)
                fired_at = datetime.now(UTC)
                result = fire_and_time(engine, timeout_s)
                result |= {"metrics_replicas": count,
                           "back_tests_per_s": round(models / result["seconds"], 2)}
                say(f"{count} metrics replica(s): {result}")
                runs.append(result)
                if count == replica_counts[-1]:
                    extra = started
                    after_runs = fleet_memory(fleet, extra)
    return {"models": models, "runs": runs, "memory_after_start_mb": after_start,
            "memory_after_runs_mb": after_runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--replicas", default="1,2,4", help="metrics worker replicas per run, by commas")
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest wait for one run, seconds")
    args = parser.parse_args(argv)
    result = run_benchmark(args.models, [int(part) for part in args.replicas.split(",")], args.timeout)
    print(json.dumps(result))
    return 0 if all(run["state"] == "COMPLETED" and run["incidents"] == 0 for run in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
