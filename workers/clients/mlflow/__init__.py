"""The fleet's one client of MLflow: the model registry and tracking server (:mod:`.registry`) and the
files it stores (:mod:`.artifacts`). No other module of the fleet imports MLflow; the sample model's
training code (:mod:`workers.fleet.sample`) logs through MLflow's fluent API as any model author would.
"""

from workers.clients.mlflow.registry import (
    DEPLOYED_ALIAS,
    RETRY_POLICY,
    LoadedModel,
    ModelNotFound,
    ModelNotLoadable,
    ModelRecord,
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
    ResourceNotFound,
    RunRecord,
    VersionRecord,
    input_example,
)

__all__ = [
    "DEPLOYED_ALIAS",
    "RETRY_POLICY",
    "LoadedModel",
    "ModelNotFound",
    "ModelNotLoadable",
    "ModelRecord",
    "ModelRegistry",
    "RegistryError",
    "RegistryUnavailable",
    "ResourceNotFound",
    "RunRecord",
    "VersionRecord",
    "input_example",
]
