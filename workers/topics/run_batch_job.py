"""Topic ``run-batch-job``: score a data file with the version deployed as batch for a model service tag.

Reads ``TAG`` (the model service tag), optional ``MODEL_STAGE``, ``INPUT_FILE`` and ``OUTPUT_FILE``
(CSV or Parquet by suffix; a local path, ``file://`` or ``s3://bucket/key``, and the input may also be
an MLflow artifact URI), ``OVERWRITE`` (default false), optional ``LABEL_COLUMN`` (dropped before
scoring) and ``KEEP_COLUMNS`` (the input columns copied to the output, a list or comma-separated;
default all).

Takes the version most recently deployed as batch and still in service among the models tagged
``service = TAG`` (in ``MODEL_STAGE`` when given, :func:`workers.deployments.batch_deployment_record`)
and runs on the runtime it was deployed to, or, when the inventory no longer has that one as a batch
runtime serving the tag in the deployment's stage, on the first that is. The file is scored in chunks
(:mod:`workers.scoring`, ``scoring`` progress events), the job recorded as an MLflow run of the
fleet's experiment tagged ``mlc.batch_job=true``, and only then is the output moved into place: a job
that fails, or that is retried because MLflow was down, leaves no output behind.

Writes ``MODEL_ID``, ``MODEL_VERSION``, ``RUNTIME``, ``ROWS_IN``, ``ROWS_OUT``, ``SCORING_SECONDS``,
``OUTPUT_FILE`` and ``BATCH_RUN_ID``. A job that cannot run is a BPMN error naming the cause:
``NO_BATCH_DEPLOYMENT``, ``NO_RUNTIME``, ``INPUT_UNREADABLE``, ``OUTPUT_EXISTS``,
``OUTPUT_UNWRITABLE`` or ``SCORING_FAILED`` (the model cannot be loaded or cannot score the data);
once the version is known the error also sets ``MODEL_ID``, ``MODEL_VERSION`` and ``RUNTIME``.
MLflow unreachable is a retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import Field, field_validator

from workers.config import MlflowSettings, load
from workers.datafiles import DEFAULT_CHUNK_ROWS
from workers.deployments import DeploymentRecord, batch_deployment_record
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic
from workers.objectstore import S3Settings
from workers.outcomes import BusinessError
from workers.registry import ModelNotLoadable, ModelRegistry
from workers.runtimes import Runtime, RuntimeInventory, RuntimeSettings, load_inventory
from workers.scoring import InputUnreadable, ModelFailed, OutputExists, OutputUnwritable, ScoringError, ScoringJob
from workers.topics._registry_outcomes import registry_outcomes

__all__ = ["TOPIC", "BatchJobInput", "BatchJobOutput", "make_handler"]

NO_BATCH_DEPLOYMENT = "NO_BATCH_DEPLOYMENT"
NO_RUNTIME = "NO_RUNTIME"
SCORING_FAILED = "SCORING_FAILED"
_CODES: dict[type[ScoringError], str] = {
    InputUnreadable: "INPUT_UNREADABLE",
    OutputExists: "OUTPUT_EXISTS",
    OutputUnwritable: "OUTPUT_UNWRITABLE",
    ModelFailed: SCORING_FAILED,
}


class BatchJobInput(TaskInput):
    tag: str = Field(alias="TAG", min_length=1)
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    input_file: str = Field(alias="INPUT_FILE", min_length=1)
    output_file: str = Field(alias="OUTPUT_FILE", min_length=1)
    overwrite: bool = Field(False, alias="OVERWRITE")
    label_column: str | None = Field(None, alias="LABEL_COLUMN")
    keep_columns: list[str] | None = Field(None, alias="KEEP_COLUMNS")

    @field_validator("model_stage", "label_column")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("keep_columns", mode="before")
    @classmethod
    def _list_or_text(cls, value: Any) -> Any:
        """A JSON list, or names separated by commas, as a process variable may hold them."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            return json.loads(text) if text.startswith("[") else [name.strip() for name in text.split(",")]
        return value


class BatchJobOutput(TaskOutput):
    model_id: str = Field(alias="MODEL_ID")
    model_version: str = Field(alias="MODEL_VERSION")
    runtime: str = Field(alias="RUNTIME")
    rows_in: int = Field(alias="ROWS_IN")
    rows_out: int = Field(alias="ROWS_OUT")
    scoring_seconds: float = Field(alias="SCORING_SECONDS")
    output_file: str = Field(alias="OUTPUT_FILE")
    batch_run_id: str = Field(alias="BATCH_RUN_ID")


Handler = Callable[[BatchJobInput, TaskContext], BatchJobOutput]


def make_handler(mlflow_settings: MlflowSettings, inventory: RuntimeInventory, s3: S3Settings | None = None, *,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, progress_every: int = 10) -> Handler:
    """The ``run-batch-job`` handler: versions and job runs in the MLflow of ``mlflow_settings``, runtimes
    of ``inventory``, ``s3://`` files on the object storage of ``s3``. Reads ``chunk_rows`` rows at a
    time and reports progress every ``progress_every`` chunks."""
    registry = ModelRegistry(mlflow_settings)

    def run_batch_job(data: BatchJobInput, task: TaskContext) -> BatchJobOutput:
        with registry_outcomes():
            record = _deployment(registry, inventory, data)
            runtime = _runtime(inventory, record, data.tag)
            task.progress("batch deployment found", model=record.model, version=record.version,
                          runtime=runtime.name, stage=record.stage, since=record.since)
            with _scoring_outcomes({"MODEL_ID": record.model, "MODEL_VERSION": record.version,
                                    "RUNTIME": runtime.name}):
                return _run(registry, mlflow_settings, s3, record, runtime, data, task, chunk_rows, progress_every)

    return run_batch_job


def _deployment(registry: ModelRegistry, inventory: RuntimeInventory, data: BatchJobInput) -> DeploymentRecord:
    record = batch_deployment_record(registry, data.tag, data.model_stage)
    if record is None:
        where = f" in stage {data.model_stage.upper()}" if data.model_stage else ""
        known = ("" if data.model_stage is None or data.model_stage.upper() in inventory.stages
                 else f" (the stages are {', '.join(inventory.stages)})")
        raise BusinessError(NO_BATCH_DEPLOYMENT, f"no version of a model with service tag {data.tag!r} is deployed "
                                                 f"as batch{where}{known}")
    return record


def _runtime(inventory: RuntimeInventory, record: DeploymentRecord, tag: str) -> Runtime:
    """The runtime the version was deployed to, else the first batch runtime for ``tag`` in its stage."""
    fitting = [runtime for runtime in inventory.matching(tag, record.stage) if runtime.mode == "batch"]
    chosen = next((runtime for runtime in fitting if runtime.name == record.runtime), None)
    if chosen is not None or fitting:
        return chosen or fitting[0]
    deployed_to = inventory.get(record.runtime)
    why = ("is not in the inventory" if deployed_to is None
           else "is online, not batch" if deployed_to.mode != "batch"
           else f"does not serve {tag!r}" if tag not in deployed_to.service_tags
           else f"is in stage {deployed_to.stage}")
    raise BusinessError(NO_RUNTIME, (
        f"no batch runtime in {inventory.source} serves service tag {tag!r} in stage {record.stage}: version "
        f"{record.version} of model {record.model!r} was deployed as batch to runtime {record.runtime}, which {why}"),
        {"MODEL_ID": record.model, "MODEL_VERSION": record.version})


@contextmanager
def _scoring_outcomes(variables: Mapping[str, str]) -> Iterator[None]:
    """Scoring errors as BPMN errors, with the version and runtime set on the process."""
    try:
        yield
    except ScoringError as exc:
        raise BusinessError(_CODES[type(exc)], str(exc), variables) from exc
    except ModelNotLoadable as exc:
        raise BusinessError(SCORING_FAILED, exc.message, variables) from exc


def _run(registry: ModelRegistry, settings: MlflowSettings, s3: S3Settings | None, record: DeploymentRecord,
         runtime: Runtime, data: BatchJobInput, task: TaskContext, chunk_rows: int,
         progress_every: int) -> BatchJobOutput:
    with ScoringJob(data.input_file, data.output_file, mlflow=settings, s3=s3, overwrite=data.overwrite,
                    label_column=data.label_column, keep_columns=data.keep_columns, chunk_rows=chunk_rows) as job, \
            registry.loaded_model(record.model, record.version) as model:
        task.progress("model loaded", model=model.name, version=model.version, flavor=model.flavor)
        summary = job.run(model, progress=task.progress, progress_every=progress_every)
        task.progress("scored", rows=summary.rows_out, chunks=summary.chunks, seconds=round(summary.seconds, 2))
        run_id = registry.log_job_run(
            run_name=f"batch {record.model} v{record.version}",
            tags=_run_tags(record, data, task),
            params={"model": record.model, "version": record.version, "runtime": runtime.name,
                    "stage": runtime.stage, "input": data.input_file, "output": data.output_file,
                    "overwrite": data.overwrite, "label_column": data.label_column or "",
                    "flavor": model.flavor, "chunk_rows": chunk_rows},
            metrics={"rows_in": summary.rows_in, "rows_out": summary.rows_out, "seconds": summary.seconds},
        )
    task.progress("batch job recorded", run_id=run_id, output=summary.output_uri)
    return BatchJobOutput(model_id=record.model, model_version=record.version, runtime=runtime.name,
                          rows_in=summary.rows_in, rows_out=summary.rows_out,
                          scoring_seconds=round(summary.seconds, 3), output_file=summary.output_uri,
                          batch_run_id=run_id)


def _run_tags(record: DeploymentRecord, data: BatchJobInput, task: TaskContext) -> dict[str, str]:
    tags = {"mlc.batch_job": "true", "mlc.job": "batch", "mlc.model_name": record.model,
            "mlc.model_version": record.version, "mlc.service_tag": data.tag, "mlc.task_id": task.task_id}
    if task.process_instance_id:
        tags["mlc.process_instance_id"] = task.process_instance_id
    return tags


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load_inventory(load(RuntimeSettings).file), load(S3Settings))


TOPIC = Topic(
    name="run-batch-job",
    input_model=BatchJobInput,
    output_model=BatchJobOutput,
    build_handler=_default_handler,
    description="score a file with the version deployed as batch for a service tag, record the job in MLflow",
)
