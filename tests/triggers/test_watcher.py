"""``mlc watch`` on the real engine, MLflow and moto's S3 and SQS server: files dropped into folders and
buckets start Run Back Test and Run Batch Model Job once; half-written files and duplicates start nothing."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from tests.support.s3 import moto_server
from workers.clients.mlflow import ModelRecord, ModelRegistry, VersionRecord
from workers.config import DataSettings, EngineSettings, MlflowSettings, S3Settings, WatchSettings
from workers.engine import EngineClient
from workers.triggers.buckets import s3_events
from workers.triggers.signals import BACK_TEST_JIRA, DEPLOYED_BATCH_JOB
from workers.triggers.watcher import Watcher
from workers.triggers.watches import watches_of

QUIET_S = 2.0
"""How long a test waits to see that nothing (more) starts."""
START_TIMEOUT_S = 90.0
"""How long a start may take: on a loaded machine the engine's first Groovy script takes a while."""


@pytest.fixture(scope="module")
def ledger(engine: EngineClient) -> None:
    wait_for(lambda: engine.get("/process-instance", processDefinitionKey="mlc-trigger-ledger"), timeout_s=60)


@pytest.fixture(scope="module")
def registry(mlflow_settings: MlflowSettings) -> ModelRegistry:
    return ModelRegistry(mlflow_settings)


@pytest.fixture
def mlflow_client(mlflow_settings: MlflowSettings) -> Iterator[Any]:
    """MLflow's client; the models a test registers are deleted after it, so no later watcher sees them."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri, registry_uri=mlflow_settings.tracking_uri)
    client.mlc_models = []
    yield client
    for name in client.mlc_models:
        client.delete_registered_model(name)


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Settings]:
    """moto's S3 and SQS server on a free port, with credentials in the environment."""
    with moto_server() as settings:
        yield settings


def aws(moto: S3Settings, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=moto.endpoint_url, region_name="us-east-1")


@pytest.fixture
def bucket(moto: S3Settings) -> tuple[str, str]:
    """A bucket that sends its ObjectCreated events to an SQS queue; (bucket, queue URL)."""
    name = f"labels-{uuid.uuid4().hex[:10]}"
    s3, sqs = aws(moto, "s3"), aws(moto, "sqs")
    s3.create_bucket(Bucket=name)
    queue = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    return name, queue


def new_model(client: Any, **tags: str) -> str:
    name = f"watched-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name, tags=tags)
    client.mlc_models.append(name)
    return name


@contextmanager
def watching(engine_settings: EngineSettings, registry: ModelRegistry, data: DataSettings,
             s3: S3Settings | None = None, **overrides: Any) -> Iterator[Watcher]:
    """A watcher running in a thread, once it has read the models' tags and looked at every place."""
    settings = WatchSettings(**{"rescan_s": 3600, "settle_s": 0.5, "poll_s": 0.2, **overrides})
    engine = EngineClient(engine_settings, f"test-watch-{uuid.uuid4().hex[:6]}")
    watcher = Watcher(settings, engine, registry, data, s3 or S3Settings())
    stopping = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.rescans, timeout_s=30)
        yield watcher
    finally:
        stopping.set()
        thread.join(30)
        watcher.close()
        engine.close()


def started(engine: EngineClient, process: str, **values: str) -> list[dict[str, Any]]:
    return engine.post("/history/process-instance", {"processDefinitionKey": process, "variables": [
        {"name": name, "operator": "eq", "value": value} for name, value in values.items()]})


def variables(engine: EngineClient, instance_id: str) -> dict[str, Any]:
    return {v["name"]: v["value"] for v in engine.get("/history/variable-instance", processInstanceId=instance_id)}


def one_start(engine: EngineClient, process: str, **values: str) -> dict[str, Any]:
    """The one instance started with ``values``, once it is there and nothing more has come after it."""
    wait_for(lambda: started(engine, process, **values), timeout_s=START_TIMEOUT_S)
    time.sleep(QUIET_S)
    found = started(engine, process, **values)
    assert len(found) == 1, found
    return variables(engine, found[0]["id"])


# --- folders --------------------------------------------------------------------------------------

def test_a_file_dropped_into_a_folder_starts_one_back_test(engine, engine_settings, ledger, registry,
                                                           mlflow_client, data_roots, tmp_path):
    folder = tmp_path / "labeled"
    folder.mkdir()
    model = new_model(mlflow_client, labeled_data=str(folder), labeled_data_pattern="*.csv")
    with watching(engine_settings, registry, data_roots):
        (folder / ".partial.csv").write_text("a,b\n")
        (folder / "notes.txt").write_text("not data\n")
        (folder / "2026-12-01.csv").write_text("a,label\n1,0\n")  # after the first rescan: inotify tells
        values = one_start(engine, "run-back-test", MODEL_ID=model)
    assert values["INPUT_FILE"] == str(folder / "2026-12-01.csv")
    assert values["MLC_TRIGGER"].startswith(f"backtest:{model}:|{folder / '2026-12-01.csv'}:12:")
    assert "MODEL_VERSION" not in values


def test_a_file_still_being_written_is_not_taken(engine, engine_settings, ledger, registry, mlflow_client,
                                                 data_roots, tmp_path):
    folder = tmp_path / "slow"
    folder.mkdir()
    model = new_model(mlflow_client, labeled_data=str(folder))
    with watching(engine_settings, registry, data_roots, settle_s=1.5):
        path = folder / "big.csv"
        with path.open("w") as stream:
            stream.write("a,label\n")
            for row in range(6):
                stream.flush()
                time.sleep(0.5)
                assert started(engine, "run-back-test", MODEL_ID=model) == []
                stream.write(f"{row},0\n")
        values = one_start(engine, "run-back-test", MODEL_ID=model)
    assert values["MLC_TRIGGER"].split("|")[1].startswith(f"{path}:{path.stat().st_size}:")


def test_with_markers_a_file_is_taken_once_its_marker_is_there(engine, engine_settings, ledger, registry,
                                                               mlflow_client, data_roots, tmp_path):
    folder = tmp_path / "marked"
    folder.mkdir()
    model = new_model(mlflow_client, labeled_data=str(folder))
    with watching(engine_settings, registry, data_roots, ready="marker", marker_suffix=".ready"):
        (folder / "day.csv").write_text("a,label\n1,0\n")
        time.sleep(QUIET_S)
        assert started(engine, "run-back-test", MODEL_ID=model) == []
        (folder / "day.csv.ready").touch()
        values = one_start(engine, "run-back-test", MODEL_ID=model)
    assert values["INPUT_FILE"] == str(folder / "day.csv")


def test_two_watchers_and_a_restart_start_each_file_once(engine, engine_settings, ledger, registry, mlflow_client,
                                                         data_roots, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    model = new_model(mlflow_client, labeled_data=str(folder))
    with watching(engine_settings, registry, data_roots, settle_s=0.2) as first, \
            watching(engine_settings, registry, data_roots, settle_s=0.2) as second:
        for day in range(4):
            (folder / f"day-{day}.csv").write_text(f"a,label\n{day},0\n")
        wait_for(lambda: len(started(engine, "run-back-test", MODEL_ID=model)) >= 4, timeout_s=START_TIMEOUT_S)
        time.sleep(QUIET_S)
    assert len(started(engine, "run-back-test", MODEL_ID=model)) == 4
    assert len(first.started) + len(second.started) == 4
    with watching(engine_settings, registry, data_roots, settle_s=0.2) as restarted:  # finds them at its rescan
        time.sleep(QUIET_S)
    assert restarted.started == [] and len(started(engine, "run-back-test", MODEL_ID=model)) == 4
    (folder / "day-0.csv").write_text("a,label\n0,1\n9,0\n")  # new content is new data, while nobody watches
    with watching(engine_settings, registry, data_roots, settle_s=0.2) as later:
        wait_for(lambda: later.started, timeout_s=START_TIMEOUT_S)
    assert len(started(engine, "run-back-test", MODEL_ID=model, INPUT_FILE=str(folder / "day-0.csv"))) == 2


def test_a_version_tag_back_tests_that_version_and_a_batch_tag_scores_for_the_service(
        engine, engine_settings, ledger, registry, mlflow_client, data_roots, tmp_path):
    labeled, incoming = tmp_path / "v-labeled", tmp_path / "incoming"
    labeled.mkdir()
    incoming.mkdir()
    service = f"svc-{uuid.uuid4().hex[:6]}"
    model = new_model(mlflow_client, service=service, batch_data=str(incoming), batch_data_pattern="*.parquet",
                      batch_output="{location}/out/{stem}-scored.csv", batch_stage="dev")
    run_id = mlflow_client.create_run(mlflow_client.create_experiment(f"{model}-runs")).info.run_id
    version = mlflow_client.create_model_version(model, source=f"runs:/{run_id}/model", run_id=run_id,
                                                 tags={"labeled_data": str(labeled)}).version
    with watching(engine_settings, registry, data_roots):
        (labeled / "truth.csv").write_text("a,label\n1,1\n")
        (incoming / "batch-7.parquet").write_bytes(b"PAR1")
        back_test = one_start(engine, "run-back-test", MODEL_ID=model)
        batch = one_start(engine, "run-batch-model-job", TAG=service)
    assert back_test["MODEL_VERSION"] == str(version) and back_test["INPUT_FILE"] == str(labeled / "truth.csv")
    assert batch["INPUT_FILE"] == str(incoming / "batch-7.parquet")
    assert batch["OUTPUT_FILE"] == f"{incoming}/out/batch-7-scored.csv" and batch["MODEL_STAGE"] == "dev"


# --- S3 -------------------------------------------------------------------------------------------

def test_an_object_put_into_a_bucket_starts_one_back_test_from_its_event(engine, engine_settings, ledger, registry,
                                                                          mlflow_client, data_roots, moto, bucket):
    name, queue = bucket
    model = new_model(mlflow_client, labeled_data=f"s3://{name}/labeled/", labeled_data_pattern="*.csv")
    data = DataSettings(roots=data_roots.roots, s3_buckets=[name])
    s3 = aws(moto, "s3")
    with watching(engine_settings, registry, data, moto, sqs_queue_url=queue) as watcher:
        s3.put_object(Bucket=name, Key="labeled/day 1.csv", Body=b"a,label\n1,0\n")
        s3.put_object(Bucket=name, Key="labeled/deeper/skip.csv", Body=b"a\n")
        s3.put_object(Bucket=name, Key="labeled/skip.txt", Body=b"a\n")
        values = one_start(engine, "run-back-test", MODEL_ID=model)
        assert watcher.rescans == 1  # the event started it, not a listing
    etag = s3.head_object(Bucket=name, Key="labeled/day 1.csv")["ETag"].strip('"')
    assert values["INPUT_FILE"] == f"s3://{name}/labeled/day 1.csv"
    assert values["MLC_TRIGGER"] == f"backtest:{model}:|s3://{name}/labeled/day 1.csv:12:{etag}"


def test_without_events_the_prefix_is_listed_and_an_event_later_starts_nothing_more(
        engine, engine_settings, ledger, registry, mlflow_client, data_roots, moto, bucket):
    name, queue = bucket
    model = new_model(mlflow_client, labeled_data=f"s3://{name}/in")
    data = DataSettings(roots=data_roots.roots, s3_buckets=[name])
    aws(moto, "s3").put_object(Bucket=name, Key="in/a.csv", Body=b"a,label\n1,0\n")
    with watching(engine_settings, registry, data, moto, rescan_s=1) as polling:
        one_start(engine, "run-back-test", MODEL_ID=model)
    assert len(polling.started) == 1
    with watching(engine_settings, registry, data, moto, sqs_queue_url=queue) as evented:  # the queue holds the event
        wait_for(lambda: not aws(moto, "sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages"))
        time.sleep(QUIET_S)
    assert evented.started == [] and len(started(engine, "run-back-test", MODEL_ID=model)) == 1


def test_a_marked_object_waits_for_its_marker(engine, engine_settings, ledger, registry, mlflow_client, data_roots,
                                              moto, bucket):
    name, queue = bucket
    model = new_model(mlflow_client, labeled_data=f"s3://{name}/m")
    data = DataSettings(roots=data_roots.roots, s3_buckets=[name])
    s3 = aws(moto, "s3")
    with watching(engine_settings, registry, data, moto, sqs_queue_url=queue, ready="marker"):
        s3.put_object(Bucket=name, Key="m/part.csv", Body=b"a,label\n1,0\n")
        time.sleep(QUIET_S)
        assert started(engine, "run-back-test", MODEL_ID=model) == []
        s3.put_object(Bucket=name, Key="m/part.csv.done", Body=b"")
        values = one_start(engine, "run-back-test", MODEL_ID=model)
    assert values["INPUT_FILE"] == f"s3://{name}/m/part.csv"


# --- what is watched ------------------------------------------------------------------------------

def record(name: str, **tags: str) -> ModelRecord:
    return ModelRecord(name=name, description="", tags=tags, aliases={})


def test_places_outside_the_data_roots_and_batch_data_without_a_service_are_not_watched(tmp_path):
    warnings: list[dict[str, Any]] = []
    data = DataSettings(roots=[tmp_path], s3_buckets=["allowed"])
    models: list[tuple[ModelRecord, list[VersionRecord]]] = [
        (record("outside", labeled_data="/etc"), []),
        (record("bucket", labeled_data="s3://other/prefix"), []),
        (record("no-service", batch_data=str(tmp_path)), []),
        (record("inside", labeled_data="relative/folder", service="s"), []),
        (record("allowed", labeled_data="s3://allowed/p/", batch_data="s3://allowed/b", service="s"), []),
    ]
    found = watches_of(models, data, lambda message, **fields: warnings.append(fields))
    assert [(w.purpose, w.location, w.signal) for w in found] == [
        ("backtest:inside:", str(Path(os.path.realpath(tmp_path)) / "relative/folder"), BACK_TEST_JIRA),
        ("backtest:allowed:", "s3://allowed/p", BACK_TEST_JIRA),
        ("batch:s", "s3://allowed/b", DEPLOYED_BATCH_JOB)]
    assert [w["owner"] for w in warnings] == ["outside", "bucket", "no-service"]
    assert "outside the data roots" in warnings[0]["reason"] and "service" in warnings[2]["reason"]


def test_s3_event_bodies_name_the_objects_created():
    body = json.dumps({"Records": [
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},
                                                  "object": {"key": "in/day+1%2B.csv", "size": 5, "eTag": "abc"}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "in/x.csv"}}}]})
    [arrival] = s3_events(body)
    assert (arrival.uri, arrival.size, arrival.stamp) == ("s3://b/in/day 1+.csv", 5, "abc")
    assert s3_events(json.dumps({"Message": body}))[0] == arrival  # through SNS
    assert s3_events("not json") == [] and s3_events(json.dumps({"Event": "s3:TestEvent"})) == []
