"""Starting and stopping the processes of a local fleet: the engine, MLflow, workers.

``mlc up`` and the test session both start the engine through :func:`engine_process`, so the tests
run the engine the way a user does. Every process logs to ``<home>/logs/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from workers.config import EngineSettings, FleetSettings, MlflowSettings

__all__ = [
    "FleetError",
    "ManagedProcess",
    "engine_process",
    "mlflow_process",
    "mlserver_process",
    "wait_until",
    "worker_process",
]


class FleetError(Exception):
    """A process of the fleet could not be started; the message says which and where its log is."""


def wait_until(probe: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(interval_s)
    return probe()


def http_ok(url: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return requests.get(url, timeout=timeout_s).status_code < 400
        except requests.RequestException:
            return False

    return probe


@dataclass
class ManagedProcess:
    """A child process with a readiness probe and a log file."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ManagedProcess:
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> ManagedProcess:
        """Start the process without waiting for it to be ready (several at once: then :meth:`wait_ready`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float) -> None:
        if wait_until(lambda: not self.running or self.ready(), timeout_s) and self.running:
            return
        code = self.popen.poll() if self.popen else None
        self.stop()
        what = f"exited with code {code}" if code is not None else f"was not ready after {timeout_s:.0f}s"
        raise FleetError(f"{self.name} {what}; log {self.log_path}:\n{self.log_excerpt()}")

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running and self.popen:
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.popen is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def log_excerpt(self, lines: int = 15) -> str:
        """The log's error lines (exceptions and their causes), else its last lines."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if " ERROR " in line or line.startswith(("Caused by", "ERROR", "Error"))]
        return "\n".join((errors or text)[-lines:])


def engine_process(
    fleet: FleetSettings, engine: EngineSettings, *, extra_env: Mapping[str, str] | None = None
) -> ManagedProcess:
    """The engine jar on the embedded H2 database under ``fleet.home``, at ``engine.url``'s port."""
    jar = fleet.engine_jar.resolve()
    if not jar.is_file():
        raise FleetError(f"engine jar not found at {jar}: build it with "
                         f"`mvn -B -q -f deploy/engine/pom.xml package` (or `make engine`)")
    home = fleet.home.resolve()
    parsed = urlparse(engine.url)
    root = f"{parsed.scheme}://{parsed.netloc}"
    env = {
        "MLC_ENGINE_PORT": str(parsed.port or 8080),
        "MLC_BPMN_DIR": str(fleet.bpmn_dir.resolve()),
        "MLC_ENGINE_DB_URL": os.environ.get(
            "MLC_ENGINE_DB_URL", f"jdbc:h2:file:{home}/engine/camunda-h2;DB_CLOSE_ON_EXIT=FALSE"),
        **(extra_env or {}),
    }
    if engine.user:
        env.setdefault("MLC_ENGINE_ADMIN_USER", engine.user)
        if engine.password:
            env.setdefault("MLC_ENGINE_ADMIN_PASSWORD", engine.password.get_secret_value())
    return ManagedProcess(
        name="engine",
        argv=["java", *fleet.java_options.split(), "-jar", str(jar)],
        log_path=home / "logs" / "engine.log",
        ready=http_ok(f"{root}/actuator/health/readiness"),
        env=env,
        cwd=home,
    )


def mlflow_process(fleet: FleetSettings, mlflow: MlflowSettings, *, local_webhooks: bool = False) -> ManagedProcess:
    """An MLflow tracking server on SQLite with local artifacts under ``fleet.home``, at ``mlflow``'s port.

    SQLite is a SQL store, so MLflow's registry webhooks work on it too. ``local_webhooks`` lets
    them reach an event bridge on this machine over http (MLflow allows only public https URLs by
    default: keep that in production), and keeps the key that encrypts webhook secrets in
    ``<home>/mlflow`` so registered webhooks survive a restart.
    """
    home = fleet.home.resolve()
    (home / "mlflow").mkdir(parents=True, exist_ok=True)
    parsed = urlparse(mlflow.tracking_uri)
    # the fleet runs no MLflow server-side jobs: without this MLflow starts seven job consumers (~1.6 GB)
    env: dict[str, str] = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if local_webhooks:
        env |= {
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": _webhook_key(home / "mlflow" / "webhook-secrets.key"),
        }
    return ManagedProcess(
        name="mlflow",
        argv=[sys.executable, "-m", "mlflow", "server",
              "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
              "--artifacts-destination", str(home / "mlflow" / "artifacts"),
              "--serve-artifacts", "--host", parsed.hostname or "127.0.0.1", "--port", str(parsed.port or 5000),
              "--workers", "1"],
        log_path=home / "logs" / "mlflow.log",
        ready=http_ok(f"{mlflow.tracking_uri.rstrip('/')}/health"),
        env=env,
        cwd=home,
    )


def _webhook_key(path: Path) -> str:
    if not path.exists():
        from cryptography.fernet import Fernet  # MLflow's own choice of cipher for webhook secrets

        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def worker_process(group: str, fleet: FleetSettings, health_port: int,
                   extra_env: Mapping[str, str] | None = None, *,
                   topics: Sequence[str] | None = None) -> ManagedProcess:
    """A worker process serving worker group ``group`` (``mlc worker --group GROUP``), or, when ``topics``
    are given, those topics under the name ``group`` (``mlc worker TOPIC ...``)."""
    selection = list(topics) if topics else ["--group", group]
    return ManagedProcess(
        name=f"worker-{group}",
        argv=[sys.executable, "-m", "workers", "worker", *selection],
        log_path=fleet.home.resolve() / "logs" / f"worker-{group}.log",
        ready=http_ok(f"http://127.0.0.1:{health_port}/health"),
        env={"MLC_WORKER_HEALTH_PORT": str(health_port), "MLC_LOG_FORMAT": "json", **(extra_env or {})},
    )


def mlserver_process(fleet: FleetSettings, http_port: int, grpc_port: int, metrics_port: int,
                     model_repository: Path) -> ManagedProcess:
    """An MLServer on 127.0.0.1 serving the models of ``model_repository`` (V2 protocol on ``http_port``).

    ``mlserver start FOLDER`` makes FOLDER the repository and reads its ``settings.json``, written here.
    The models found there are loaded at start, so a restart brings back what was deployed; the deploy
    topics keep only models in service visible there (:mod:`workers.domain.serving`). Inference runs in the server
    process (``parallel_workers: 0``): MLServer 1.7.1's worker pool crashes in a loop under uvloop 0.22+,
    and in the server process a version loads without yielding to requests, which the blue-green switch of
    :mod:`workers.domain.switch` relies on to drop none.
    """
    import json

    repository = model_repository.resolve()
    state = fleet.home.resolve() / "mlserver"
    repository.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port,
        "load_models_at_startup": True, "parallel_workers": 0, "debug": False,
        "metrics_dir": str(state / "metrics"), "environments_dir": str(state / "envs"),
    }
    (repository / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return ManagedProcess(
        name="mlserver",
        argv=[str(Path(sys.executable).with_name("mlserver")), "start", str(repository)],
        log_path=fleet.home.resolve() / "logs" / "mlserver.log",
        ready=http_ok(f"http://127.0.0.1:{http_port}/v2/health/ready"),
        cwd=repository,
    )
