"""The model's stable endpoint through a deployment and a rollback, against a real MLflow and MLServer:
every call answered (200) while the version behind it changes, find-rollback-target's choice of version
and runtimes, and the automatic switch back when the check after a switch fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmarks.serving_switch import Hammer
from tests.support import write_inventory
from tests.topics.test_deploy_model import (
    SERVICE,
    Stage,
    answering_version,
    copy_of_sample,
    deploy,
    mlflow_download,
    record,
    repository_leftovers,
    task,
)
from workers.clients.mlflow.registry import ModelRegistry
from workers.clients.mlserver import InferenceAnswer, MlserverClient, MlserverError, pandas_inputs
from workers.config import MlflowSettings
from workers.domain.deployments import deployments_of, format_status
from workers.domain.runtimes import Runtime
from workers.domain.serving import served_name
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import BusinessError
from workers.topics import find_rollback_target
from workers.topics.find_rollback_target import FindRollbackTargetInput, FindRollbackTargetOutput


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name="rollback-tests-sample", service=SERVICE)


@pytest.fixture(scope="module")
def inventory(mlserver, tmp_path_factory) -> Path:
    return write_inventory(tmp_path_factory.mktemp("inventory") / "runtimes.yaml", ("DEV", "PROD"), [
        Runtime(name="rb-dev-batch", stage="DEV", service_tags=(SERVICE,)),
        Runtime(name="rb-dev-online", stage="DEV", service_tags=(SERVICE,), endpoints=(mlserver.endpoint,),
                model_repository=mlserver.repository),
    ])


@pytest.fixture(scope="module")
def rows(mlflow_settings, sample) -> pd.DataFrame:
    return pd.read_csv(mlflow_download(mlflow_settings, sample.test_data_uri)).drop(columns=["label"]).head(3)


@pytest.fixture
def registry(mlflow_settings) -> ModelRegistry:
    return ModelRegistry(mlflow_settings)


def find_target(settings: MlflowSettings, model: str, **variables: Any) -> FindRollbackTargetOutput:
    handler = find_rollback_target.make_handler(settings)
    return handler(FindRollbackTargetInput.model_validate({"MODEL_ID": model, **variables}), task())


def roll_back(settings: MlflowSettings, stage: Stage, model: str, **variables: Any) -> FindRollbackTargetOutput:
    """What rollback-model runs: find the target, then stage it on its runtimes and switch them."""
    target = find_target(settings, model, **variables)
    for runtime in target.runtimes:
        stage.deploy(deploy(model, target.model_version, runtime, RUNTIMES=target.runtimes), task())
    stage.record(record(model, target.model_version, *target.runtimes, MODEL_STAGE=target.model_stage), task())
    return target


def test_the_stable_endpoint_answers_every_call_through_a_deployment_and_a_rollback(
        mlflow_settings, sample, inventory, mlserver, registry, rows):
    name = copy_of_sample(mlflow_settings, sample, versions=2)
    served = served_name(name)
    stage = Stage(mlflow_settings, inventory)
    first = stage(name, "1", "rb-dev-batch", "rb-dev-online")
    url = f"{mlserver.endpoint}/v2/models/{served}/infer"
    assert first.deployed_endpoint == url

    body = {"inputs": pandas_inputs(rows), "parameters": {"content_type": "pd"}}
    with Hammer(url, body) as hammer:
        hammer.wait_for(20)
        before = hammer.counts()
        second = stage(name, "2", "rb-dev-batch", "rb-dev-online")
        hammer.wait_for(20)
        between = hammer.counts()
        target = roll_back(mlflow_settings, stage, name, REASON="precision dropped", REQUESTED_BY="alice")
        hammer.wait_for(20)
    answers = hammer.counts()
    print(f"\nstable endpoint through deploy and rollback: {dict(answers)}")

    assert second.deployed_endpoint == url
    assert {status for status, _ in answers} == {200}, hammer.errors
    assert set(before) == {(200, "1")}
    assert hammer.versions == [["1", "2", "1"]]
    assert (200, "2") in between and (answers - between)[(200, "1")] >= 20

    assert (target.model_version, target.from_version) == ("1", "2")
    assert target.runtimes == ["rb-dev-batch", "rb-dev-online"] and target.model_stage == "DEV"
    assert target.rollback_by == "alice"
    assert target.rollback_summary == (f"model {name!r} from version 2 back to version 1 on rb-dev-batch, "
                                       "rb-dev-online (DEV), by alice: precision dropped")
    assert registry.get_model(name).aliases == {"deployed": "1", "deployed-dev": "1"}
    records = deployments_of(registry, name)
    assert [(r.version, r.runtime, r.active) for r in records[:2]] == [
        ("1", "rb-dev-online", True), ("1", "rb-dev-batch", True)]
    assert {(r.version, r.active) for r in records[2:]} == {("2", False)}
    status = format_status(records)
    assert status.splitlines()[1].split()[:5] == ["1", "rb-dev-online", "DEV", "online", "active"]
    assert status.splitlines()[1].endswith(url)
    assert repository_leftovers(mlserver.repository, served, "2") == []
    assert repository_leftovers(mlserver.repository, served, "1") == [f"{served}/v1"]

    # forward again by name, then nothing left to roll back to by name
    again = roll_back(mlflow_settings, stage, name, TO_VERSION="2", RUNTIME="rb-dev-online", INITIATOR="bob")
    assert (again.model_version, again.runtimes, again.rollback_by) == ("2", ["rb-dev-online"], "bob")
    assert answering_version(MlserverClient(mlserver.endpoint), served, rows) == "2"
    with pytest.raises(BusinessError) as error:
        find_target(mlflow_settings, name, TO_VERSION="2", RUNTIME="rb-dev-online")
    assert error.value.code == "ROLLBACK_NOT_POSSIBLE"
    assert "version 2" in error.value.message and "already in service on rb-dev-online" in error.value.message


def test_nothing_to_roll_back_to_is_rollback_not_possible(mlflow_settings, sample, inventory):
    name = copy_of_sample(mlflow_settings, sample)
    with pytest.raises(BusinessError) as error:
        find_target(mlflow_settings, name)
    assert (error.value.code, error.value.message) == (
        "ROLLBACK_NOT_POSSIBLE", f"cannot roll back: model {name!r} is not in service")
    Stage(mlflow_settings, inventory)(name, "1", "rb-dev-batch")
    with pytest.raises(BusinessError, match="an earlier version of model .* was never in service on rb-dev-batch"):
        find_target(mlflow_settings, name)
    with pytest.raises(BusinessError, match="not in service on runtime rb-dev-online"):
        find_target(mlflow_settings, name, RUNTIME="rb-dev-online")
    with pytest.raises(BusinessError, match="cannot roll back: .*not found"):
        find_target(mlflow_settings, "no-such-model-for-rollback")


class FailingAfterSwitch(MlserverClient):
    """Answers the check on the model's stable URL with an error while ``failing`` is set; the pinned checks pass."""

    failing = False

    def infer_answer(self, name: str, inputs: Any, parameters: Any = None,
                     version: str | None = None) -> InferenceAnswer:
        if FailingAfterSwitch.failing and version is None and ".check-v" not in name:
            raise MlserverError("injected: the stable endpoint answered 500", status=500, endpoint=self.endpoint)
        return super().infer_answer(name, inputs, parameters, version)


def test_a_failed_check_after_the_switch_switches_back_by_itself(mlflow_settings, sample, inventory, mlserver,
                                                                 registry, rows):
    name = copy_of_sample(mlflow_settings, sample, versions=2)
    served = served_name(name)
    Stage(mlflow_settings, inventory)(name, "1", "rb-dev-online")
    aliases, records = registry.get_model(name).aliases, deployments_of(registry, name)
    failing = Stage(mlflow_settings, inventory, FailingAfterSwitch)
    failing.deploy(deploy(name, "2", "rb-dev-online", RUNTIMES=["rb-dev-online"]), task())

    body = {"inputs": pandas_inputs(rows), "parameters": {"content_type": "pd"}}
    with Hammer(f"{mlserver.endpoint}/v2/models/{served}/infer", body) as hammer:
        hammer.wait_for(20)
        FailingAfterSwitch.failing = True
        try:
            with pytest.raises(BusinessError) as error:
                failing.record(record(name, "2", "rb-dev-online"), task())
        finally:
            FailingAfterSwitch.failing = False
        hammer.wait_for(20)
    assert error.value.code == "DEPLOYMENT_FAILED"
    assert error.value.message == (
        f"deployment of model {name!r} version 2 to runtime rb-dev-online failed: the check after the switch "
        "failed: injected: the stable endpoint answered 500; switched back to version 1")
    assert {status for status, _ in hammer.counts()} == {200}, hammer.errors
    assert hammer.versions[0][0] == "1" and hammer.versions[0][-1] == "1"

    client = MlserverClient(mlserver.endpoint)
    assert answering_version(client, served, rows) == "1"
    assert client.model_ready(served, "2") is False
    assert repository_leftovers(mlserver.repository, served, "2") == []
    assert repository_leftovers(mlserver.repository, served, "1") == [f"{served}/v1"]
    assert registry.get_model(name).aliases == aliases
    assert deployments_of(registry, name) == records
