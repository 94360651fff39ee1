"""The local fleet's secrets: generated on the first ``mlc up``, kept owner-only in the fleet home, reused after.

One file per secret under ``<home>/secrets/`` (folder 0700, files 0600): the engine admin's password, the
workers' engine user's password and the secrets that sign the MLflow and Jira webhooks. A secret set in
the environment (the variable :data:`SECRET_VARIABLES` names) is used instead of its file. Nothing here
logs a value; :meth:`FleetSecrets.describe` says where they are.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from workers.config import EngineSettings

__all__ = ["SECRET_VARIABLES", "FleetSecrets", "operator_credentials"]

SECRET_VARIABLES: dict[str, str] = {
    "engine-admin-password": "MLC_ENGINE_ADMIN_PASSWORD",
    "engine-worker-password": "MLC_ENGINE_WORKER_PASSWORD",
    "mlflow-webhook-secret": "MLC_BRIDGE_MLFLOW_WEBHOOK_SECRET",
    "jira-webhook-secret": "MLC_BRIDGE_JIRA_WEBHOOK_SECRET",
}
"""Each secret's file name under ``<home>/secrets/`` and the environment variable that overrides it."""
DEFAULT_ADMIN_USER = "admin"
DEFAULT_WORKER_USER = "mlc-worker"


@dataclass(frozen=True)
class FleetSecrets:
    """The credentials and webhook secrets one local fleet runs with."""

    admin_user: str
    admin_password: SecretStr
    worker_user: str
    worker_password: SecretStr
    mlflow_webhook: SecretStr
    jira_webhook: SecretStr
    folder: Path | None = None
    """Where they are kept; None for secrets held in memory only (:meth:`generate`)."""

    @classmethod
    def generate(cls) -> FleetSecrets:
        """Fresh secrets kept nowhere: for a fleet built in a test."""
        values = {name: SecretStr(_new_secret()) for name in SECRET_VARIABLES}
        return cls._of(values, None)

    @classmethod
    def load_or_create(cls, home: Path) -> FleetSecrets:
        """The secrets of the fleet at ``home``: from the environment, else their files, made on first use."""
        folder = home.resolve() / "secrets"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        values: dict[str, SecretStr] = {}
        for name, variable in SECRET_VARIABLES.items():
            given = os.environ.get(variable)
            values[name] = SecretStr(given if given else _read_or_create(folder / name))
        return cls._of(values, folder)

    @classmethod
    def _of(cls, values: dict[str, SecretStr], folder: Path | None) -> FleetSecrets:
        return cls(
            admin_user=os.environ.get("MLC_ENGINE_ADMIN_USER") or DEFAULT_ADMIN_USER,
            admin_password=values["engine-admin-password"],
            worker_user=os.environ.get("MLC_ENGINE_WORKER_USER") or DEFAULT_WORKER_USER,
            worker_password=values["engine-worker-password"],
            mlflow_webhook=values["mlflow-webhook-secret"],
            jira_webhook=values["jira-webhook-secret"],
            folder=folder,
        )

    def engine_environment(self) -> dict[str, str]:
        """What the engine process gets: REST authentication on, its admin and the workers' user."""
        return {
            "MLC_ENGINE_REST_AUTH": "true",
            "MLC_ENGINE_ADMIN_USER": self.admin_user,
            "MLC_ENGINE_ADMIN_PASSWORD": self.admin_password.get_secret_value(),
            "MLC_ENGINE_WORKER_USER": self.worker_user,
            "MLC_ENGINE_WORKER_PASSWORD": self.worker_password.get_secret_value(),
        }

    def for_workers(self, engine: EngineSettings) -> EngineSettings:
        """``engine`` with the workers' credentials, unless ``MLC_ENGINE_USER`` already names a user."""
        if engine.user:
            return engine
        return engine.model_copy(update={"user": self.worker_user, "password": self.worker_password})

    def path(self, name: str) -> Path | None:
        """The file that holds secret ``name`` (a key of :data:`SECRET_VARIABLES`), if it is kept in one."""
        if self.folder is None or os.environ.get(SECRET_VARIABLES[name]):
            return None
        return self.folder / name

    def describe(self) -> str:
        """Where the secrets are, for the start-up output; never their values."""
        if self.folder is None:
            return "secrets held in memory only"
        return (f"secrets in {self.folder} (owner-only): engine admin {self.admin_user} "
                f"(password in {self.folder / 'engine-admin-password'}), worker user {self.worker_user}, "
                "MLflow and Jira webhook secrets")


def operator_credentials(engine: EngineSettings, home: Path) -> EngineSettings:
    """``engine`` as ``mlc`` commands use it: without ``MLC_ENGINE_USER``, the admin of the local fleet at
    ``home`` when that fleet has made its secrets (nothing is made here)."""
    password = home.resolve() / "secrets" / "engine-admin-password"
    if engine.user or not password.is_file():
        return engine
    given = os.environ.get(SECRET_VARIABLES["engine-admin-password"])
    return engine.model_copy(update={
        "user": os.environ.get("MLC_ENGINE_ADMIN_USER") or DEFAULT_ADMIN_USER,
        "password": SecretStr(given or password.read_text(encoding="utf-8").strip())})


def _new_secret() -> str:
    return secrets.token_urlsafe(24)


def _read_or_create(path: Path) -> str:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
        descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC)
    value = _new_secret()
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value
