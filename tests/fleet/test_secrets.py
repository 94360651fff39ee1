"""The local fleet's secrets: made once, owner-only, reused, overridden by the environment."""

from __future__ import annotations

import stat

import pytest

from workers.config import EngineSettings
from workers.fleet.secrets import SECRET_VARIABLES, FleetSecrets, operator_credentials


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch):
    for variable in (*SECRET_VARIABLES.values(), "MLC_ENGINE_ADMIN_USER", "MLC_ENGINE_WORKER_USER"):
        monkeypatch.delenv(variable, raising=False)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_makes_one_owner_only_file_per_secret_and_later_uses_reuse_them(tmp_path):
    first = FleetSecrets.load_or_create(tmp_path)
    assert mode(tmp_path / "secrets") == 0o700
    for name in SECRET_VARIABLES:
        assert mode(tmp_path / "secrets" / name) == 0o600
    assert first.admin_password != first.worker_password
    assert first.mlflow_webhook != first.jira_webhook
    assert FleetSecrets.load_or_create(tmp_path) == first


def test_a_secret_in_the_environment_wins_over_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLC_ENGINE_ADMIN_PASSWORD", "chosen-by-the-operator")
    secrets = FleetSecrets.load_or_create(tmp_path)
    assert secrets.admin_password.get_secret_value() == "chosen-by-the-operator"
    assert secrets.path("engine-admin-password") is None
    assert secrets.engine_environment()["MLC_ENGINE_ADMIN_PASSWORD"] == "chosen-by-the-operator"


def test_workers_get_their_own_user_and_the_description_names_no_value(tmp_path):
    secrets = FleetSecrets.load_or_create(tmp_path)
    engine = secrets.for_workers(EngineSettings())
    assert engine.user == "mlc-worker"
    assert engine.password == secrets.worker_password
    assert secrets.engine_environment()["MLC_ENGINE_REST_AUTH"] == "true"
    description = secrets.describe()
    assert str(tmp_path / "secrets") in description
    assert all(value.get_secret_value() not in description
               for value in (secrets.admin_password, secrets.worker_password, secrets.jira_webhook))


def test_mlc_commands_use_the_local_fleets_admin_unless_a_user_is_given(tmp_path):
    assert operator_credentials(EngineSettings(), tmp_path).user is None  # no fleet there: nothing made
    assert not (tmp_path / "secrets").exists()
    secrets = FleetSecrets.load_or_create(tmp_path)
    admin = operator_credentials(EngineSettings(), tmp_path)
    assert (admin.user, admin.password) == ("admin", secrets.admin_password)
    assert operator_credentials(EngineSettings(user="ops", password="x"), tmp_path).user == "ops"
