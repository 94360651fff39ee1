"""The fleet's one client of MLflow: the model registry and tracking server (:mod:`.registry`) and the
files it stores (:mod:`.artifacts`). No other module of the fleet imports MLflow; the sample model's
training code (:mod:`workers.fleet.sample`) logs through MLflow's fluent API as any model author would.

The package's names are the registry's public ones (``registry.__all__``), kept in that one list.
"""

from workers.clients.mlflow import registry
from workers.clients.mlflow.registry import *  # noqa: F403

__all__ = list(registry.__all__)
