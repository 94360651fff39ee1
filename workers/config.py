"""Settings of the fleet, one pydantic-settings class per system, each with its own env prefix, all here.

Every class reads, in order of precedence: keyword arguments, the environment, a ``.env`` file, and
``NAME_FILE`` variables naming a file that holds the value (Docker and Kubernetes secrets). Build
them once at start with :func:`load`, which turns validation errors into a :class:`ConfigurationError`
naming the environment variables at fault.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "DEPLOY_PROCESS",
    "MODEL_VERSION_CREATED",
    "TICKET_RESOLVED",
    "TOPIC_SETTINGS",
    "BridgeSettings",
    "ConfigurationError",
    "DataSettings",
    "DecisionSettings",
    "EngineSettings",
    "ExporterSettings",
    "FleetSettings",
    "JiraSettings",
    "LogSettings",
    "MlflowSettings",
    "NotificationSettings",
    "RuntimeSettings",
    "S3Settings",
    "ServiceNowSettings",
    "Settings",
    "TrainingSettings",
    "WatchSettings",
    "WorkerSettings",
    "load",
]

S = TypeVar("S", bound=BaseSettings)

MODEL_VERSION_CREATED = "mlc.model-version-created"
"""The message that starts Deploy with run test and Jira for a new model version."""
TICKET_RESOLVED = "mlc.jira-ticket-resolved"
"""The message that wakes a process waiting for its Jira ticket."""
DEPLOY_PROCESS = "deploy-with-run-test-and-jira"
"""The key of the process a new model version starts."""
_S3_ENDPOINT_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLC_S3_ENDPOINT_URL")


class ConfigurationError(Exception):
    """The environment does not describe a valid configuration; the message names the variables."""


class _FileReferenceSource(PydanticBaseSettingsSource):
    """Reads ``<PREFIX><FIELD>_FILE``: the setting's value is the content of the named file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{self.config.get('env_prefix', '')}{field_name}_FILE".upper()
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise ConfigurationError(f"{variable}={path}: cannot read the file ({exc.strerror})") from exc

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """The base of every settings class of the fleet: environment, ``.env``, then ``NAME_FILE``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, _FileReferenceSource(settings_cls)


class EngineSettings(Settings):
    """How workers and the CLI reach the Camunda engine (``MLC_ENGINE_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_ENGINE_")

    url: str = Field("http://localhost:8080/engine-rest", description="base URL of the engine's REST API")
    user: str | None = Field(None, description="REST user when the engine requires basic authentication")
    password: SecretStr | None = Field(None, description="REST password (or MLC_ENGINE_PASSWORD_FILE)")
    request_timeout_s: float = Field(30.0, gt=0, description="timeout of one REST call, long polls excepted")
    webapps_path: str = Field("/camunda", pattern=r"^/[A-Za-z0-9._-]+$",
                              description="path of the web apps beside /engine-rest (Operaton: /operaton)")
    nodes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="the other nodes of an engine cluster (REST base URLs, by commas): clients spread over "
                    "url and these, and move on from a node that refuses connections")
    node_retry_s: float = Field(10.0, gt=0, description="how long a node that refused connections is passed over")

    @field_validator("nodes", mode="before")
    @classmethod
    def _split_nodes(cls, value: Any) -> Any:
        return _listed(value)

    @field_validator("nodes")
    @classmethod
    def _node_urls(cls, nodes: list[str]) -> list[str]:
        for node in nodes:
            parsed = urlparse(node)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"{node!r} is not an http(s) URL of an engine's REST API")
        return nodes

    @property
    def node_urls(self) -> list[str]:
        """Every node of the engine: ``url`` first, then ``nodes``, each once, without a trailing slash."""
        return list(dict.fromkeys(node.rstrip("/") for node in [self.url, *self.nodes]))

    @property
    def cockpit_url(self) -> str:
        """The engine's web applications (Cockpit, Tasklist) beside its REST API."""
        return self.url.rsplit("/engine-rest", 1)[0] + self.webapps_path


class WorkerSettings(Settings):
    """How one topic's worker fetches, runs and reports tasks (``MLC_WORKER_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_WORKER_")

    id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", description="worker id")
    max_tasks: int = Field(4, ge=1, le=256, description="tasks handled at once in this process")
    lock_duration_ms: int = Field(60_000, ge=1_000, description="lock taken per task; extended while it runs")
    async_response_timeout_ms: int = Field(20_000, ge=0, le=1_800_000, description="long-poll wait")
    fetch_batch_wait_ms: int = Field(
        100, ge=0, le=60_000, description="while tasks are held, how long the loop waits for half its slots to "
                                          "come free before it fetches for fewer: fewer, larger fetches from a "
                                          "backlog; an idle loop fetches at once")
    max_retries: int = Field(3, ge=0, description="retries after a failure before it becomes an incident")
    retry_timeout_ms: int = Field(5_000, ge=0, description="wait before the first retry; doubles each time")
    retry_timeout_max_ms: int = Field(600_000, ge=0, description="longest wait between retries")
    drain_timeout_s: float = Field(25.0, ge=0, description="on SIGTERM, time held tasks get to finish")
    health_host: str = Field("127.0.0.1", description="address of the health and metrics endpoint (0.0.0.0: all)")
    health_port: int = Field(9400, ge=0, le=65535, description="port of /health and /metrics; 0 picks one")

    def for_topic(self, topic: str) -> WorkerSettings:
        """These settings with ``topic``'s own overrides: ``MLC_WORKER_<TOPIC>_<SETTING>``, the topic's
        name in capitals with ``_`` for ``-`` (``MLC_WORKER_RUN_METRICS_JOB_MAX_TASKS=2``), for the
        settings of one task loop (:data:`TOPIC_SETTINGS`); the id and health port are the process's."""
        prefix = f"MLC_WORKER_{topic.upper().replace('-', '_')}_"
        overrides = load(_topic_overrides_class(prefix)).model_dump(exclude_none=True)
        if not overrides:
            return self
        try:
            return WorkerSettings.model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            problems = "; ".join(f"{prefix}{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
                                 for error in exc.errors())
            raise ConfigurationError(f"invalid settings of topic {topic}: {problems}") from exc


TOPIC_SETTINGS = ("max_tasks", "lock_duration_ms", "async_response_timeout_ms", "fetch_batch_wait_ms", "max_retries",
                  "retry_timeout_ms", "retry_timeout_max_ms", "drain_timeout_s")
"""The :class:`WorkerSettings` a topic may override for its own task loop."""


@functools.cache
def _topic_overrides_class(prefix: str) -> type[Settings]:
    """A settings class of the :data:`TOPIC_SETTINGS` under ``prefix``, all optional (unset: ``None``)."""
    fields: dict[str, Any] = {
        name: (WorkerSettings.model_fields[name].annotation | None, None) for name in TOPIC_SETTINGS}
    base = type("TopicSettings", (Settings,), {"model_config": SettingsConfigDict(env_prefix=prefix)})
    return create_model("TopicWorkerSettings", __base__=base, **fields)


class MlflowSettings(Settings):
    """The MLflow tracking server and model registry (``MLC_MLFLOW_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_MLFLOW_")

    tracking_uri: str = Field("http://127.0.0.1:5000", description="MLflow tracking server URL")
    experiment: str = Field("mlc-manager", description="experiment that holds the fleet's job runs")


class JiraSettings(Settings):
    """The Jira that tickets go to (``MLC_JIRA_*``): Cloud (REST v3) or Data Center (REST v2)."""

    model_config = SettingsConfigDict(env_prefix="MLC_JIRA_")

    url: str = Field("http://127.0.0.1:8089", description="Jira base URL, e.g. https://acme.atlassian.net")
    api_version: Literal["3", "2"] = Field("3", description="3: Jira Cloud; 2: Jira Data Center / Server")
    auth: Literal["basic", "bearer"] = Field("basic", description="basic: user + API token; bearer: PAT")
    user: str | None = Field("mlc@example.com", description="account email (Cloud) or user name (basic auth)")
    token: SecretStr = Field(SecretStr("token"), description="API token or personal access token (or _FILE)")
    project: str = Field("MLC", description="project key tickets are created in")
    issue_type: str = Field("Task", description="issue type of created tickets")
    timeout_s: float = Field(15.0, gt=0, description="timeout of one Jira call")


class NotificationSettings(Settings):
    """Where notifications go besides the log and the process history (``MLC_NOTIFY_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_NOTIFY_")

    webhook_url: str | None = Field(None, description="URL that receives each notification as JSON (POST)")
    timeout_s: float = Field(10.0, gt=0, description="timeout of one webhook call")


class FleetSettings(Settings):
    """What ``mlc up`` starts locally and where it keeps its state (``MLC_FLEET_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_FLEET_")

    home: Path = Field(Path(".mlc"), description="state of the local fleet: databases, artifacts, logs")
    engine_jar: Path = Field(Path("deploy/engine/target/mlc-engine.jar"), description="the engine jar")
    java_options: str = Field("-Xmx768m -XX:+UseSerialGC", description="JVM options of the engine")
    bpmn_dir: Path = Field(Path("bpmn"), description="processes and decisions deployed on engine start")
    engine_start_timeout_s: float = Field(180.0, gt=0, description="how long the engine may take to start")
    worker_health_base_port: int = Field(9400, ge=1024, le=65000, description="first worker health port")
    mlserver_port: int = Field(8090, ge=1024, le=65000, description="HTTP port of the local MLServer (gRPC +1, "
                                                                      "metrics +2)")
    bridge_port: int = Field(8095, ge=1024, le=65000, description="port of the local event bridge")
    health_port: int = Field(9399, ge=1024, le=65000, description="/health of the local fleet: each process, "
                                                                   "whether it runs, its restarts")


class LogSettings(Settings):
    """Log output (``MLC_LOG_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = Field("auto", description="auto: console on a terminal, else JSON")


class RuntimeSettings(Settings):
    """Where the runtime inventory is (``MLC_RUNTIMES_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_RUNTIMES_")

    file: Path = Field(Path("deploy/runtimes.yaml"), description="the runtime inventory (YAML)")


class ServiceNowSettings(Settings):
    """The ServiceNow instance incidents are opened on (``MLC_SERVICENOW_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_SERVICENOW_")

    url: str = Field("http://127.0.0.1:8093", description="instance URL, e.g. https://acme.service-now.com")
    user: str = Field("mlc.integration", description="integration user (basic authentication)")
    password: SecretStr = Field(SecretStr("password"), description="its password (or MLC_SERVICENOW_PASSWORD_FILE)")
    assignment_group: str | None = Field(None, description="group incidents are assigned to: sys_id or name")
    caller: str | None = Field(None, description="caller of incidents (caller_id): a user's sys_id or name")
    urgency: Literal["1", "2", "3"] = Field("3", description="urgency of incidents: 1 high, 2 medium, 3 low")
    impact: Literal["1", "2", "3"] = Field("3", description="impact of incidents: 1 high, 2 medium, 3 low")
    timeout_s: float = Field(15.0, gt=0, description="timeout of one ServiceNow call")


class TrainingSettings(Settings):
    """How training jobs run (``MLC_TRAINING_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_TRAINING_")

    env_manager: Literal["local", "virtualenv", "uv", "conda"] = Field(
        "local", description="the environment a job runs in; local: this worker's Python and packages")
    timeout_s: float = Field(7200.0, gt=0, description="a job still running after this long counts as failed")


class BridgeSettings(Settings):
    """The event bridge (``MLC_BRIDGE_*``); the secrets may be given as ``MLC_BRIDGE_..._FILE``."""

    model_config = SettingsConfigDict(env_prefix="MLC_BRIDGE_")

    host: str = Field("127.0.0.1", description="address the bridge listens on")
    port: int = Field(8095, ge=0, le=65535, description="port of the bridge; 0 picks a free one")
    mlflow_webhook_secret: SecretStr | None = Field(
        None, description="secret of the MLflow webhook (required to serve)")
    jira_webhook_secret: SecretStr | None = Field(
        None, description="secret of the Jira webhook (required to serve)")
    jira_expiration_field: str | None = Field(
        None, description="id of the ticket's expiration date field, e.g. customfield_10050")
    start_message: str = Field(MODEL_VERSION_CREATED, description="message that starts the deploy process")
    resolved_message: str = Field(TICKET_RESOLVED, description="message sent when a ticket is resolved")
    deploy_process: str = Field(DEPLOY_PROCESS, description="key of the process the start message starts")
    max_clock_skew_s: float = Field(300.0, gt=0, description="oldest (or newest) MLflow delivery accepted")
    notification_secret: SecretStr | None = Field(
        None, description="secret of signed notifications (POST /webhooks/notification); none: refused")


class WatchSettings(Settings):
    """``mlc watch``: new files in the places models name start their back tests and batch jobs (``MLC_WATCH_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_WATCH_")

    rescan_s: float = Field(30.0, gt=0, description="how often the models' tags are read again and every place "
                                                    "listed (the fallback of change notifications and S3 events)")
    ready: Literal["stable", "marker"] = Field(
        "stable", description="when a file is taken: stable (size and modification time unchanged for settle_s) "
                              "or marker (a file of the same name plus marker_suffix exists)")
    settle_s: float = Field(5.0, ge=0, description="stable: how long a local file must stay unchanged")
    marker_suffix: str = Field(".done", min_length=1, description="marker: the suffix of marker files")
    sqs_queue_url: str | None = Field(None, description="SQS queue the buckets send their S3 event notifications "
                                                        "to; none: S3 prefixes are only listed")
    sqs_endpoint_url: str | None = Field(None, description="SQS endpoint; none: the S3 endpoint (S3Settings), "
                                                           "else AWS")
    poll_s: float = Field(1.0, gt=0, description="how often pending files are looked at (and SQS long-polled)")
    pid_path: Path | None = Field(None, description="a file holding the watcher's process id, written once it "
                                                    "watches and removed when it stops: a supervisor's readiness "
                                                    "check, whatever the log level")


class ExporterSettings(Settings):
    """`mlc exporter`: Prometheus metrics of the engine's backlog, incidents and outcomes (``MLC_EXPORTER_*``)."""

    model_config = SettingsConfigDict(env_prefix="MLC_EXPORTER_")

    host: str = Field("127.0.0.1", description="address /metrics is served on (0.0.0.0: every address)")
    port: int = Field(9490, ge=0, le=65535, description="port of /metrics; 0 picks a free one")
    cache_s: float = Field(5.0, ge=0, description="how long one reading of the engine answers scrapes")


class S3Settings(Settings):
    """The object storage ``s3://`` URIs name: an S3-compatible server (MinIO, say) or AWS S3.

    Read from the variables MLflow's artifact store and the AWS tools read, so one environment serves
    all three: ``MLFLOW_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
    ``MLC_S3_ENDPOINT_URL``) and ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``, ``MLC_S3_REGION``).
    """

    model_config = SettingsConfigDict(env_prefix="MLC_S3_", extra="ignore", populate_by_name=True, frozen=True)

    endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices(*_S3_ENDPOINT_VARIABLES),
        description="http(s) URL of an S3-compatible server; none: AWS S3")
    region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "MLC_S3_REGION"),
                               description="region of the buckets; none: the AWS SDK's default")

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{' or '.join(_S3_ENDPOINT_VARIABLES)}: {url!r} is not an http(s) URL")
        return url.rstrip("/")


def _listed(value: Any) -> Any:
    """A list setting as the environment gives it: a JSON list, or items separated by commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


class DecisionSettings(Settings):
    """How test criteria are judged (``MLC_DMN_*``), by ``evaluate-dmn`` and ``mlc dmn evaluate``."""

    model_config = SettingsConfigDict(env_prefix="MLC_DMN_")

    missing_metrics_fail: bool = Field(
        False, description="whether a metric the criteria read and the metrics lack fails the test "
                           "(ModelOp's way, the default: it is listed, the rules see null)")


class DataSettings(Settings):
    """Where the files a process names may be (``MLC_DATA_*``): the worker reads and writes nothing else.

    A local path (or ``file://``) must resolve, symbolic links followed, inside one of ``roots``; a
    relative path is taken inside the first root. An ``s3://`` URI must name one of ``s3_buckets``.
    The URIs MLflow serves (``runs:/``, ``models:/``, ``mlflow-artifacts:/``) are always allowed. Both
    lists are given as JSON lists or separated by commas, e.g. ``MLC_DATA_ROOTS=/data,/srv/scores``.
    """

    model_config = SettingsConfigDict(env_prefix="MLC_DATA_")

    roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path(".mlc/data")],
        description="folders process files may be in (relative: to the worker's working folder)")
    s3_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="buckets s3:// files may be in; none by default")

    @field_validator("roots", "s3_buckets", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _listed(value)

    @field_validator("roots")
    @classmethod
    def _some_root(cls, roots: list[Path]) -> list[Path]:
        if not roots:
            raise ValueError("name at least one folder")
        return roots


def load(settings_class: type[S], **overrides: Any) -> S:
    """Build ``settings_class`` from the environment, naming the variables at fault on error."""
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigurationError(f"invalid {settings_class.__name__}: {problems}") from exc
