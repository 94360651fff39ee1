"""``mlc up``: the whole system on one machine, on the embedded defaults.

Starts the engine (H2), an MLflow tracking server (SQLite), the Jira and ServiceNow development
servers (when ``MLC_JIRA_URL`` / ``MLC_SERVICENOW_URL`` are on loopback, as by default) and one worker
process per worker group (:mod:`workers.fleet.groups`); registers the sample model and
runs two sample back tests, one that passes and one that fails and opens a ticket; then looks after
the fleet (a process that dies is started again, :mod:`workers.fleet.supervisor`) until Ctrl-C,
SIGTERM or the loss of its standard output, and stops everything, workers first so they drain.

One fleet per home: the first holds a lock on it (:class:`~workers.fleet.lock.FleetLock`), and every
port is checked free before anything starts, so a second ``mlc up`` stops at once, saying why.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workers.config import (
    DataSettings,
    EngineSettings,
    FleetSettings,
    JiraSettings,
    MlflowSettings,
    RuntimeSettings,
    ServiceNowSettings,
    load,
)
from workers.engine import EngineClient
from workers.fleet.groups import GROUPS
from workers.fleet.lock import FleetLock, ensure_port_free
from workers.fleet.processes import (
    ManagedProcess,
    engine_process,
    http_ok,
    mlflow_process,
    mlserver_process,
    wait_until,
    worker_process,
)
from workers.fleet.secrets import FleetSecrets
from workers.fleet.supervisor import FleetHealthServer, Supervisor
from workers.topics import TOPICS
from workers.triggers.signals import BACK_TEST_JIRA, send_signal, wait_for_outcome

__all__ = ["LocalFleet", "run_back_test", "serve_forever"]

def run_back_test(engine: EngineClient, model_id: str, *, version: str | None = None,
                  input_file: str | None = None, output_file: str | None = None) -> str:
    """Send the seeds' back test signal (tickets in Jira); returns the request id the started instance carries."""
    return send_signal(engine, BACK_TEST_JIRA, {"MODEL_ID": model_id, "MODEL_VERSION": version,
                                               "INPUT_FILE": input_file, "OUTPUT_FILE": output_file})


@dataclass
class LocalFleet:
    fleet: FleetSettings
    engine: EngineSettings
    mlflow: MlflowSettings
    jira: JiraSettings
    servicenow: ServiceNowSettings = field(default_factory=ServiceNowSettings)
    data: DataSettings = field(default_factory=DataSettings)
    processes: list[ManagedProcess] = field(default_factory=list)
    secrets: FleetSecrets = field(default_factory=FleetSecrets.generate)
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(print))
    _lock: FleetLock | None = None
    _health: FleetHealthServer | None = None

    @classmethod
    def from_environment(cls) -> LocalFleet:
        """The fleet the environment describes, on the secrets kept in its home (made on first start)."""
        fleet = load(FleetSettings)
        secrets = FleetSecrets.load_or_create(fleet.home)
        return cls(fleet, secrets.for_workers(load(EngineSettings)), load(MlflowSettings), load(JiraSettings),
                   load(ServiceNowSettings), data=load(DataSettings), secrets=secrets)

    @property
    def data_roots(self) -> list[Path]:
        """The folders the workers' process files may be in: ``MLC_DATA_ROOTS`` when set, else the
        fleet's ``data`` folder (``.mlc/data``); the sample's files are MLflow URIs, allowed anyway."""
        return self.data.roots if "roots" in self.data.model_fields_set else [self.fleet.home / "data"]

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.fleet.bridge_port}"

    @property
    def mlserver_url(self) -> str:
        return f"http://127.0.0.1:{self.fleet.mlserver_port}"

    def worker_environment(self) -> dict[str, str]:
        env = {
            "MLC_ENGINE_URL": self.engine.url,
            "MLC_MLFLOW_TRACKING_URI": self.mlflow.tracking_uri,
            "MLC_MLFLOW_EXPERIMENT": self.mlflow.experiment,
            "MLC_JIRA_URL": self.jira.url,
            "MLC_SERVICENOW_URL": self.servicenow.url,
            "MLC_MLSERVER_URL": self.mlserver_url,
            "MLC_MLSERVER_MODEL_REPOSITORY": str(self.fleet.home.resolve() / "mlserver" / "models"),
            "MLC_RUNTIMES_FILE": str(load(RuntimeSettings).file.resolve()),
            "MLC_DATA_ROOTS": ",".join(str(root.resolve()) for root in self.data_roots),
            "MLC_DATA_S3_BUCKETS": ",".join(self.data.s3_buckets),
        }
        if self.engine.user:
            env["MLC_ENGINE_USER"] = self.engine.user
        if self.engine.password:
            env["MLC_ENGINE_PASSWORD"] = self.engine.password.get_secret_value()
        return env

    def ports(self) -> list[tuple[str, int, str, str]]:
        """Every (host, port, setting, what) the fleet will listen on."""
        engine, mlflow = urlparse(self.engine.url), urlparse(self.mlflow.tracking_uri)
        mlserver = self.fleet.mlserver_port
        wanted = [("127.0.0.1", engine.port or 8080, "MLC_ENGINE_URL", "the engine"),
                  ("127.0.0.1", mlflow.port or 5000, "MLC_MLFLOW_TRACKING_URI", "MLflow"),
                  *(("127.0.0.1", mlserver + offset, "MLC_FLEET_MLSERVER_PORT", "MLServer") for offset in range(3)),
                  ("127.0.0.1", self.fleet.bridge_port, "MLC_FLEET_BRIDGE_PORT", "the event bridge"),
                  ("127.0.0.1", self.fleet.health_port, "MLC_FLEET_HEALTH_PORT", "the fleet's /health")]
        if self.jira_is_local:
            wanted.append(("127.0.0.1", urlparse(self.jira.url).port or 8089, "MLC_JIRA_URL",
                           "the Jira development server"))
        if _is_loopback(self.servicenow.url):
            wanted.append(("127.0.0.1", urlparse(self.servicenow.url).port or 8093, "MLC_SERVICENOW_URL",
                           "the ServiceNow development server"))
        wanted += [("127.0.0.1", self.fleet.worker_health_base_port + index, "MLC_FLEET_WORKER_HEALTH_BASE_PORT",
                    f"the {group} workers' health") for index, group in enumerate(GROUPS)]
        return wanted

    def start(self, say: Any = print) -> None:
        """Take the fleet home's lock, check every port, start everything; :class:`FleetError` on failure."""
        self.fleet.home.mkdir(parents=True, exist_ok=True)
        self._lock = FleetLock(self.fleet.home.resolve()).acquire()
        for host, port, setting, what in self.ports():
            ensure_port_free(host, port, setting, what)
        self.supervisor = Supervisor(say)
        self._health = FleetHealthServer("127.0.0.1", self.fleet.health_port, self.supervisor).start()
        say(self.secrets.describe())
        for root in self.data_roots:
            root.mkdir(parents=True, exist_ok=True)
        say(f"starting the engine (logs in {self.fleet.home}/logs) ...")
        self._start(engine_process(self.fleet, self.engine, extra_env=self.secrets.engine_environment()),
                    self.fleet.engine_start_timeout_s)
        say("starting MLflow ...")
        self._start(mlflow_process(self.fleet, self.mlflow, local_webhooks=True), 120)
        say("starting MLServer (the DEV online runtime) ...")
        port = self.fleet.mlserver_port
        self._start(mlserver_process(self.fleet, port, port + 1, port + 2,
                                     self.fleet.home.resolve() / "mlserver" / "models"), 120)
        environment = self.worker_environment()
        say("starting the event bridge ...")
        self._start(self._bridge(environment), 60)
        say("starting the watcher of the models' data places (mlc watch) ...")
        self._start(self._watcher(environment), 60)
        if self.jira_is_local:
            say(f"starting the Jira development server at {self.jira.url} (MLC_JIRA_URL names a real Jira) ...")
            self._start(self._jira_dev_server(), 60)
        if _is_loopback(self.servicenow.url):
            say(f"starting the ServiceNow development server at {self.servicenow.url} "
                "(MLC_SERVICENOW_URL names a real instance) ...")
            self._start(self._servicenow_dev_server(), 60)
        from workers.triggers.bridge import ensure_mlflow_webhook

        ensure_mlflow_webhook(self.mlflow, f"{self.bridge_url}/webhooks/mlflow",
                              self.secrets.mlflow_webhook.get_secret_value())
        for index, group in enumerate(GROUPS):
            port = self.fleet.worker_health_base_port + index
            self._start(worker_process(group, self.fleet, port, environment), 120)
        say(f"started {len(GROUPS)} worker processes for {len(TOPICS)} topics: "
            + "; ".join(f"{group} ({', '.join(topics)})" for group, topics in GROUPS.items()))

    @property
    def jira_is_local(self) -> bool:
        """A Jira URL on this machine's loopback means the development server; a real Jira never is."""
        return _is_loopback(self.jira.url)

    def _jira_dev_server(self) -> ManagedProcess:
        parsed = urlparse(self.jira.url)
        return ManagedProcess(
            name="jira-dev",
            argv=[sys.executable, "-m", "devservers.jira", "--host", parsed.hostname or "127.0.0.1",
                  "--port", str(parsed.port or 8089), "--webhook", f"{self.bridge_url}/webhooks/jira",
                  "--state", str(self.fleet.home.resolve() / "devservers" / "jira.json")],
            log_path=self.fleet.home.resolve() / "logs" / "jira-dev.log",
            ready=http_ok(f"{self.jira.url.rstrip('/')}/_dev/requests"),
            env={"MLC_JIRA_WEBHOOK_SECRET": self.secrets.jira_webhook.get_secret_value()},  # not on ps's command line
        )

    def _servicenow_dev_server(self) -> ManagedProcess:
        parsed = urlparse(self.servicenow.url)
        return ManagedProcess(
            name="servicenow-dev",
            argv=[sys.executable, "-m", "devservers.servicenow", "--host", parsed.hostname or "127.0.0.1",
                  "--port", str(parsed.port or 8093),
                  "--state", str(self.fleet.home.resolve() / "devservers" / "servicenow.json")],
            log_path=self.fleet.home.resolve() / "logs" / "servicenow-dev.log",
            ready=http_ok(f"{self.servicenow.url.rstrip('/')}/_dev/requests"),
        )

    def _bridge(self, environment: dict[str, str]) -> ManagedProcess:
        return ManagedProcess(
            name="bridge",
            argv=[sys.executable, "-m", "workers", "bridge"],
            log_path=self.fleet.home.resolve() / "logs" / "bridge.log",
            ready=http_ok(f"{self.bridge_url}/health"),
            env={**environment, "MLC_BRIDGE_PORT": str(self.fleet.bridge_port), "MLC_LOG_FORMAT": "json",
                 "MLC_BRIDGE_MLFLOW_WEBHOOK_SECRET": self.secrets.mlflow_webhook.get_secret_value(),
                 "MLC_BRIDGE_JIRA_WEBHOOK_SECRET": self.secrets.jira_webhook.get_secret_value()},
        )

    def _watcher(self, environment: dict[str, str]) -> ManagedProcess:
        log_path = self.fleet.home.resolve() / "logs" / "watch.log"
        pid_file = self.fleet.home.resolve() / "watch.pid"
        pid_file.unlink(missing_ok=True)
        return ManagedProcess(
            name="watch",
            argv=[sys.executable, "-m", "workers", "watch"],
            log_path=log_path,
            ready=pid_file.exists,
            env={**environment, "MLC_LOG_FORMAT": "json", "MLC_WATCH_PID_PATH": str(pid_file)},
        )

    def _start(self, process: ManagedProcess, timeout_s: float) -> None:
        self.processes.append(process)
        process.start(timeout_s)
        self.supervisor.watch(process, timeout_s)

    def stop(self) -> None:
        """Stop every process (workers first, so they drain), the fleet's /health and the home's lock."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self._health is not None:
            self._health.stop()
            self._health = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def run_demo(self, say: Any = print, timeout_s: float = 300) -> dict[str, dict[str, Any]]:
        """Register the sample model and run a passing and a failing back test; returns both outcomes."""
        from workers.fleet.sample import register_sample_model  # trains with scikit-learn: import when used

        sample = register_sample_model(self.mlflow)
        say(f"sample model {sample.name} version {sample.version} registered in MLflow")
        outcomes: dict[str, dict[str, Any]] = {}
        with EngineClient(self.engine) as engine:
            requests = {
                "on its test data": run_back_test(engine, sample.name),
                "on drifted data": run_back_test(engine, sample.name, input_file=sample.drifted_data_uri),
            }
            for label, request_id in requests.items():
                outcomes[label] = wait_for_outcome(engine, request_id, timeout_s)
                say(f"back test {label}: {outcomes[label]['summary']}")
            outcomes["new version"] = self._submit_new_version(engine, sample, say, timeout_s)
        return outcomes

    def _submit_new_version(self, engine: EngineClient, sample: Any, say: Any, timeout_s: float) -> dict[str, Any]:
        """Register a new version with run_test, warm_up and jira: MLflow's webhook starts its deployment."""
        from workers.clients.mlflow import ModelRegistry

        registry = ModelRegistry(self.mlflow)
        first = registry.get_version(sample.name, sample.version)
        version = registry.create_version(sample.name, first.source, run_id=first.run_id,
                                          tags={"run_test": "true", "warm_up": "true", "jira": "true"}).version
        say(f"registered {sample.name} version {version} (run_test, warm_up, jira): MLflow's webhook starts its "
            f"deployment")

        def waiting_review() -> list[dict[str, Any]]:
            started = engine.get("/process-instance", businessKey=f"{sample.name}:{version}")
            return started and engine.get("/process-instance", superProcessInstance=started[0]["id"])

        waiting = wait_until(waiting_review, timeout_s, interval_s=0.5) and waiting_review()
        if not waiting:
            say("the deployment process did not reach its review; see the logs")
            return {"summary": "no review ticket", "ticket": None}
        ticket = waiting[0]["businessKey"]
        say(f"review ticket {ticket} waits for approval: move it to Done in Jira ({self.jira.url}/browse/{ticket}"
            + (f"; on the development server: curl -X POST {self.jira.url}/_dev/transition "
               f"-H 'Content-Type: application/json' -d '{{\"key\": \"{ticket}\", \"status\": \"Done\"}}'"
               if self.jira_is_local else "") + ") and the version is deployed to MLServer")
        return {"summary": f"review ticket {ticket} waiting", "ticket": ticket, "version": version}

    def print_addresses(self, say: Any = print) -> None:
        password = self.secrets.path("engine-admin-password")
        say(f"Cockpit   {self.engine.cockpit_url}  (user {self.secrets.admin_user}"
            + (f", password in {password})" if password else ")"))
        say(f"Tasklist  {self.engine.cockpit_url.rstrip('/')}/app/tasklist  (start a back test or a batch job)")
        say(f"REST API  {self.engine.url}")
        say(f"MLflow    {self.mlflow.tracking_uri}")
        say(f"Jira      {self.jira.url}")
        say(f"ServiceNow {self.servicenow.url}")
        say(f"MLServer  {self.mlserver_url}  (V2 inference)")
        say(f"Bridge    {self.bridge_url}  (MLflow and Jira webhooks, signed notifications)")
        say(f"Watch     the places models tag labeled_data and batch_data (log {self.fleet.home}/logs/watch.log)")


class Console:
    """``mlc up``'s standard output, which may go away (``mlc up | tee log``, then Ctrl-C): a line that
    cannot be written marks it :attr:`gone` instead of raising, so stopping the fleet never fails on it."""

    def __init__(self) -> None:
        self.gone = False

    def say(self, text: str) -> None:
        if self.gone:
            return
        try:
            print(text, flush=True)
        except (BrokenPipeError, OSError, ValueError):
            self._lost()

    def closed(self) -> bool:
        """Whether the reader of a piped standard output has gone (checked without writing)."""
        if self.gone:
            return True
        try:
            poller = select.poll()
            poller.register(sys.stdout.fileno(), select.POLLOUT)
            if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
                self._lost()
        except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
            return False
        return self.gone

    def _lost(self) -> None:
        self.gone = True
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # later prints, and the exit's flush, go nowhere
        except OSError:
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def serve_forever(fleet: LocalFleet, *, demo: bool, exit_after_demo: bool, check_every_s: float = 0.5) -> int:
    """Start ``fleet``, run the demo, look after the fleet until Ctrl-C, SIGTERM or the loss of standard
    output, then stop everything, whatever the moment the stop came (during the start and the demo too)."""
    console = Console()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        fleet.start(console.say)
        fleet.print_addresses(console.say)
        if demo:
            fleet.run_demo(console.say)
        if exit_after_demo:
            return 0
        console.say(f"the fleet is running (health: http://127.0.0.1:{fleet.fleet.health_port}/health); "
                    "Ctrl-C stops it")
        while not console.closed():
            fleet.supervisor.check()
            time.sleep(check_every_s)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        console.say("stopping the fleet ...")
        fleet.stop()


def _is_loopback(url: str) -> bool:
    """A URL on this machine's loopback names a development server; a real Jira or ServiceNow never is."""
    return urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")
