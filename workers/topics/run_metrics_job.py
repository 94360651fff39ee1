"""Topic ``run-metrics-job``: score labelled data with a model version and compute its metrics.

Reads ``MODEL_ID``, ``MODEL_VERSION``, ``INPUT_FILE`` (labelled CSV or Parquet), optional
``OUTPUT_FILE``, ``LABEL_COLUMN`` (default ``label``) and ``CHAMPION_VERSION`` (the version in service
to compare with: scored on the same chunks, its metrics and the deltas join the result, see
:mod:`workers.domain.monitors.comparison`). Scores the file chunk by chunk, keeping
only labels and scores in memory, and writes the input columns plus ``prediction`` (and ``score``, the
positive class probability of a binary classifier) to ``OUTPUT_FILE``, or, without one, to the
artifact ``output/scores.csv`` of the job's run. Metrics come from scikit-learn: ``auc`` (-99 when
not computable), ``accuracy``, ``precision``, ``recall``, ``f1_score`` for classifiers; ``rmse``,
``mae``, ``r2_score`` for regressions.

The version's tags ask for more monitors (:mod:`workers.domain.monitors`; the BPMN does not change):
``monitors`` (comma list among ``performance``, ``drift``, ``stability``, ``bias``; default
``performance``), ``protected_attributes`` (bias needs them), ``reference_groups``
(``sex=male,age_group=40-60``; default each attribute's largest group) and ``baseline_data`` (the
data drift and stability compare with; default the run's ``mlc/train_data.csv`` or ``.parquet``).
The baseline is read in chunks first (and scored, for the score's PSI), then the test data; both
kept as histograms, category counts and bounded samples. Drift: Kolmogorov–Smirnov and chi-square
tests and Jensen–Shannon distances (SciPy); stability: PSI of the score and of every feature (CSI);
bias: rates and disparities by group (fairlearn).

``METRICS`` is then a ModelOp-shaped test result (:mod:`workers.domain.monitors.results`): the flat
values above and the monitors' (``max_psi``, ``drift_share``, ``fpr_disparity``, ...), plus the lists
``data_drift``, ``stability`` and ``bias`` of test entries. The whole result is the run's artifact
``test_results.json`` (what a redelivered task returns), every number in it an MLflow metric.

The job is recorded as an MLflow run tagged ``mlc.job=metrics`` with the model's name and version,
and the version's tag ``mlc.last_metrics_run`` points at it. An optional ``RUNTIME`` naming a runtime of kind
``spark`` in ``deploy/runtimes.yaml`` scores the test data on that Spark master
(:func:`workers.domain.spark_scoring.spark_scored_chunks`), the run tagged with the Spark application id;
the baseline and the champion are scored in this process; any other ``RUNTIME`` or none: all in this process.

Writes ``METRICS``, ``METRICS_RUN_ID``, ``OUTPUT_FILE`` and ``ROWS_SCORED``. A job that cannot run (data
missing or malformed, no label column, model unknown or not loadable, monitors asked without what they
need) is the BPMN error ``TEST_JOB_FAILED`` naming the cause; a file (test data, output or baseline)
outside the data roots (:mod:`workers.domain.paths`) is ``PATH_NOT_ALLOWED``, nothing read or written;
an ``OUTPUT_FILE`` that exists is ``OUTPUT_EXISTS``: a back test never overwrites a file. A local
output appears only once the job's run is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
from pydantic import Field, field_validator

from workers.clients import objectstore
from workers.clients.mlflow import artifacts
from workers.clients.mlflow.registry import (
    LoadedModel,
    ModelNotFound,
    ModelNotLoadable,
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
    VersionRecord,
)
from workers.clients.spark import SparkUnavailable
from workers.config import DataSettings, MlflowSettings, RuntimeSettings, S3Settings, load
from workers.domain.datafiles import (
    DEFAULT_CHUNK_ROWS,
    ChunkWriter,
    DataFileError,
    TargetExists,
    data_format,
    read_chunks,
)
from workers.domain.metrics import MetricsError, MetricsKind, ScoredLabels, compute_metrics, kind_of_labels
from workers.domain.models import BASELINE_DATA_ARTIFACTS, baseline_data
from workers.domain.monitors import (
    BiasError,
    MonitorData,
    MonitorError,
    MonitorRequest,
    champion_comparison,
    mlflow_metrics,
    monitor_request,
    scalars,
    score_values,
)
from workers.domain.paths import PathNotAllowed, confine
from workers.domain.runtimes import SparkSpec, current_inventory
from workers.domain.scoring import Predictor, ScoringError, with_predictions
from workers.domain.spark_scoring import spark_scored_chunks, split_scores
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.scratch import scratch_dir
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "MetricsJobInput", "MetricsJobOutput", "make_handler"]

FAILED = "TEST_JOB_FAILED"
OUTPUT_EXISTS = "OUTPUT_EXISTS"
DEFAULT_OUTPUT_ARTIFACT = "output/scores.csv"
LAST_RUN_TAG = "mlc.last_metrics_run"
RESULT_ARTIFACT = "test_results.json"


class MetricsJobInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version to test."""
    input_file: str = Field(alias="INPUT_FILE", min_length=1)
    """Labelled data to score: local path (inside MLC_DATA_ROOTS), s3:// or runs:/ URI."""
    output_file: str | None = Field(None, alias="OUTPUT_FILE")
    """Where to write the scored rows; never overwritten."""
    label_column: str = Field("label", alias="LABEL_COLUMN", min_length=1)
    """The label column of INPUT_FILE."""
    champion_version: str | None = Field(None, alias="CHAMPION_VERSION")
    """A version scored beside it on the same data (champion/challenger)."""
    runtime: str | None = Field(None, alias="RUNTIME")
    """A batch runtime of kind spark (deploy/runtimes.yaml) to score the test data on; none: in this process."""

    @field_validator("output_file", "champion_version", "runtime")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class MetricsJobOutput(TaskOutput):
    metrics: dict[str, Any] = Field(alias="METRICS")
    """The test result: metrics, monitors' values and tables (ModelOp's shape)."""
    metrics_run_id: str = Field(alias="METRICS_RUN_ID")
    """MLflow run id recording the metrics."""
    output_file: str = Field(alias="OUTPUT_FILE")
    """The scored rows' file."""
    rows_scored: int = Field(alias="ROWS_SCORED")
    """Rows scored."""


Handler = Callable[[MetricsJobInput, TaskContext], MetricsJobOutput]


def make_handler(settings: MlflowSettings, *, data_roots: DataSettings | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, progress_every: int = 10,
                 inventory_file: Path | None = None, s3: S3Settings | None = None) -> Handler:
    """The ``run-metrics-job`` handler against the MLflow of ``settings``, files only where
    ``data_roots`` allows (default: from the environment), ``s3://`` files on the object storage of ``s3``
    (default: from the environment).

    Reads ``chunk_rows`` rows at a time and reports progress every ``progress_every`` chunks. A ``RUNTIME``
    that the inventory at ``inventory_file`` has as a ``spark`` runtime scores on its Spark master.
    """
    registry = ModelRegistry(settings)
    allowed = data_roots or load(DataSettings)

    def run_metrics_job(data: MetricsJobInput, task: TaskContext) -> MetricsJobOutput:
        try:
            data = data.model_copy(update={
                "input_file": confine(data.input_file, allowed),
                "output_file": None if data.output_file is None else confine(data.output_file, allowed)})
            spark_spec = _spark_runtime(inventory_file, data.runtime)
            return _run(registry, settings, allowed, data, task, chunk_rows, progress_every, spark_spec, s3)
        except PathNotAllowed as exc:
            raise BusinessError(exc.code, exc.message) from exc
        except TargetExists as exc:
            raise BusinessError(OUTPUT_EXISTS, str(exc)) from exc
        except DataFileError as exc:
            raise BusinessError(FAILED, str(exc)) from exc
        except (ModelNotFound, ModelNotLoadable) as exc:
            raise BusinessError(FAILED, exc.message) from exc
        except RegistryUnavailable as exc:
            raise RetryableError(exc.message) from exc
        except ScoringError as exc:
            raise BusinessError(FAILED, str(exc)) from exc
        except SparkUnavailable as exc:
            raise RetryableError(str(exc)) from exc

    return run_metrics_job


def _spark_runtime(inventory_file: Path | None, name: str | None) -> SparkSpec | None:
    """The Spark master of ``RUNTIME`` when the inventory has it as a ``spark`` runtime; else ``None``:
    scored in this process."""
    if inventory_file is None or name is None:
        return None
    runtime = current_inventory(inventory_file).get(name)
    return runtime.spark if runtime is not None and runtime.kind == "spark" else None


RECORDING_S = 120.0
"""How long after its start an earlier delivery's unfinished run counts as still being recorded (beyond:
that delivery died, and this one makes the run)."""


def _recorded(registry: ModelRegistry, settings: MlflowSettings, data: MetricsJobInput,
              task: TaskContext) -> MetricsJobOutput | None:
    """The output of this task's metrics run when an earlier delivery of the task recorded it already
    (its completion was lost: the engine restarted, the lock expired), so that no second run is made.

    An earlier delivery may still be recording it (its lock expired while the engine was down): a run of
    this task started less than :data:`RECORDING_S` ago and still running is waited for."""
    query = f"tags.`mlc.task_id` = '{task.task_id}' and tags.`mlc.job` = 'metrics'"
    while True:
        runs = registry.search_runs(query)
        run = next((run for run in runs if run.status == "FINISHED" and "rows" in run.params), None)
        recording = [other for other in runs if other.status == "RUNNING"
                     and (datetime.now(UTC) - other.started).total_seconds() < RECORDING_S]
        if run is not None or not recording:
            break
        task.progress("an earlier delivery of this task is recording its metrics run; waiting",
                      run_id=recording[0].run_id)
        time.sleep(2)
    if run is None:
        return None
    task.progress("metrics recorded by an earlier delivery of this task", run_id=run.run_id)
    registry.set_version_tag(data.model_id, data.model_version, LAST_RUN_TAG, run.run_id)
    output_file = data.output_file or f"runs:/{run.run_id}/{DEFAULT_OUTPUT_ARTIFACT}"
    return MetricsJobOutput(metrics=_recorded_result(run.run_id, run.metrics, settings),
                            metrics_run_id=run.run_id, output_file=output_file,
                            rows_scored=int(run.params["rows"]))


def _recorded_result(run_id: str, metrics: dict[str, float], settings: MlflowSettings) -> dict[str, Any]:
    """The result a run recorded: its ``test_results.json``, else (a run from before monitors) its metrics."""
    try:
        return json.loads(artifacts.read_bytes(f"runs:/{run_id}/{RESULT_ARTIFACT}", settings))
    except artifacts.ArtifactNotFound:
        return metrics


def _monitors(registry: ModelRegistry, allowed: DataSettings, data: MetricsJobInput,
              version: VersionRecord) -> tuple[MonitorRequest, str | None]:
    """What the version asks to monitor, and the baseline those monitors need (confined like the input)."""
    try:
        request = monitor_request(version.tags)
    except MonitorError as exc:
        raise BusinessError(FAILED, f"model {data.model_id!r} version {data.model_version}: {exc}") from exc
    if not request.needs_baseline:
        return request, None
    found = baseline_data(registry, version)
    if found is None:
        asked = ", ".join(sorted(request.monitors & {"drift", "stability"}))
        raise BusinessError(FAILED, (
            f"model {data.model_id!r} version {data.model_version} asks for {asked} but has no baseline: no tag "
            f"baseline_data and no artifact {' or '.join(BASELINE_DATA_ARTIFACTS)} in run {version.run_id}"))
    baseline = confine(found, allowed)
    data_format(baseline)
    return request, baseline


def _run(registry: ModelRegistry, settings: MlflowSettings, allowed: DataSettings, data: MetricsJobInput,
         task: TaskContext, chunk_rows: int, progress_every: int, spark_spec: SparkSpec | None,
         s3: S3Settings | None) -> MetricsJobOutput:
    recorded = _recorded(registry, settings, data, task)
    if recorded is not None:
        return recorded
    data_format(data.input_file)
    request, baseline = _monitors(registry, allowed, data, registry.get_version(data.model_id, data.model_version))
    if data.output_file is not None:
        data_format(data.output_file)
        _refuse_existing(data.output_file)
    with ExitStack() as stack:
        model = stack.enter_context(registry.loaded_model(data.model_id, data.model_version))
        task.progress("model loaded", model=data.model_id, version=data.model_version, flavor=model.flavor)
        monitors = _monitor_data(request, model, data, baseline)
        scorer = _Scorer(model, monitors)
        champion = _champion(stack, registry, data, task)
        champion_data = data.model_copy(update={"model_version": data.champion_version})
        if baseline is not None and monitors is not None:
            _read_baseline(scorer, monitors, baseline, settings, chunk_rows, s3)
            task.progress("baseline read", baseline=baseline, rows=monitors.baseline.rows if monitors.baseline else 0)
        scratch = Path(stack.enter_context(scratch_dir("metrics")))
        output_path = _local_output_path(data.output_file, scratch)
        in_place = data.output_file is not None and artifacts.is_local(data.output_file)
        # a local output appears only once the run is recorded: a retry after MLflow was down finds no file
        writer = ChunkWriter(output_path, overwrite=not in_place)
        stack.push(_dropped_on_error(writer))
        required = [data.label_column, *_protected(request)]
        spark_run: dict[str, str] = {}
        if spark_spec is None:
            chunks = read_chunks(data.input_file, settings, chunk_rows=chunk_rows, required_columns=required, s3=s3)
        else:
            chunks, application_id = stack.enter_context(spark_scored_chunks(
                data.input_file, model, spark_spec, mlflow=settings, s3=s3, label_column=data.label_column,
                required_columns=required, chunk_rows=chunk_rows))
            spark_run = {"mlc.runtime_kind": "spark", "mlc.spark_application_id": application_id,
                         "mlc.spark_master": spark_spec.master}
            task.progress("scored on spark", application_id=application_id)
        for number, chunk in enumerate(chunks, start=1):
            scored_already = None
            if spark_spec is not None:
                chunk, *predicted = split_scores(chunk)
                scored_already = (predicted[0], predicted[1])
            if champion is not None:
                champion.score(chunk, champion_data, first_row=writer.rows)
            writer.write(scorer.score(chunk, data, first_row=writer.rows, scored=scored_already))
            if number % progress_every == 0:
                task.progress("scoring", chunks=number, rows=writer.rows)
        rows = writer.rows
        scored = scorer.results()
        task.progress("scored", rows=rows, kind=scored.kind)
        try:
            metrics = compute_metrics(scored)
            result = monitors.result(scored, metrics) if monitors is not None else metrics
            if champion is not None and data.champion_version is not None:
                compared = champion_comparison(metrics, compute_metrics(champion.results()), data.champion_version)
                result = {**result, **compared.flat, compared.section: compared.entries}
        except (MetricsError, BiasError) as exc:
            raise BusinessError(FAILED, str(exc)) from exc
        result_path = scratch / RESULT_ARTIFACT
        result_path.write_text(json.dumps(result, indent=1))
        if not in_place:
            _close(writer)
        if data.output_file is not None and not in_place:
            _upload(registry, output_path, data.output_file)
        if not task.confirm_lock():
            raise RetryableError("this delivery of the task no longer holds its lock (another delivery has it, or "
                                 "the engine cannot be reached): the metrics are not recorded twice")
        run_id = registry.log_job_run(
            run_name=f"metrics {data.model_id} v{data.model_version}",
            tags={**_run_tags(data, task), **spark_run},
            params={"model": data.model_id, "version": data.model_version, "input_file": data.input_file,
                    "output_file": data.output_file or DEFAULT_OUTPUT_ARTIFACT, "label_column": data.label_column,
                    "rows": rows, "flavor": model.flavor, "task_kind": scored.kind},
            metrics=mlflow_metrics(result),
            artifacts={"": result_path, **({} if data.output_file else
                                            {str(PurePosixPath(DEFAULT_OUTPUT_ARTIFACT).parent): output_path})},
        )
        if in_place:
            _close(writer)
        output_file = data.output_file or f"runs:/{run_id}/{DEFAULT_OUTPUT_ARTIFACT}"
        registry.set_version_tag(data.model_id, data.model_version, LAST_RUN_TAG, run_id)
    task.progress("metrics recorded", run_id=run_id, **scalars(result))
    return MetricsJobOutput(metrics=result, metrics_run_id=run_id, output_file=output_file, rows_scored=rows)


def _champion(stack: ExitStack, registry: ModelRegistry, data: MetricsJobInput, task: TaskContext) -> _Scorer | None:
    """A scorer of the champion, the version in service ``CHAMPION_VERSION`` names, when it is another version."""
    if data.champion_version is None or data.champion_version == data.model_version:
        return None
    try:
        model = stack.enter_context(registry.loaded_model(data.model_id, data.champion_version))
    except (ModelNotFound, ModelNotLoadable) as exc:
        raise BusinessError(FAILED, f"the champion, version {data.champion_version} in service, cannot be "
                                    f"scored beside the candidate: {exc.message}") from exc
    task.progress("champion loaded", model=data.model_id, version=data.champion_version, flavor=model.flavor)
    return _Scorer(model)


def _protected(request: MonitorRequest) -> Sequence[str]:
    return request.protected_attributes if request.asks("bias") else ()


def _monitor_data(request: MonitorRequest, model: LoadedModel, data: MetricsJobInput,
                  baseline: str | None) -> MonitorData | None:
    if request.monitors <= {"performance"}:
        return None
    names = Predictor(model).feature_names
    return MonitorData(request, names, exclude=[data.label_column, *request.protected_attributes],
                       baseline_uri=baseline, test_uri=data.input_file)


def _read_baseline(scorer: _Scorer, monitors: MonitorData, baseline: str, settings: MlflowSettings,
                   chunk_rows: int, s3: S3Settings | None) -> None:
    """The baseline into ``monitors``, scored with the model when stability asks for the score's PSI."""
    required = scorer.predictor.feature_names or ()
    for first_row, chunk in _numbered(read_chunks(baseline, settings, chunk_rows=chunk_rows,
                                                  required_columns=required, s3=s3)):
        scores = None
        if monitors.request.asks("stability"):
            try:
                features = chunk.drop(columns=[name for name in monitors.exclude if name in chunk.columns])
                predictions, probabilities = scorer.predictor.predict(scorer.predictor.features(features))
            except Exception as exc:  # models raise anything on data they cannot take
                model = scorer.predictor.model
                raise BusinessError(FAILED, (
                    f"model {model.name!r} version {model.version} failed to score rows {first_row + 1} to "
                    f"{first_row + len(chunk)} of the baseline {baseline}: {type(exc).__name__}: {exc}")) from exc
            scores = score_values(predictions, probabilities)
        monitors.add_baseline(chunk, scores)


def _numbered(chunks: Iterator[pd.DataFrame]) -> Iterator[tuple[int, pd.DataFrame]]:
    first_row = 0
    for chunk in chunks:
        yield first_row, chunk
        first_row += len(chunk)


def _refuse_existing(output_file: str) -> None:
    """A back test writes new files only: ``OUTPUT_EXISTS`` when something is at ``output_file``
    (checked on local files and object storage; an MLflow artifact URI is the registry's to manage)."""
    located = objectstore.locate(output_file)
    if located is None:
        return
    filesystem, path = located
    try:
        found = filesystem.get_file_info(path).type
    except OSError as exc:
        raise RetryableError(f"{output_file}: cannot check whether the file exists ({exc})") from exc
    if found != pafs.FileType.NotFound:
        raise BusinessError(OUTPUT_EXISTS, f"{output_file}: exists already; a back test does not overwrite files, "
                                           "name a new OUTPUT_FILE")


def _dropped_on_error(writer: ChunkWriter) -> Callable[..., bool]:
    def exit_callback(kind: type[BaseException] | None, *_: object) -> bool:
        if kind is not None:
            writer.abort()
        return False

    return exit_callback


def _close(writer: ChunkWriter) -> None:
    try:
        writer.close()
    except TargetExists as exc:
        raise BusinessError(OUTPUT_EXISTS, str(exc)) from exc


def _local_output_path(output_file: str | None, scratch: Path) -> Path:
    if output_file is None:
        return scratch / PurePosixPath(DEFAULT_OUTPUT_ARTIFACT).name
    if artifacts.is_local(output_file):
        return Path(urlparse(output_file).path) if output_file.startswith("file:") else Path(output_file)
    return scratch / PurePosixPath(urlparse(output_file).path).name


def _upload(registry: ModelRegistry, written: Path, output_file: str) -> None:
    try:
        registry.upload_file(written, output_file)
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        raise BusinessError(FAILED, f"{output_file}: cannot store the scored output ({exc.message})") from exc


def _run_tags(data: MetricsJobInput, task: TaskContext) -> dict[str, str]:
    tags = {"mlc.job": "metrics", "mlc.model_name": data.model_id, "mlc.model_version": data.model_version,
            "mlc.task_id": task.task_id}
    if task.process_instance_id:
        tags["mlc.process_instance_id"] = task.process_instance_id
    return tags


class _Scorer:
    """Scores chunks with the model, keeping only labels, predictions and scores for the metrics."""

    def __init__(self, model: LoadedModel, monitors: MonitorData | None = None) -> None:
        from sklearn.base import is_classifier, is_regressor

        self.predictor = Predictor(model)
        self.monitors = monitors
        self._labels: list[np.ndarray] = []
        self._predictions: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._result: ScoredLabels | None = None
        estimator = self.predictor.estimator
        self._kind: MetricsKind | None = ("regression" if estimator is not None and is_regressor(estimator)
                                       else "classification" if estimator is not None and is_classifier(estimator)
                                       else None)

    def score(self, chunk: pd.DataFrame, data: MetricsJobInput, first_row: int,
              scored: tuple[np.ndarray, np.ndarray | None] | None = None) -> pd.DataFrame:
        """``chunk`` with its predictions (computed here, or ``scored`` already on Spark), which are kept."""
        labels = chunk[data.label_column]
        if labels.isna().any():
            raise DataFileError(f"{data.input_file}: {int(labels.isna().sum())} rows from row {first_row + 1} on "
                                f"have no value in label column {data.label_column!r}")
        features = chunk.drop(columns=[data.label_column])
        missing = self.predictor.missing_features(features.columns)
        if missing:
            raise DataFileError(f"{data.input_file}: the model needs columns the file lacks: {', '.join(missing)}")
        try:
            predictions, scores = scored or self.predictor.predict(self.predictor.features(features))
        except Exception as exc:  # models raise anything on data they cannot take
            raise BusinessError(FAILED, (
                f"model {data.model_id!r} version {data.model_version} failed to score rows {first_row + 1} to "
                f"{first_row + len(chunk)} of {data.input_file}: {type(exc).__name__}: {exc}")) from exc
        if self.monitors is not None:
            self.monitors.add(chunk)
        self._labels.append(labels.to_numpy())
        self._predictions.append(predictions)
        if scores is not None:
            self._scores.append(scores)
        return with_predictions(chunk, predictions, scores)

    def results(self) -> ScoredLabels:
        if self._result is None:
            labels = np.concatenate(self._labels)
            scores = np.concatenate(self._scores) if self._scores else None
            if scores is not None and scores.shape[1] == 2:
                scores = scores[:, 1]
            classes = getattr(self.predictor.estimator, "classes_", None) if self.predictor.probabilities else None
            self._result = ScoredLabels(labels=labels, predictions=np.concatenate(self._predictions), scores=scores,
                                        kind=self._kind or kind_of_labels(labels), classes=classes)
        return self._result


TOPIC = Topic(
    name="run-metrics-job",
    input_model=MetricsJobInput,
    output_model=MetricsJobOutput,
    build_handler=lambda: make_handler(load(MlflowSettings), data_roots=load(DataSettings),
                                       inventory_file=load(RuntimeSettings).file, s3=load(S3Settings)),
    description="score labelled data with a model version, record its metrics as an MLflow run",
    bpmn_errors=(
        BpmnError("TEST_JOB_FAILED", "the job cannot score or measure: unreadable data, model not loadable, a monitor "
                                     "without what it needs (bias without protected_attributes, drift without a "
                                     "baseline)"),
        BpmnError("PATH_NOT_ALLOWED", "a file outside the data roots (MLC_DATA_ROOTS) or the allowed buckets"),
        BpmnError("OUTPUT_EXISTS", "OUTPUT_FILE exists: a back test never overwrites a file"),
    ),
)
