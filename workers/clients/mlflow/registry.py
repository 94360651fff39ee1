"""The MLflow model registry and tracking server, as the topics need them: one method per remote call.

:class:`ModelRegistry` is the fleet's one client of MLflow (with :mod:`.artifacts` for the files it
stores). It talks to the server named by :class:`~workers.config.MlflowSettings`: registered models, versions,
aliases, tags, runs and experiments over MLflow's REST API (:mod:`.rest`), so a worker that only reads
and writes those never imports MLflow; artifacts, models, projects and webhooks through an explicit
``MlflowClient(tracking_uri=...)``, created on first use, never through MLflow's global tracking URI,
so several registries can live in one process. MLflow errors become :class:`ModelNotFound`, :class:`ModelNotLoadable` or
:class:`RegistryUnavailable` (retried by :data:`RETRY_POLICY` first) here, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests
import tenacity

from workers.clients.mlflow.rest import MlflowRest, RestFailure
from workers.config import MlflowSettings
from workers.harness.scratch import scratch_dir

__all__ = [
    "RETRY_POLICY",
    "DEPLOYED_ALIAS",
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

DEPLOYED_ALIAS = "deployed"
"""The registered-model alias naming the version in service."""

_METRICS_PER_BATCH = 1000  # MLflow's limit of metrics in one log_batch call

T = TypeVar("T")

# Defaults for MLflow's own environment variables, applied unless the operator set them. Its HTTP
# client retries each call up to 7 times with waits growing to minutes; a worker must notice an
# unreachable registry within seconds and let the engine schedule the retry, so those retries are off
# and RETRY_POLICY retries a little. Its run links printed to stdout would break the JSON log lines.
_MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class RegistryError(Exception):
    """Root of the registry errors: the message names what was asked; ``status`` is MLflow's HTTP
    status for its error code and ``code`` that code (``RESOURCE_DOES_NOT_EXIST``, ...)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class ResourceNotFound(RegistryError):
    """What was asked for (a run, an experiment, an artifact) does not exist."""


class ModelNotFound(ResourceNotFound):
    """The registered model, or the version asked for, does not exist."""


class ModelNotLoadable(RegistryError):
    """The version exists but its model files cannot be downloaded or deserialized."""


class RegistryUnavailable(RegistryError):
    """No answer from MLflow, or a 5xx: worth retrying later."""


RETRY_POLICY = tenacity.Retrying(
    retry=tenacity.retry_if_exception_type(RegistryUnavailable),
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
"""Retries of a registry call: three attempts, 0.5 s then 1 s apart, on :class:`RegistryUnavailable` only."""


@dataclass(frozen=True)
class ModelRecord:
    """A registered model: its name, description, tags and aliases (alias → version)."""

    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, str]

    @property
    def service(self) -> str | None:
        """The model service tag (``service``), which deployment matches runtimes on."""
        return self.tags.get("service")


@dataclass(frozen=True)
class VersionRecord:
    """A model version: where it came from (run, source URI) and its tags."""

    name: str
    version: str
    description: str
    tags: dict[str, str]
    run_id: str | None
    source: str
    status: str
    created: datetime
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """An MLflow run as the processes follow it: its state (``RUNNING``, ``FINISHED``, ``FAILED``,
    ``KILLED``, ``SCHEDULED``), when it started and ended, its tags, parameters and metrics."""

    run_id: str
    status: str
    started: datetime
    ended: datetime | None
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class LoadedModel:
    """A model version loaded for scoring: the scikit-learn estimator when the version has that
    flavour (so ``predict_proba`` is at hand), else the generic pyfunc model."""

    name: str
    version: str
    flavor: Literal["sklearn", "pyfunc"]
    model: Any = field(repr=False)
    path: Path | None = field(default=None, repr=False, compare=False)
    """The downloaded model folder (while the block of :meth:`ModelRegistry.loaded_model` runs)."""


class ModelRegistry:
    """The MLflow server of ``settings``: registered models, versions, job runs and artifacts.

    Every method retries with ``retry`` (default :data:`RETRY_POLICY`) while MLflow is unavailable,
    then raises :class:`RegistryUnavailable`; methods naming a model raise :class:`ModelNotFound`
    when it (or the version) does not exist.
    """

    def __init__(self, settings: MlflowSettings, *, retry: tenacity.Retrying = RETRY_POLICY) -> None:
        for variable, value in _MLFLOW_ENV_DEFAULTS.items():
            os.environ.setdefault(variable, value)
        self.settings = settings
        self._rest = MlflowRest(settings.tracking_uri, timeout_s=float(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]))
        self._mlflow_client: Any = None
        self._retry = retry
        self._experiment_ids: dict[str, str] = {}

    @property
    def _client(self) -> Any:
        """MLflow's own client, for artifacts, models, projects and webhooks; MLflow is imported here."""
        if self._mlflow_client is None:
            from mlflow import MlflowClient  # imported here: MLflow takes seconds and 160 MB to import

            self._mlflow_client = MlflowClient(tracking_uri=self.settings.tracking_uri,
                                               registry_uri=self.settings.tracking_uri)
            _default_global_tracking_uri(self.settings.tracking_uri)
        return self._mlflow_client

    # registered models and versions

    def get_model(self, name: str) -> ModelRecord:
        found = self._call(lambda: self._rest.get("registered-models/get", name=name), f"model {name!r}",
                           missing=ModelNotFound)
        return _model_record(found["registered_model"])

    def search_models(self, filter_string: str = "") -> list[ModelRecord]:
        """Every registered model matching MLflow's ``filter_string`` (all when empty), by name."""
        found = self._call(lambda: list(self._rest.pages("registered-models/search", "registered_models",
                                                         filter=filter_string or None, max_results=1000)),
                           f"models where {filter_string or 'any'}")
        return sorted((_model_record(model) for model in found), key=lambda model: model.name)

    def get_version(self, name: str, version: str | int) -> VersionRecord:
        what = f"version {version} of model {name!r}"
        if not str(version).isdigit():
            raise ModelNotFound(f"{what} not found: versions are whole numbers")
        found = self._call(lambda: self._rest.get("model-versions/get", name=name, version=str(version)), what,
                           missing=ModelNotFound)
        return _version_record(found["model_version"])

    def get_version_by_alias(self, name: str, alias: str = DEPLOYED_ALIAS) -> VersionRecord | None:
        """The version ``alias`` points at; ``None`` when the model exists but the alias is not set."""
        version = self.get_model(name).aliases.get(alias)
        return None if version is None else self.get_version(name, version)

    def search_versions(self, name: str) -> list[VersionRecord]:
        """All versions of model ``name``, newest first (empty when the model has none or does not exist)."""
        escaped = name.replace("'", "\\'")
        found = self._call(lambda: list(self._rest.pages("model-versions/search", "model_versions",
                                                         filter=f"name = '{escaped}'", max_results=10_000)),
                           f"model {name!r}")
        return sorted((_version_record(v) for v in found), key=lambda v: int(v.version), reverse=True)

    def search_tagged_versions(self, key: str) -> list[VersionRecord]:
        """Every version of every model that has the tag ``key``, whatever its value: one paged search,
        however many models there are."""
        escaped = key.replace("`", "")
        return [_version_record(v) for v in self._call(
            lambda: list(self._rest.pages("model-versions/search", "model_versions",
                                          filter=f"tags.`{escaped}` LIKE '%'", max_results=10_000)),
            f"versions tagged {key}")]

    def set_version_tag(self, name: str, version: str | int, key: str, value: str) -> None:
        self._call(lambda: self._rest.post("model-versions/set-tag", {
            "name": name, "version": str(version), "key": key, "value": value}),
            f"version {version} of model {name!r}", missing=ModelNotFound)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call(lambda: self._rest.post("registered-models/set-tag", {"name": name, "key": key, "value": value}),
                   f"model {name!r}", missing=ModelNotFound)

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        self._call(lambda: self._rest.post("registered-models/alias", {
            "name": name, "alias": alias, "version": str(version)}),
            f"version {version} of model {name!r}", missing=ModelNotFound)

    @contextmanager
    def loaded_model(self, name: str, version: str | int) -> Iterator[LoadedModel]:
        """Version ``version`` of ``name``, downloaded (:meth:`download_model`) and loaded for the duration
        of the block: its scikit-learn flavour if it has one, else its pyfunc flavour.

        The block bounds the life of the downloaded files, which some pyfunc models read while they predict.
        """
        what = f"version {version} of model {name!r}"
        self.get_version(name, version)
        with scratch_dir("model") as directory:
            try:
                local = self.download_model(name, version, Path(directory))
            except ModelNotFound:
                raise
            except ResourceNotFound as exc:
                raise ModelNotLoadable(exc.message) from exc
            try:
                loaded = dataclasses.replace(_load_flavor(name, str(version), str(local)), path=local)
            except Exception as exc:  # a broken model raises anything: pickle, import, MLflow errors
                raise ModelNotLoadable(f"{what} cannot be loaded: {type(exc).__name__}: {exc}") from exc
            yield loaded

    def download_model(self, name: str, version: str | int, destination: Path) -> Path:
        """Download the MLflow model directory of version ``version`` of ``name`` under ``destination``;
        the local model folder. :class:`ResourceNotFound` when the version has no model files (no
        ``MLmodel``). The files are found through this registry's client rather than a ``models:/`` URI,
        which MLflow resolves against its global registry URI only."""
        import mlflow.artifacts

        what = f"version {version} of model {name!r}"
        download_uri = self._call(lambda: self._client.get_model_version_download_uri(name, str(version)), what,
                                  missing=ModelNotFound)
        destination.mkdir(parents=True, exist_ok=True)
        missing = ResourceNotFound(f"{what}: no model files at {download_uri}")
        try:
            local = Path(self._call(lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=download_uri, dst_path=str(destination), tracking_uri=self.settings.tracking_uri,
                registry_uri=self.settings.tracking_uri), what))
        except ModelNotFound:
            raise
        except ResourceNotFound as exc:
            raise missing from exc
        if not (local / "MLmodel").is_file():
            raise missing
        return local

    # runs and artifacts

    def list_run_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """Paths (relative to the run's artifact root) of the files and folders directly under ``path``."""
        found = self._call(lambda: self._rest.get("artifacts/list", run_id=run_id, path=path),
                           f"artifacts of run {run_id}")
        return [info["path"] for info in found.get("files", [])]

    def log_job_run(
        self,
        *,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Mapping[str, Path] | None = None,
        experiment: str | None = None,
    ) -> str:
        """Record a finished job as an MLflow run of ``experiment`` (default: the settings'); returns its id.

        ``artifacts`` maps a folder of the run's artifacts (``""``: the root) to a local file logged into it;
        metrics go in batches of the most MLflow takes in one call.
        """
        experiment_id = self._experiment_id(experiment or self.settings.experiment)
        now = int(datetime.now(UTC).timestamp() * 1000)
        # not retried: a create that timed out after the server acted would leave a second run
        run = self._call(lambda: self._rest.post("runs/create", {
            "experiment_id": experiment_id, "run_name": run_name, "start_time": now, "tags": _pairs(tags)}),
            f"a run in experiment {experiment_id}", retry=False)
        run_id = run["run"]["info"]["run_id"]
        try:
            self._call(lambda: self._rest.post("runs/log-batch", {
                "run_id": run_id,
                "params": [{"key": key, "value": str(value)[:6000]} for key, value in params.items()],
                "tags": _pairs(tags),
            }), f"run {run_id}")
            logged = [{"key": key, "value": float(value), "timestamp": now, "step": 0}
                      for key, value in metrics.items()]
            for start in range(0, len(logged), _METRICS_PER_BATCH):
                self._call(lambda batch=logged[start:start + _METRICS_PER_BATCH]: self._rest.post(
                    "runs/log-batch", {"run_id": run_id, "metrics": batch}), f"run {run_id}")
            for folder, local_path in (artifacts or {}).items():
                self._call(lambda path=local_path, to=folder: self._client.log_artifact(run_id, str(path), to or None),
                           f"run {run_id}")
        except RegistryError:
            self._end_run(run_id, "FAILED")
            raise
        self._end_run(run_id, "FINISHED")
        return run_id

    def _end_run(self, run_id: str, status: str) -> None:
        end = int(datetime.now(UTC).timestamp() * 1000)
        self._call(lambda: self._rest.post("runs/update", {"run_id": run_id, "status": status, "end_time": end}),
                   f"run {run_id}")

    def get_run(self, run_id: str) -> RunRecord:
        return _run_record(self._call(lambda: self._rest.get("runs/get", run_id=run_id), f"run {run_id}")["run"])

    def search_runs(self, filter_string: str, experiment: str | None = None) -> list[RunRecord]:
        """Runs of ``experiment`` (default: the settings') matching MLflow's ``filter_string``, newest first."""
        experiment_id = self._experiment_id(experiment or self.settings.experiment)
        found = self._call(lambda: list(self._rest.pages(
            "runs/search", "runs", method="POST", experiment_ids=[experiment_id], filter=filter_string,
            order_by=["attributes.start_time DESC"], max_results=1000)),
            f"runs of experiment {experiment_id} where {filter_string}")
        return [_run_record(run) for run in found]

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        self._call(lambda: self._rest.post("runs/set-tag", {"run_id": run_id, "key": key, "value": value}),
                   f"run {run_id}")

    def get_run_metrics(self, run_id: str) -> dict[str, float]:
        return self.get_run(run_id).metrics

    def upload_file(self, local_path: Path, uri: str) -> None:
        """Store ``local_path`` at ``uri`` (``runs:/…``, ``mlflow-artifacts:/…``, ``s3://…``, ...)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        folder, _, file_name = uri.rstrip("/").rpartition("/")
        if not folder or not file_name:
            raise RegistryError(f"{uri}: not a file URI")
        with scratch_dir("upload") as directory:
            named = Path(directory) / file_name  # the artifact store names the file after the local one
            shutil.copyfile(local_path, named)
            self._call(lambda: get_artifact_repository(folder, tracking_uri=self.settings.tracking_uri)
                       .log_artifact(str(named)), uri)

    def create_version(self, name: str, source: str, *, run_id: str | None = None,
                       tags: Mapping[str, str] | None = None) -> VersionRecord:
        """Register a new version of model ``name`` from ``source`` (a ``models:/…`` or run artifact URI)."""
        model_id = source.removeprefix("models:/") if source.startswith("models:/") else None
        body = {"name": name, "source": source, "tags": _pairs(tags or {}),
                **({"run_id": run_id} if run_id else {}), **({"model_id": model_id} if model_id else {})}
        created = self._call(lambda: self._rest.post("model-versions/create", body), f"model {name!r}",
                             missing=ModelNotFound)
        return _version_record(created["model_version"])

    def run_project(self, uri: str, *, entry_point: str, parameters: Mapping[str, str], env_manager: str) -> str:
        """Launch the MLflow Project at ``uri`` as a job of its own in this registry's experiment; its run id.

        The job runs ``mlflow run`` as the leader of its own process group (``synchronous=False``), so it
        outlives the caller; MLflow marks its run finished or failed. Raises :class:`RegistryError`
        naming the project when it cannot start.
        """
        import mlflow.projects

        _default_global_tracking_uri(self.settings.tracking_uri)  # mlflow.projects.run reads only the global URI
        experiment_id = self.experiment_id()
        try:
            submitted = mlflow.projects.run(uri, entry_point=entry_point, parameters=dict(parameters),
                                            experiment_id=experiment_id, env_manager=env_manager,
                                            synchronous=False)
        except Exception as exc:  # MLflow Projects raises its own, git's, OS and validation errors alike
            raise RegistryError(f"MLflow Project {uri} (entry point {entry_point}) cannot start: "
                                f"{getattr(exc, 'message', None) or exc}") from exc
        return str(submitted.run_id)

    def ensure_webhook(self, url: str, secret: str, *, name: str, description: str,
                       event: str = "model_version.created") -> str:
        """The id of MLflow's webhook delivering ``event`` to ``url``, registered when there is none.

        A webhook already registered for ``url`` and ``event`` is reused: its secret is set again (MLflow
        never shows it) and it is made active. Raises :class:`RegistryError` with MLflow's reason.
        """
        def existing() -> list[Any]:
            webhooks: list[Any] = []
            token: str | None = None
            while True:
                page = self._client.list_webhooks(max_results=100, page_token=token)
                webhooks.extend(page)
                token = page.token
                if not token:
                    return webhooks

        for webhook in self._call(existing, "webhooks"):
            if webhook.url == url and any(str(known) == event for known in webhook.events):
                self._call(lambda hook=webhook: self._client.update_webhook(
                    hook.webhook_id, secret=secret, status="ACTIVE"), f"webhook {webhook.webhook_id}")
                return str(webhook.webhook_id)
        created = self._call(lambda: self._client.create_webhook(name=name, url=url, events=[event],
                                                                 description=description, secret=secret),
                             f"webhook {url}")
        return str(created.webhook_id)

    def experiment_id(self, name: str | None = None) -> str:
        """The id of experiment ``name`` (default: the settings'), created when it does not exist yet."""
        return self._experiment_id(name or self.settings.experiment)

    # internals

    def _experiment_id(self, name: str) -> str:
        def by_name() -> str | None:
            try:
                found = self._call(lambda: self._rest.get("experiments/get-by-name", experiment_name=name),
                                   f"experiment {name!r}")
            except ResourceNotFound:
                return None
            return str(found["experiment"]["experiment_id"])

        if name not in self._experiment_ids:
            experiment_id = by_name()
            if experiment_id is None:
                try:
                    created = self._call(lambda: self._rest.post("experiments/create", {"name": name}),
                                         f"experiment {name!r}", retry=False)
                    experiment_id = str(created["experiment_id"])
                except RegistryError as exc:  # another worker created it meanwhile
                    if exc.code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    experiment_id = by_name()
                    if experiment_id is None:
                        raise
            self._experiment_ids[name] = experiment_id
        return self._experiment_ids[name]

    def _call(self, call: Callable[[], T], what: str, *, retry: bool = True,
              missing: type[ResourceNotFound] = ResourceNotFound) -> T:
        def attempt() -> T:
            try:
                return call()
            except Exception as exc:
                raise _registry_error(exc, what, self.settings.tracking_uri, missing) from exc

        return self._retry.copy()(attempt) if retry else attempt()


def _registry_error(exc: Exception, what: str, tracking_uri: str, missing: type[ResourceNotFound]) -> RegistryError:
    """The one place MLflow's errors become registry errors.

    MLflow raises ``MlflowException`` for everything, with ``INTERNAL_ERROR`` (HTTP 500) as the
    default code, so a 5xx counts as unavailability only when it came over the wire: a server's
    error answer (``RestException``), or a transport failure ("API request to ... failed").
    """
    if isinstance(exc, RestFailure):
        if exc.code == "RESOURCE_DOES_NOT_EXIST":
            return missing(f"{what} not found", status=exc.status, code=exc.code)
        if exc.status is None or exc.status >= 500:
            return RegistryUnavailable(f"{what}: MLflow at {tracking_uri} unavailable ({exc.message})",
                                       status=exc.status, code=exc.code)
        reason = f"{exc.code}: {exc.message}" if exc.code else exc.message
        return RegistryError(f"{what}: {reason}", status=exc.status, code=exc.code)
    from mlflow.exceptions import MlflowException, RestException

    if not isinstance(exc, MlflowException):
        if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError)):
            return RegistryUnavailable(f"{what}: MLflow at {tracking_uri} unreachable ({exc})")
        return RegistryError(f"{what}: {type(exc).__name__}: {exc}")
    status = exc.get_http_status_code()
    code = str(exc.error_code)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return missing(f"{what} not found", status=status, code=code)
    over_the_wire = (isinstance(exc, RestException) or str(exc.message).startswith("API request to")
                     or isinstance(exc.__cause__ or exc.__context__, requests.RequestException))
    if status >= 500 and over_the_wire:
        return RegistryUnavailable(f"{what}: MLflow at {tracking_uri} unavailable ({exc.message})",
                                   status=status, code=code)
    return RegistryError(f"{what}: {exc.message}", status=status, code=code)


def _load_flavor(name: str, version: str, local: str) -> LoadedModel:
    from mlflow.models import Model

    if "sklearn" in Model.load(local).flavors:
        import mlflow.sklearn

        return LoadedModel(name, version, "sklearn", mlflow.sklearn.load_model(local))
    import mlflow.pyfunc

    return LoadedModel(name, version, "pyfunc", mlflow.pyfunc.load_model(local))


def input_example(folder: Path) -> Any:
    """The input example saved with the MLflow model in ``folder``, or None when it has none or it is unreadable."""
    from mlflow.models import Model

    try:
        return Model.load(str(folder)).load_input_example(str(folder))
    except Exception:  # noqa: BLE001  # a model without a readable example is the caller's case to report
        return None


def _pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": str(value)} for key, value in values.items()]


def _unpair(entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {entry["key"]: entry.get("value", "") for entry in entries or ()}


def _millis(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


def _version_record(found: dict[str, Any]) -> VersionRecord:
    return VersionRecord(
        name=found["name"],
        version=str(found["version"]),
        description=found.get("description") or "",
        tags=_unpair(found.get("tags")),
        run_id=found.get("run_id") or None,
        source=found.get("source") or "",
        status=str(found.get("status") or ""),
        created=_millis(found.get("creation_timestamp")) or datetime.fromtimestamp(0, tz=UTC),
        aliases=tuple(found.get("aliases") or ()),
    )


def _model_record(found: dict[str, Any]) -> ModelRecord:
    return ModelRecord(name=found["name"], description=found.get("description") or "",
                       tags=_unpair(found.get("tags")),
                       aliases={entry["alias"]: str(entry["version"]) for entry in found.get("aliases") or ()})


def _run_record(run: dict[str, Any]) -> RunRecord:
    info, data = run["info"], run.get("data") or {}
    return RunRecord(run_id=info["run_id"], status=str(info.get("status")),
                     started=_millis(info.get("start_time")) or datetime.fromtimestamp(0, tz=UTC),
                     ended=_millis(info.get("end_time")), tags=_unpair(data.get("tags")),
                     params=_unpair(data.get("params")),
                     metrics={entry["key"]: float(entry["value"]) for entry in data.get("metrics") or ()})


def _default_global_tracking_uri(tracking_uri: str) -> None:
    """Make ``tracking_uri`` MLflow's global tracking URI, unless someone has set one.

    Files named ``models:/…`` (test data, criteria) are read through MLflow's artifact download,
    which resolves that scheme against the global registry URI only. A worker talks to one MLflow,
    so the global URI is set once from the settings; this registry's own calls never depend on it.
    """
    import mlflow.tracking

    if not mlflow.tracking.is_tracking_uri_set():
        mlflow.tracking.set_tracking_uri(tracking_uri)
