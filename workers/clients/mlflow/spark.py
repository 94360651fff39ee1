"""A model version as a Spark UDF: MLflow's ``mlflow.pyfunc.spark_udf`` over the version's files.

The files are downloaded once by the worker (:meth:`~workers.clients.mlflow.registry.ModelRegistry.download_model`)
and ``spark_udf`` ships them to the executors itself; the executors run the model with their own Python
(``env_manager="local"``), which must have the model's libraries, as this worker has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["model_udf"]


def model_udf(spark: Any, model_dir: Path, result_type: str) -> Any:
    """The pyfunc model in ``model_dir`` as a Spark UDF returning ``result_type`` (a Spark SQL type such as
    ``double``, ``bigint``, ``string``); called with a struct of the feature columns, the model gets them as
    a pandas frame with their names."""
    import mlflow.pyfunc

    return mlflow.pyfunc.spark_udf(spark, str(model_dir), result_type=result_type, env_manager="local")
