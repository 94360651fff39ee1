"""One real Camunda engine per test session, started the way ``mlc up`` starts it.

The engine runs with REST basic authentication and authorization on, as everywhere: ``mlctest`` is its
admin (an operator) and ``mlctest-worker`` the workers' user (fetch, complete, no BPMN deployments).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from devservers.jira import JiraDevServer
from tests.support import REPO
from tests.support.ports import free_port, free_port_block
from tests.support.postgres import has_postgres, postgres_server
from tests.support.s3 import moto_server
from workers.config import DataSettings, EngineSettings, FleetSettings, MlflowSettings, S3Settings
from workers.engine import EngineClient
from workers.fleet.processes import FleetError, ManagedProcess, engine_process, mlflow_process

__all__ = ["FIXTURES", "REPO", "WORKER_PASSWORD", "WORKER_USER", "free_port", "free_port_block"]

JIRA_CONTRACT = REPO.parent / "shared" / "contracts" / "jira-cloud-platform.openapi.json"
"""Atlassian's OpenAPI document, beside the repository in development and CI (never in a user's clone)."""
# every Jira development server the tests start, in this process or another, checks against it
os.environ.setdefault("MLC_JIRA_CONTRACT", str(JIRA_CONTRACT))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


WORKER_USER = "mlctest-worker"
WORKER_PASSWORD = "mlc-test-worker-secret"


ENGINE_JARS = {
    "camunda": REPO / "deploy/engine/target/mlc-engine.jar",
    "operaton": REPO / "deploy/engine-operaton/target/mlc-engine-operaton.jar",
}
"""The engine builds the tests can run against (README "Operaton"), by ``MLC_TEST_ENGINE``."""
WEBAPPS_PATHS = {"camunda": "/camunda", "operaton": "/operaton"}
TEST_ENGINE = os.environ.get("MLC_TEST_ENGINE", "camunda")
if TEST_ENGINE not in ENGINE_JARS:
    raise pytest.UsageError(f"MLC_TEST_ENGINE={TEST_ENGINE!r}: choose one of {', '.join(ENGINE_JARS)}")


def start_test_engine(home: Path, kind: str) -> tuple[EngineSettings, ManagedProcess]:
    """An engine of ``kind`` (camunda or operaton) on H2 under ``home``, with REST auth and the test users."""
    settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="mlctest",
                              password="mlc-test-secret", webapps_path=WEBAPPS_PATHS[kind])
    fleet = FleetSettings(home=home, engine_jar=ENGINE_JARS[kind], bpmn_dir=REPO / "bpmn")
    try:
        engine = engine_process(fleet, settings, extra_env={
            "MLC_ENGINE_REST_AUTH": "true", "MLC_ENGINE_WORKER_USER": WORKER_USER,
            "MLC_ENGINE_WORKER_PASSWORD": WORKER_PASSWORD})
        engine.start(timeout_s=fleet.engine_start_timeout_s)
    except FleetError as exc:
        pytest.exit(f"the test engine ({kind}) could not start: {exc}", returncode=3)
    return settings, engine


@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSettings]:
    """The session engine: Camunda, or Operaton with MLC_TEST_ENGINE=operaton."""
    settings, engine = start_test_engine(tmp_path_factory.mktemp("engine-home"), TEST_ENGINE)
    yield settings
    engine.stop()


@pytest.fixture(scope="session")
def operaton_engine_settings(request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSettings]:
    """An Operaton engine beside the session one (the session engine itself when that is Operaton)."""
    if TEST_ENGINE == "operaton":
        yield request.getfixturevalue("engine_settings")
        return
    settings, engine = start_test_engine(tmp_path_factory.mktemp("operaton-home"), "operaton")
    yield settings
    engine.stop()


@pytest.fixture(scope="session")
def worker_engine_settings(engine_settings: EngineSettings) -> EngineSettings:
    """The session engine as the workers' own user sees it."""
    return engine_settings.model_copy(update={"user": WORKER_USER, "password": SecretStr(WORKER_PASSWORD)})


@pytest.fixture(scope="session")
def engine(engine_settings: EngineSettings) -> Iterator[EngineClient]:
    with EngineClient(engine_settings) as client:
        yield client


@pytest.fixture(scope="session")
def harness_process(engine: EngineClient) -> str:
    """Deploys tests/fixtures/harness-check.bpmn; returns its process key."""
    engine.deploy("harness-tests", {"harness-check.bpmn": (FIXTURES / "harness-check.bpmn").read_bytes()})
    return "harness-check"


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> DataSettings:
    """Data roots that hold every test's ``tmp_path``: the session's base temporary folder."""
    return DataSettings(roots=[tmp_path_factory.getbasetemp()])


@pytest.fixture(scope="session")
def mlflow_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowSettings]:
    """A real MLflow tracking server (SQLite, local artifacts), started once per test session."""
    home = tmp_path_factory.mktemp("mlflow-home")
    settings = MlflowSettings(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment="mlc-tests")
    try:
        server = mlflow_process(FleetSettings(home=home), settings).start(timeout_s=120)
    except FleetError as exc:
        pytest.exit(f"the test MLflow server could not start: {exc}", returncode=3)
    yield settings
    server.stop()


@pytest.fixture(scope="session")
def jira_server() -> Iterator[JiraDevServer]:
    """The Jira-compatible development server, checking requests against Atlassian's OpenAPI."""
    with JiraDevServer(port=0, spec_path=JIRA_CONTRACT).start() as server:
        assert server.checks_requests, f"the Jira contract is not at {JIRA_CONTRACT}"
        yield server


@pytest.fixture
def jira(jira_server: JiraDevServer) -> JiraDevServer:
    """The session's Jira development server with no faults pending."""
    jira_server.inject_faults(503, 0)
    return jira_server


class MlserverFixture:
    """The session's MLServer: its V2 endpoint and the model repository it loads from."""

    def __init__(self, endpoint: str, repository: Path, start_seconds: float) -> None:
        self.endpoint = endpoint
        self.repository = repository
        self.start_seconds = start_seconds


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlserverFixture]:
    """A real MLServer (V2 protocol, MLflow runtime) on free ports with an empty repository, once per session."""
    import time

    from workers.fleet.processes import mlserver_process

    home = tmp_path_factory.mktemp("mlserver-home")
    repository = home / "models"
    http_port = free_port()
    process = mlserver_process(FleetSettings(home=home), http_port, free_port(), free_port(), repository)
    started = time.monotonic()
    try:
        process.start(timeout_s=120)
    except FleetError as exc:
        pytest.exit(f"the test MLServer could not start: {exc}", returncode=3)
    yield MlserverFixture(f"http://127.0.0.1:{http_port}", repository, time.monotonic() - started)
    process.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A PostgreSQL server of the module's own (its port; user ``mlc``, database ``postgres``), or a skip
    where its binaries are not installed."""
    if not has_postgres():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with postgres_server() as server:
        yield server.port


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Settings]:
    """A real S3-compatible server (moto's) on a free port, with credentials in the environment."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    with moto_server() as settings:
        yield settings


def new_bucket(s3: S3Settings) -> str:
    """A new, empty bucket on the S3-compatible server of ``s3``; its name."""
    import pyarrow.fs as pafs

    name = f"scores-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=s3.endpoint_url.removeprefix("http://"), scheme="http",
                      region="us-east-1", allow_bucket_creation=True).create_dir(name)
    return name


@pytest.fixture
def bucket(s3_server: S3Settings) -> str:
    """A new, empty bucket on the moto server."""
    return new_bucket(s3_server)
