"""A sample model to try the processes on: a breast-cancer classifier registered in MLflow the way the
domain expects a model to be (service tag, test data, test criteria, ``deployed`` alias), with every
monitor of the metrics job asked for (:mod:`workers.domain.monitors`).

The data set ships with scikit-learn, so nothing is downloaded. Its files carry a synthetic
``patient_group`` (two clinics, drawn at random, which the model does not read) as the protected
attribute bias is measured on, and the training data is logged as the baseline. The drifted data is
the test data with :data:`DRIFTED_FEATURES` shifted by one training standard deviation, as a changed
imaging device might: drift and stability flag them, and the criteria fail it on its PSI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from workers.clients.mlflow.registry import DEPLOYED_ALIAS, ModelNotFound, ModelRegistry, VersionRecord
from workers.config import MlflowSettings
from workers.domain.deployments import stage_alias
from workers.harness.scratch import scratch_dir

__all__ = ["SampleModel", "register_sample_model", "sample_criteria", "sample_training_project"]

LABEL_COLUMN = "label"
SAMPLE_STAGE = "DEV"
"""The stage the sample is in service at (aliases ``deployed`` and ``deployed-dev``): the champion of new versions."""
GROUP_COLUMN = "patient_group"
MONITORS = "performance,drift,stability,bias"
DRIFTED_FEATURES = tuple(f"{kind} {feature}" for kind in ("mean", "worst")
                         for feature in ("texture", "smoothness", "compactness", "symmetry", "fractal dimension"))


@dataclass(frozen=True)
class SampleModel:
    """The registered sample: its name and version, and the URIs of its two labelled data files."""

    name: str
    version: str
    test_data_uri: str
    drifted_data_uri: str


def sample_criteria() -> bytes:
    """The packaged test criteria (``workers/fleet/sample/test_criteria.dmn``): AUC at least 0.7, F1 at least 0.6,
    PSI at most 0.25 and at most 30 % of the features drifted, disparities (where computed) within 0.8–1.25."""
    return _packaged("test_criteria.dmn")


def sample_comparator() -> bytes:
    """The packaged champion/challenger comparator (``workers/fleet/sample/comparator.dmn``): the candidate
    may not be more than 0.02 of AUC or 0.05 of F1 score below the champion."""
    return _packaged("comparator.dmn")


def sample_warm_up_sla() -> bytes:
    """The packaged warm-up SLA (``workers/fleet/sample/warm_up_sla.dmn``): no replayed request failed, p99
    latency at most 500 ms and, with a champion, at least 90 % of its answers given again."""
    return _packaged("warm_up_sla.dmn")


def _packaged(name: str) -> bytes:
    return resources.files("workers.fleet.sample").joinpath(name).read_bytes()


def sample_training_project() -> str:
    """The folder of the sample's MLflow Project (``workers/fleet/sample/training``), which retrains it."""
    return str(resources.files("workers.fleet.sample").joinpath("training"))


def register_sample_model(
    settings: MlflowSettings, name: str = "breast-cancer-classifier", service: str = "cancer-screening"
) -> SampleModel:
    """Train and register the sample model as ``name`` with the ``deployed`` alias on its version, and
    the model tag ``training_project`` naming :func:`sample_training_project`.

    Idempotent: when ``name`` already has a deployed version, that version is returned untrained.
    Logs through MLflow's fluent API, which reads the global tracking URI: it is pointed at
    ``settings`` for the call and restored after, so do not run this beside other MLflow work.
    """
    registry = ModelRegistry(settings)
    try:
        deployed = registry.get_version_by_alias(name, DEPLOYED_ALIAS)
    except ModelNotFound:
        deployed = None
    if deployed is not None:
        return _sample(deployed)

    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=0.3, random_state=7,
                                                        stratify=labels)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(x_train, y_train)
    groups = np.random.default_rng(5).choice(["clinic north", "clinic south"], size=len(features), p=[0.55, 0.45])
    group_of = dict(zip(features.index, groups, strict=True))

    def labelled(frame: Any, labels: Any) -> Any:
        return frame.assign(**{GROUP_COLUMN: frame.index.map(group_of), LABEL_COLUMN: labels.to_numpy()})

    train_data = labelled(x_train, y_train)
    test_data = labelled(x_test, y_test)
    shifted = {name: x_test[name] + x_train[name].std() for name in DRIFTED_FEATURES}
    drifted_data = labelled(x_test.assign(**shifted), y_test)

    with scratch_dir("sample") as directory, _global_tracking_uri(settings.tracking_uri):
        folder = Path(directory)
        train_data.to_csv(folder / "train_data.csv", index=False)
        test_data.to_csv(folder / "test_data.csv", index=False)
        drifted_data.to_csv(folder / "drifted_data.csv", index=False)
        (folder / "test_criteria.dmn").write_bytes(sample_criteria())
        (folder / "comparator.dmn").write_bytes(sample_comparator())
        (folder / "warm_up_sla.dmn").write_bytes(sample_warm_up_sla())
        with mlflow.start_run(experiment_id=registry.experiment_id(), run_name=f"train {name}",
                              tags={"mlc.job": "train-sample"}) as run:
            mlflow.log_params({"model": "StandardScaler + LogisticRegression", "train_rows": len(x_train)})
            info = mlflow.sklearn.log_model(
                pipeline, name="model", registered_model_name=name,
                signature=infer_signature(x_test, pipeline.predict(x_test)), input_example=x_test.head(3),
                # explicit: inferring them runs the model in a subprocess, seconds per call
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True))
            for file_name in ("train_data.csv", "test_data.csv", "drifted_data.csv", "test_criteria.dmn",
                              "comparator.dmn", "warm_up_sla.dmn"):
                mlflow.log_artifact(str(folder / file_name), artifact_path="mlc")
    version = str(info.registered_model_version)
    run_id = run.info.run_id
    registry.set_model_tag(name, "service", service)
    registry.set_model_tag(name, "training_project", sample_training_project())
    registry.set_version_tag(name, version, "test_data", f"runs:/{run_id}/mlc/test_data.csv")
    registry.set_version_tag(name, version, "test_criteria", f"runs:/{run_id}/mlc/test_criteria.dmn")
    registry.set_version_tag(name, version, "comparator", f"runs:/{run_id}/mlc/comparator.dmn")
    registry.set_version_tag(name, version, "warm_up_sla", f"runs:/{run_id}/mlc/warm_up_sla.dmn")
    registry.set_version_tag(name, version, "label_column", LABEL_COLUMN)
    registry.set_version_tag(name, version, "monitors", MONITORS)
    registry.set_version_tag(name, version, "protected_attributes", GROUP_COLUMN)
    registry.set_alias(name, stage_alias(SAMPLE_STAGE), version)
    registry.set_alias(name, DEPLOYED_ALIAS, version)
    return _sample(registry.get_version(name, version))


def _sample(version: VersionRecord) -> SampleModel:
    return SampleModel(
        name=version.name,
        version=version.version,
        test_data_uri=version.tags.get("test_data", f"runs:/{version.run_id}/mlc/test_data.csv"),
        drifted_data_uri=f"runs:/{version.run_id}/mlc/drifted_data.csv",
    )


@contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    import mlflow.tracking

    previous = mlflow.tracking.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.tracking.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.tracking.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it
