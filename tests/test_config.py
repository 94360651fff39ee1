"""Settings: environment, *_FILE secrets, and errors that name the variable."""

from __future__ import annotations

import pytest

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
    from tests.support import GreetingInput, EchoOutput, echo
    from workers import Topic

    with pytest.raises(TypeError, match="exactly one"):
        Topic(name="t", input_model=GreetingInput, output_model=EchoOutput)
    with pytest.raises(TypeError, match="exactly one"):
        Topic(name="t", input_model=GreetingInput, output_model=EchoOutput, handler=echo, build_handler=lambda: echo)
    assert Topic(name="t", input_model=GreetingInput, output_model=EchoOutput,
                 build_handler=lambda: echo).resolve_handler() is echo
