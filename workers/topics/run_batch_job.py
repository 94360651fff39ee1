"""Topic ``run-batch-job``: score a data file with a model version on a batch runtime, record the job.

Reads ``MODEL_ID``, ``MODEL_VERSION`` (from ``get-batch-deployment``), ``RUNTIME`` (from
``get-compatible-runtime``), ``INPUT_FILE`` and ``OUTPUT_FILE`` (CSV or Parquet by suffix; a local path,
``file://`` or ``s3://bucket/key``, and the input may also be an MLflow artifact URI), ``OVERWRITE``
(default false), optional ``LABEL_COLUMN`` (dropped before scoring), ``KEEP_COLUMNS`` (the input
columns copied to the output, a list or comma-separated; default all) and ``TAG`` (recorded with the
job). The file is scored in chunks (:mod:`workers.domain.scoring`, ``scoring`` progress events), the job
recorded as an MLflow run of the fleet's experiment tagged ``mlc.batch_job=true``, and only then is the
output moved into place: a job that fails, or that is retried because MLflow was down, leaves no
output behind.

Writes ``ROWS_IN``, ``ROWS_OUT``, ``SCORING_SECONDS``, ``OUTPUT_FILE`` and ``BATCH_RUN_ID``. A job that
cannot run is a BPMN error naming the cause: ``PATH_NOT_ALLOWED`` (a file outside the data roots,
:mod:`workers.domain.paths`; nothing is read or written), ``INPUT_UNREADABLE``, ``OUTPUT_EXISTS``,
``OUTPUT_UNWRITABLE`` or ``SCORING_FAILED`` (the model cannot be loaded or cannot score the data).
MLflow unreachable is a retry; a ``RUNTIME`` the inventory no longer has as batch is an incident.

The runtime's ``kind`` chooses the scorer: ``in-process`` (:class:`~workers.domain.scoring.ScoringJob`) or
``spark`` (:class:`~workers.domain.spark_scoring.SparkScoringJob`, on the runtime's master; the run is also
tagged ``mlc.spark_application_id`` and ``mlc.spark_master``). A Spark session that cannot start (pyspark
missing, master unreachable) is a failure naming why: retried, then an incident.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from workers.clients.mlflow.registry import ModelNotLoadable, ModelRegistry
from workers.clients.spark import SparkUnavailable
from workers.config import DataSettings, MlflowSettings, RuntimeSettings, S3Settings, load
from workers.domain.datafiles import DEFAULT_CHUNK_ROWS
from workers.domain.models import registry_outcomes
from workers.domain.paths import PathNotAllowed, confine
from workers.domain.runtimes import Runtime, current_inventory, load_inventory
from workers.domain.scoring import (
    InputUnreadable,
    ModelFailed,
    OutputExists,
    OutputUnwritable,
    ScoringError,
    ScoringJob,
)
from workers.domain.spark_scoring import SparkScoringJob, SparkScoringSummary
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "BatchJobInput", "BatchJobOutput", "make_handler"]

SCORING_FAILED = "SCORING_FAILED"
_CODES: dict[type[ScoringError], str] = {
    InputUnreadable: "INPUT_UNREADABLE",
    OutputExists: "OUTPUT_EXISTS",
    OutputUnwritable: "OUTPUT_UNWRITABLE",
    ModelFailed: SCORING_FAILED,
}


class BatchJobInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version to score with."""
    runtime: str = Field(alias="RUNTIME", min_length=1)
    """The batch runtime of deploy/runtimes.yaml (from get-compatible-runtime)."""
    tag: str | None = Field(None, alias="TAG")
    """Service tag of the model, recorded with the job."""
    input_file: str = Field(alias="INPUT_FILE", min_length=1)
    """CSV or Parquet to score: local path (inside MLC_DATA_ROOTS) or s3:// URI."""
    output_file: str = Field(alias="OUTPUT_FILE", min_length=1)
    """Where the scored rows go: local path or s3:// URI."""
    overwrite: bool = Field(False, alias="OVERWRITE")
    """Replace OUTPUT_FILE when it exists."""
    label_column: str | None = Field(None, alias="LABEL_COLUMN")
    """A label column to leave out of the model's input."""
    keep_columns: list[str] | None = Field(None, alias="KEEP_COLUMNS")
    """Input columns copied to the output (JSON list or names separated by commas)."""

    @field_validator("label_column")
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
    rows_in: int = Field(alias="ROWS_IN")
    """Rows read."""
    rows_out: int = Field(alias="ROWS_OUT")
    """Rows written."""
    scoring_seconds: float = Field(alias="SCORING_SECONDS")
    """How long the scoring took."""
    output_file: str = Field(alias="OUTPUT_FILE")
    """The file written."""
    batch_run_id: str = Field(alias="BATCH_RUN_ID")
    """MLflow run id recording the job."""


Handler = Callable[[BatchJobInput, TaskContext], BatchJobOutput]


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path, s3: S3Settings | None = None, *,
                 data_roots: DataSettings | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 progress_every: int = 10) -> Handler:
    """The ``run-batch-job`` handler: versions and job runs in the MLflow of ``mlflow_settings``, runtimes
    of the inventory at ``inventory_file``, ``s3://`` files on the object storage of ``s3``, files only
    where ``data_roots`` allows (default: from the environment). Reads ``chunk_rows`` rows at a time and
    reports progress every ``progress_every`` chunks."""
    registry = ModelRegistry(mlflow_settings)
    load_inventory(inventory_file)  # a broken inventory stops the worker at start
    allowed = data_roots or load(DataSettings)

    def run_batch_job(data: BatchJobInput, task: TaskContext) -> BatchJobOutput:
        runtime = _batch_runtime(inventory_file, data.runtime)
        data = _confined(data, allowed)
        with registry_outcomes(), _scoring_outcomes():
            return _run(registry, mlflow_settings, s3, runtime, data, task, chunk_rows, progress_every)

    return run_batch_job


def _batch_runtime(inventory_file: Path, name: str) -> Runtime:
    inventory = current_inventory(inventory_file)
    runtime = inventory.get(name)
    if runtime is None or runtime.mode != "batch":
        raise FatalError(f"runtime {name} is not a batch runtime of {inventory.source} (edited since "
                         "get-compatible-runtime chose it?)")
    return runtime


def _confined(data: BatchJobInput, allowed: DataSettings) -> BatchJobInput:
    """``data`` with its files as :func:`confine` resolves them; a refused file is ``PATH_NOT_ALLOWED``."""
    try:
        return data.model_copy(update={"input_file": confine(data.input_file, allowed),
                                       "output_file": confine(data.output_file, allowed)})
    except PathNotAllowed as exc:
        raise BusinessError(exc.code, exc.message) from exc


@contextmanager
def _scoring_outcomes() -> Iterator[None]:
    """Scoring errors as the BPMN errors that name them."""
    try:
        yield
    except ScoringError as exc:
        raise BusinessError(_CODES[type(exc)], str(exc)) from exc
    except ModelNotLoadable as exc:
        raise BusinessError(SCORING_FAILED, exc.message) from exc
    except SparkUnavailable as exc:
        raise RetryableError(str(exc)) from exc


def _scoring_job(runtime: Runtime, data: BatchJobInput, settings: MlflowSettings, s3: S3Settings | None,
                 chunk_rows: int) -> ScoringJob | SparkScoringJob:
    """The scorer the runtime's kind names: in this process, or on its Spark master."""
    options: dict[str, Any] = {"mlflow": settings, "s3": s3, "overwrite": data.overwrite,
                               "label_column": data.label_column, "keep_columns": data.keep_columns,
                               "chunk_rows": chunk_rows}
    if runtime.kind == "spark" and runtime.spark is not None:
        return SparkScoringJob(data.input_file, data.output_file, spark_spec=runtime.spark, **options)
    return ScoringJob(data.input_file, data.output_file, **options)


def _run(registry: ModelRegistry, settings: MlflowSettings, s3: S3Settings | None, runtime: Runtime,
         data: BatchJobInput, task: TaskContext, chunk_rows: int, progress_every: int) -> BatchJobOutput:
    with _scoring_job(runtime, data, settings, s3, chunk_rows) as job, \
            registry.loaded_model(data.model_id, data.model_version) as model:
        task.progress("model loaded", model=model.name, version=model.version, flavor=model.flavor)
        summary = job.run(model, progress=task.progress, progress_every=progress_every)
        task.progress("scored", rows=summary.rows_out, chunks=summary.chunks, seconds=round(summary.seconds, 2))
        spark_tags = ({"mlc.runtime_kind": "spark", "mlc.spark_application_id": summary.application_id,
                       "mlc.spark_master": summary.master} if isinstance(summary, SparkScoringSummary)
                      else {"mlc.runtime_kind": runtime.kind})
        run_id = registry.log_job_run(
            run_name=f"batch {data.model_id} v{data.model_version}",
            tags={**_run_tags(data, task), **spark_tags},
            params={"model": data.model_id, "version": data.model_version, "runtime": runtime.name,
                    "stage": runtime.stage, "input": data.input_file, "output": data.output_file,
                    "overwrite": data.overwrite, "label_column": data.label_column or "",
                    "flavor": model.flavor, "chunk_rows": chunk_rows},
            metrics={"rows_in": summary.rows_in, "rows_out": summary.rows_out, "seconds": summary.seconds},
        )
    task.progress("batch job recorded", run_id=run_id, output=summary.output_uri)
    return BatchJobOutput(rows_in=summary.rows_in, rows_out=summary.rows_out,
                          scoring_seconds=round(summary.seconds, 3), output_file=summary.output_uri,
                          batch_run_id=run_id)


def _run_tags(data: BatchJobInput, task: TaskContext) -> dict[str, str]:
    tags = {"mlc.batch_job": "true", "mlc.job": "batch", "mlc.model_name": data.model_id,
            "mlc.model_version": data.model_version, "mlc.service_tag": data.tag or "", "mlc.task_id": task.task_id}
    if task.process_instance_id:
        tags["mlc.process_instance_id"] = task.process_instance_id
    return tags


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load(RuntimeSettings).file, load(S3Settings),
                        data_roots=load(DataSettings))


TOPIC = Topic(
    name="run-batch-job",
    input_model=BatchJobInput,
    output_model=BatchJobOutput,
    build_handler=_default_handler,
    description="score a file with a model version on a batch runtime, in chunks; record the job in MLflow",
    bpmn_errors=(
        BpmnError("PATH_NOT_ALLOWED", "INPUT_FILE or OUTPUT_FILE outside the data roots (MLC_DATA_ROOTS) or the "
                                      "allowed buckets"),
        BpmnError("INPUT_UNREADABLE", "INPUT_FILE cannot be read as CSV or Parquet"),
        BpmnError("OUTPUT_EXISTS", "OUTPUT_FILE exists and OVERWRITE is not true"),
        BpmnError("OUTPUT_UNWRITABLE", "OUTPUT_FILE cannot be written"),
        BpmnError("SCORING_FAILED", "the model cannot be loaded or fails on the rows"),
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
    ),
)
