"""Settings: environment, *_FILE secrets, and errors that name the variable."""

from __future__ import annotations

import pytest

from workers import config as config_module
from workers.config import ConfigurationError, EngineSettings, JiraSettings, WorkerSettings, load


def test_environment_is_read_with_the_prefix(monkeypatch):
    monkeypatch.setenv("MLC_WORKER_MAX_TASKS", "12")
    monkeypatch.setenv("MLC_ENGINE_URL", "http://engine:8080/engine-rest")
    assert load(WorkerSettings).max_tasks == 12
    assert load(EngineSettings).url == "http://engine:8080/engine-rest"


def test_file_secret_is_read_from_the_named_file(monkeypatch, tmp_path):
    secret = tmp_path / "jira-token"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("MLC_JIRA_TOKEN_FILE", str(secret))
    monkeypatch.delenv("MLC_JIRA_TOKEN", raising=False)
    assert load(JiraSettings).token.get_secret_value() == "s3cr3t"


def test_environment_value_wins_over_file(monkeypatch, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file")
    monkeypatch.setenv("MLC_ENGINE_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("MLC_ENGINE_PASSWORD", "from-env")
    assert load(EngineSettings).password.get_secret_value() == "from-env"


def test_unreadable_secret_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MLC_ENGINE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="MLC_ENGINE_PASSWORD_FILE=.*missing"):
        load(EngineSettings)


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("MLC_WORKER_MAX_TASKS", "many")
    monkeypatch.setenv("MLC_WORKER_LOCK_DURATION_MS", "10")
    with pytest.raises(ConfigurationError) as error:
        load(WorkerSettings)
    assert "MLC_WORKER_MAX_TASKS" in str(error.value)
    assert "MLC_WORKER_LOCK_DURATION_MS" in str(error.value)


def test_mlc_command_reports_configuration_errors(monkeypatch, capsys):
    from workers.cli import main

    monkeypatch.setenv("MLC_LOG_FORMAT", "xml")
    assert main(["topics"]) == 2
    assert "MLC_LOG_FORMAT" in capsys.readouterr().err


def test_worker_with_bad_topic_settings_stops_at_start_naming_them(monkeypatch, capsys):
    from workers.cli import main

    monkeypatch.setenv("MLC_JIRA_API_VERSION", "9")
    assert main(["worker", "create-jira"]) == 2
    assert "MLC_JIRA_API_VERSION" in capsys.readouterr().err


def test_a_topic_takes_a_handler_or_a_way_to_build_one():
    from tests.support import EchoOutput, GreetingInput, echo
    from workers import Topic

    with pytest.raises(TypeError, match="exactly one"):
        Topic(name="t", input_model=GreetingInput, output_model=EchoOutput)
    with pytest.raises(TypeError, match="exactly one"):
        Topic(name="t", input_model=GreetingInput, output_model=EchoOutput, handler=echo, build_handler=lambda: echo)
    assert Topic(name="t", input_model=GreetingInput, output_model=EchoOutput,
                 build_handler=lambda: echo).resolve_handler() is echo


@pytest.mark.parametrize("settings_class", [getattr(config_module, name) for name in config_module.__all__
                                            if name.endswith("Settings") and name != "Settings"])
def test_every_settings_class_reads_env_dotenv_and_file_references(settings_class, tmp_path, monkeypatch):
    """One rule for all: the environment, a .env file in the working directory, and NAME_FILE."""
    assert issubclass(settings_class, config_module.Settings)
    name, field, values = next(candidate for candidate in map(_three_values, settings_class.model_fields.items())
                               if candidate is not None)
    variable = f"{settings_class.model_config['env_prefix']}{name}".upper()
    for alias in getattr(field.validation_alias, "choices", ()):  # S3: the AWS and MLflow variables come first
        monkeypatch.delenv(str(alias), raising=False)
    monkeypatch.chdir(tmp_path)
    dotenv, from_file, from_env = values
    (tmp_path / ".env").write_text(f"{variable}={dotenv}\n")
    assert _text(getattr(settings_class(), name)) == dotenv
    (tmp_path / ".env").unlink()
    (tmp_path / "secret").write_text(f"{from_file}\n")
    monkeypatch.setenv(f"{variable}_FILE", str(tmp_path / "secret"))
    assert _text(getattr(settings_class(), name)) == from_file
    monkeypatch.setenv(variable, from_env)
    assert _text(getattr(settings_class(), name)) == from_env


def _text(value):
    """A setting's value as the environment writes it: lists separated by commas."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _three_values(item):
    """A field of a settings class and three distinct values it accepts, as text; None for other fields."""
    from pathlib import Path
    from typing import Literal, get_args, get_origin

    name, field = item
    if field.annotation in (str, str | None):
        base = "http://example.test" if "url" in name or "uri" in name else "value"
        return name, field, tuple(f"{base}-{n}" for n in ("dotenv", "file", "env"))
    if field.annotation is Path:
        return name, field, ("/from/dotenv", "/from/file", "/from/env")
    if field.annotation == list[Path]:
        return name, field, ("/from/dotenv", "/from/file,/and/file", "/from/env")
    if field.annotation is bool:  # two values only: each source flips it
        return name, field, ("True", "False", "True")
    if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) >= 3:
        return name, field, tuple(get_args(field.annotation)[:3])
    return None


def test_a_topic_overrides_its_own_loop_settings_and_nothing_else(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLC_WORKER_MAX_TASKS", "8")
    monkeypatch.setenv("MLC_WORKER_RUN_METRICS_JOB_MAX_TASKS", "2")
    monkeypatch.setenv("MLC_WORKER_RUN_METRICS_JOB_LOCK_DURATION_MS_FILE", str(tmp_path / "lock"))
    (tmp_path / "lock").write_text("120000\n")
    base = load(WorkerSettings, id="w1", health_port=9411)
    metrics = base.for_topic("run-metrics-job")
    assert (metrics.max_tasks, metrics.lock_duration_ms, metrics.id, metrics.health_port) == (2, 120_000, "w1", 9411)
    assert base.for_topic("get-model") == base


@pytest.mark.parametrize(("value", "named"), [("x", "valid integer"), ("999", "less than or equal to 256")])
def test_an_invalid_topic_setting_names_its_variable(monkeypatch, value, named):
    monkeypatch.setenv("MLC_WORKER_RUN_METRICS_JOB_MAX_TASKS", value)
    with pytest.raises(ConfigurationError, match=f"MLC_WORKER_RUN_METRICS_JOB_MAX_TASKS: .*{named}"):
        load(WorkerSettings).for_topic("run-metrics-job")


def test_mlc_worker_refuses_unknown_groups_and_topics_and_an_empty_selection(capsys):
    from workers.cli import main

    assert main(["worker", "--group", "heavy"]) == 2
    assert ("unknown worker group 'heavy'; groups: light, metrics, scoring, training, deployment"
            in capsys.readouterr().err)
    assert main(["worker", "get-model", "get-modle"]) == 2
    assert "unknown topic 'get-modle'" in capsys.readouterr().err
    assert main(["worker"]) == 2
    assert "name topics, a --group or --all" in capsys.readouterr().err
