"""Topic ``warm-up-model``: a candidate version in the shadow of the version in service, before its review.

Reads ``MODEL_ID``, ``MODEL_VERSION``, ``RUNTIMES`` (the runtimes of the stage, from ``find-runtimes``)
and optional ``MODEL_STAGE``. A version is warmed up on every online runtime of ``RUNTIMES`` when it has
the version tag ``warm_up`` (``true``, ``yes``, ``1``), and on the online runtimes whose inventory entry
says ``warm_up: true`` whatever its tags; otherwise nothing happens and ``WARM_UP_DONE`` is false.

On each such runtime the version's MLflow model is downloaded under a hidden name, renamed to
``<model_repository>/<model>.warmup-v<version>/`` and loaded by each endpoint under the name
``<model>.warmup-v<version>``, which no consumer calls, beside the version in service (the champion, answering the
stable URL). Both are sent the same requests (:mod:`workers.domain.warmup`): the last
``warm_up_requests`` of the runtime's ``request_log``, else as many rows of the version's test data, one
request each. Then the candidate is unloaded and its folder removed, whatever happened: nothing of the
warm-up stays on the runtime, and the version in service is never touched.

Writes ``WARM_UP_DONE``, ``WARM_UP_METRICS`` (the flat numbers an SLA DMN reads: latency p50/p99/mean of
the candidate and the champion, their p99 ratio, agreement rate, requests, rows, errors and error rate,
the worst over the runtimes), ``WARM_UP_DETAILS`` (each runtime's numbers and source),
``WARM_UP_MESSAGE`` (a line for the review ticket), ``WARM_UP_SLA_FILE`` (the version tag
``warm_up_sla``, else its run's ``mlc/warm_up_sla.dmn``: the DMN the process judges the numbers by) and
``WARM_UP_RUN_ID``: the MLflow run holding the numbers (metrics, and the artifact ``mlc/warm_up.json``),
also named by the version tag ``mlc.warm_up_run``. A redelivered task finds its run by the tag
``mlc.task_id`` and warms nothing up again.

The candidate not loading, or nothing to replay (no request captured, no test data), is the BPMN error
``WARM_UP_FAILED``; MLServer or MLflow unreachable is a failure to retry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from workers.clients.mlflow import artifacts
from workers.clients.mlflow.registry import ModelNotFound, ModelRegistry, RegistryUnavailable, VersionRecord
from workers.clients.mlserver import InferenceAnswer, MlserverClient, MlserverError, MlserverUnavailable
from workers.config import DataSettings, MlflowSettings, RuntimeSettings, load
from workers.domain.models import flag, test_assets
from workers.domain.runtimes import Runtime, current_inventory, load_inventory
from workers.domain.serving import (
    ClientFactory,
    EndpointClients,
    VersionOnRuntime,
    runtimes_of,
    sample_rows,
    unload_quietly,
    warm_up_name,
)
from workers.domain.warmup import (
    WARM_UP_FAILED,
    ReplayRequest,
    WarmUpMeasure,
    combined_metrics,
    read_request_log,
    replay,
    requests_from_rows,
)
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.scratch import scratch_dir
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["RESULT_ARTIFACT", "RUN_TAG", "TOPIC", "WarmUpInput", "WarmUpOutput", "make_handler"]

RESULT_ARTIFACT = "mlc/warm_up.json"
RUN_TAG = "mlc.warm_up_run"
"""The version tag naming the MLflow run of the version's last warm-up."""
TOLERANCE = 1e-6
"""How far two numbers of an answer may be apart and still agree (relative, and at least absolute)."""


class WarmUpInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The candidate version to warm up."""
    runtimes: list[str] = Field(alias="RUNTIMES")
    """The runtimes of the stage (from find-runtimes); the online ones are warmed up on."""
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    """When given, every runtime must be in this stage."""


class WarmUpOutput(TaskOutput):
    warm_up_done: bool = Field(alias="WARM_UP_DONE")
    """Whether a warm-up ran (the version tag warm_up, or a runtime's warm_up setting)."""
    warm_up_metrics: dict[str, Any] = Field(alias="WARM_UP_METRICS")
    """The flat numbers the SLA DMN reads: latency p50/p99, agreement rate, errors; the worst of the runtimes."""
    warm_up_details: list[dict[str, Any]] = Field(alias="WARM_UP_DETAILS")
    """Each runtime's numbers and where its requests came from."""
    warm_up_message: str | None = Field(alias="WARM_UP_MESSAGE")
    """One line per runtime for the review ticket; none without a warm-up."""
    warm_up_sla_file: str | None = Field(alias="WARM_UP_SLA_FILE")
    """The SLA DMN: version tag warm_up_sla, else the run's mlc/warm_up_sla.dmn."""
    warm_up_run_id: str | None = Field(alias="WARM_UP_RUN_ID")
    """The MLflow run holding the numbers."""


Handler = Callable[[WarmUpInput, TaskContext], WarmUpOutput]

_SKIPPED = WarmUpOutput(warm_up_done=False, warm_up_metrics={}, warm_up_details=[], warm_up_message=None,
                        warm_up_sla_file=None, warm_up_run_id=None)


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path, *,
                 client_factory: ClientFactory = MlserverClient, data_roots: DataSettings | None = None) -> Handler:
    """The ``warm-up-model`` handler, with the same MLflow, inventory and MLServer clients as
    ``deploy-model``'s; test data read only where ``data_roots`` allows (default: from the environment)."""
    allowed = data_roots or load(DataSettings)
    load_inventory(inventory_file)  # a broken inventory stops the worker at start
    registry = ModelRegistry(mlflow_settings)
    clients = EndpointClients(client_factory)

    def warm_up_model(data: WarmUpInput, task: TaskContext) -> WarmUpOutput:
        inventory = current_inventory(inventory_file)
        runtimes = runtimes_of(inventory, data.runtimes, data.model_stage)
        try:
            version = registry.get_version(data.model_id, data.model_version)
            asked = flag(version.tags, "warm_up")
            chosen = [runtime for runtime in runtimes if runtime.mode == "online" and (asked or runtime.warm_up)]
            if not chosen:
                task.progress("no warm-up asked for", tag=asked, runtimes=[runtime.name for runtime in runtimes])
                return _SKIPPED
            earlier = _recorded(registry, mlflow_settings, task)
            if earlier is not None:
                return earlier
            assets = test_assets(registry, version)
            replayed = _Replays(registry, mlflow_settings, allowed, version, assets.test_data, assets.label_column)
            measures = [_WarmUp(registry, runtime, version, clients.of(runtime), task, replayed).run()
                        for runtime in chosen]
            return _record(registry, version, measures, assets.warm_up_sla, task)
        except ModelNotFound as exc:
            raise BusinessError(WARM_UP_FAILED, f"cannot warm the version up: {exc.message}") from exc
        except (RegistryUnavailable, MlserverUnavailable) as exc:
            raise RetryableError(exc.message) from exc

    return warm_up_model


def _recorded(registry: ModelRegistry, settings: MlflowSettings, task: TaskContext) -> WarmUpOutput | None:
    """The output an earlier delivery of this task recorded in its run, so that nothing is warmed up twice."""
    for run in registry.search_runs(f"tags.`mlc.task_id` = '{task.task_id}' and tags.`mlc.job` = 'warm-up'"):
        if run.status == "FINISHED":
            try:
                recorded = json.loads(artifacts.read_bytes(f"runs:/{run.run_id}/{RESULT_ARTIFACT}", settings))
            except artifacts.ArtifactNotFound:
                continue
            task.progress("warm-up recorded by an earlier delivery of this task", run_id=run.run_id)
            return WarmUpOutput.model_validate({**recorded, "WARM_UP_RUN_ID": run.run_id})
    return None


def _record(registry: ModelRegistry, version: VersionRecord, measures: list[WarmUpMeasure], sla: str | None,
            task: TaskContext) -> WarmUpOutput:
    metrics = combined_metrics(measures)
    output = WarmUpOutput(
        warm_up_done=True, warm_up_metrics=metrics, warm_up_details=[measure.details() for measure in measures],
        warm_up_message="; ".join(measure.summary() for measure in measures)
        + ("" if sla else "; the model has no warm-up SLA (DMN) to judge it"), warm_up_sla_file=sla,
        warm_up_run_id=None)
    if not task.confirm_lock():
        raise RetryableError("this delivery of the task no longer holds its lock (another delivery has it, or the "
                             "engine cannot be reached): the warm-up is not recorded twice")
    numbers = {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
    for measure in measures:
        numbers.update({f"{measure.runtime}_{key}": value for key, value in measure.metrics().items()
                        if isinstance(value, (int, float))})
    tags = {"mlc.job": "warm-up", "mlc.model_name": version.name, "mlc.model_version": version.version,
            "mlc.task_id": task.task_id}
    if task.process_instance_id:
        tags["mlc.process_instance_id"] = task.process_instance_id
    with scratch_dir("warm-up") as folder:
        result = Path(folder) / "warm_up.json"
        result.write_text(json.dumps(output.model_dump(by_alias=True), indent=2) + "\n", encoding="utf-8")
        run_id = registry.log_job_run(
            run_name=f"warm-up {version.name} v{version.version}", tags=tags, metrics=numbers,
            params={"runtimes": ",".join(measure.runtime for measure in measures),
                    "sources": "; ".join(measure.source for measure in measures), "sla": sla or ""},
            artifacts={"mlc": result})
    registry.set_version_tag(version.name, version.version, RUN_TAG, run_id)
    task.progress("warm-up recorded", run_id=run_id, **{key: metrics[key] for key in
                                                        ("latency_p50_ms", "latency_p99_ms", "agreement_rate")})
    return output.model_copy(update={"warm_up_run_id": run_id})


class _Replays:
    """The requests a runtime's warm-up replays: its request log's, else the version's test data's (read once)."""

    def __init__(self, registry: ModelRegistry, settings: MlflowSettings, data_roots: DataSettings,
                 version: VersionRecord, test_data: str | None, label_column: str) -> None:
        self.registry = registry
        self.settings = settings
        self.data_roots = data_roots
        self.version = version
        self.test_data = test_data
        self.label_column = label_column
        self._rows: Any = None

    def of(self, runtime: Runtime) -> tuple[list[ReplayRequest], str]:
        """The requests to replay on ``runtime`` and where they come from."""
        log = read_request_log(runtime.request_log, runtime.warm_up_requests) if runtime.request_log else None
        if log is not None and log.requests:
            skipped = f", {log.skipped} lines skipped" if log.skipped else ""
            return log.requests, f"request log {log.path}{skipped}"
        if self.test_data is None:
            captured = f"no request in {runtime.request_log}" if runtime.request_log else "no request log"
            raise BusinessError(WARM_UP_FAILED, (
                f"nothing to replay for the warm-up of model {self.version.name!r} version {self.version.version} "
                f"on runtime {runtime.name}: {captured}, and the version has no test data (tag test_data or run "
                f"artifact mlc/test_data.csv)"))
        requests = requests_from_rows(self._test_rows(runtime.warm_up_requests), runtime.warm_up_requests)
        return requests, f"test data {self.test_data}"

    def _test_rows(self, wanted: int) -> Any:
        if self._rows is None or len(self._rows) < wanted:
            assert self.test_data is not None
            self._rows = sample_rows(self.test_data, self.settings, self.data_roots, label_column=self.label_column,
                                     read=wanted, failed=_no_test_data)
        return self._rows


def _no_test_data(cause: str) -> BusinessError:
    return BusinessError(WARM_UP_FAILED, f"no test data to replay: {cause}")


class _WarmUp(VersionOnRuntime):
    """One version warmed up on one online runtime: download, load under the warm-up name, replay beside
    the version in service, unload and remove."""

    def __init__(self, registry: ModelRegistry, runtime: Runtime, version: VersionRecord,
                 clients: list[MlserverClient], task: TaskContext, replays: _Replays) -> None:
        super().__init__(registry, runtime, version, clients, task)
        self.replays = replays
        self.name = warm_up_name(version.name, version.version)

    def run(self) -> WarmUpMeasure:
        requests, source = self.replays.of(self.runtime)
        measure = WarmUpMeasure(runtime=self.runtime.name, source=source)
        try:
            self._sweep()
            self.download(self.folders.show_for_warm_up, self._failed)
            for client in self.clients:
                try:
                    client.load(self.name)
                except MlserverUnavailable:
                    raise
                except MlserverError as exc:
                    raise self._failed(f"the candidate could not be loaded: {exc.message}") from exc
                champion = self._champion(client) if client.model_ready(self.served) else None
                replay(measure, requests, self._candidate(client), champion, TOLERANCE)
        finally:
            unload_quietly(self.clients, self.name, self.task)
            shutil.rmtree(self.folders.warming, ignore_errors=True)
        self.task.progress("warmed up", runtime=self.runtime.name, **measure.metrics())
        return measure

    def _sweep(self) -> None:
        """Remove the warm-up folder of this version that a worker stopped mid-way left (the engine's retry
        comes here); other versions' are theirs: each has a name of its own, and may be warming up now."""
        shutil.rmtree(self.folders.warming, ignore_errors=True)

    def _candidate(self, client: MlserverClient) -> Callable[[ReplayRequest], InferenceAnswer]:
        def call(request: ReplayRequest) -> InferenceAnswer:
            return client.infer_answer(self.name, request.inputs, parameters=request.parameters,
                                       version=self.version.version)

        return call

    def _champion(self, client: MlserverClient) -> Callable[[ReplayRequest], InferenceAnswer]:
        def call(request: ReplayRequest) -> InferenceAnswer:
            return client.infer_answer(self.served, request.inputs, parameters=request.parameters)

        return call

    def _failed(self, cause: str) -> BusinessError:
        return BusinessError(WARM_UP_FAILED, f"warm-up of model {self.version.name!r} version {self.version.version} "
                                             f"on runtime {self.runtime.name} failed: {cause}")


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load(RuntimeSettings).file, data_roots=load(DataSettings))


TOPIC = Topic(
    name="warm-up-model",
    input_model=WarmUpInput,
    output_model=WarmUpOutput,
    build_handler=_default_handler,
    description="warm a candidate up beside the version in service: replayed requests, latency, agreement",
    bpmn_errors=(
        BpmnError(WARM_UP_FAILED, "the candidate does not load or has nothing to replay (no request captured, no "
                                  "test data): nothing of it is left on the runtime"),
    ),
)
