"""Train the sample breast-cancer classifier and register it as a new version of ``--model-name``.

Run as an MLflow Project (``MLFLOW_RUN_ID`` names the run MLflow created for the job). The new
version carries its own test data (``test_data``, ``label_column`` tags), so the deploy process tests
what this run held out, and its training data as the monitors' baseline (``mlc/train_data.csv``), both
with the sample's protected attribute ``patient_group``, drawn as the sample draws it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--regularization", type=float, default=1.0)
    parser.add_argument("--test-size", type=float, default=0.3)
    args = parser.parse_args()

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=args.test_size,
                                                        random_state=11, stratify=labels)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=args.regularization, max_iter=1_000))
    pipeline.fit(x_train, y_train)
    groups = np.random.default_rng(5).choice(["clinic north", "clinic south"], size=len(features), p=[0.55, 0.45])
    group_of = dict(zip(features.index, groups, strict=True))
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as directory:
        mlflow.log_params({"train_rows": len(x_train)})
        mlflow.log_metric("train_accuracy", float(pipeline.score(x_train, y_train)))
        for name, frame, frame_labels in (("train_data", x_train, y_train), ("test_data", x_test, y_test)):
            data_file = Path(directory) / f"{name}.csv"
            frame.assign(patient_group=frame.index.map(group_of), label=frame_labels.to_numpy()).to_csv(
                data_file, index=False)
            mlflow.log_artifact(str(data_file), artifact_path="mlc")
        info = mlflow.sklearn.log_model(
            pipeline, name="model", registered_model_name=args.model_name,
            signature=infer_signature(x_test, pipeline.predict(x_test)), input_example=x_test.head(3),
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True))
        client = MlflowClient()
        version = str(info.registered_model_version)
        test_data = f"runs:/{run.info.run_id}/mlc/test_data.csv"
        client.set_model_version_tag(args.model_name, version, "test_data", test_data)
        client.set_model_version_tag(args.model_name, version, "label_column", "label")
        print(f"registered version {version} of {args.model_name} from run {run.info.run_id}")


if __name__ == "__main__":
    main()
