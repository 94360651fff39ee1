"""inspect-model-version, set-expiration-date, copy-schedules against the real MLflow registry."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from mlflow import MlflowClient

from tests.topics.test_send_notification import task
from workers.fleet.sample import register_sample_model
from workers.harness.outcomes import BusinessError, FatalError
from workers.topics import copy_schedules, inspect_model_version, set_expiration_date


@pytest.fixture(scope="module")
def versions(mlflow_settings):
    """The sample (v1, in service, with schedules) and a submitted v2 with flags and other tags."""
    sample = register_sample_model(mlflow_settings, name="lifecycle-model", service="cc-fraud")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    client.set_model_version_tag(sample.name, sample.version, "schedule.backtest", "0 6 * * *")
    client.set_model_version_tag(sample.name, sample.version, "schedule.drift", "0 7 * * 1")
    v1 = client.get_model_version(sample.name, sample.version)
    v2 = client.create_model_version(sample.name, v1.source, run_id=v1.run_id, model_id=v1.source.split("/")[-1],
                                     tags={"train": "false", "run_test": "true", "jira": "yes", "stage": "sit",
                                           "schedule.drift": "0 8 * * 1"}, description="retrained")
    return sample, v2.version


def test_inspect_reads_flags_stage_assets_and_changes(mlflow_settings, versions):
    sample, submitted = versions
    handler = inspect_model_version.make_handler(mlflow_settings)
    output = handler(inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=submitted), task())
    assert (output.flag_train, output.flag_run_test, output.flag_jira) == (False, True, True)
    assert output.service_tag == "cc-fraud" and output.model_stage == "SIT"
    assert output.has_test_data and output.input_file.endswith("mlc/test_data.csv")
    assert output.has_dmn and output.previous_version == str(sample.version)
    assert "tag run_test: (none) -> true" in output.changes
    assert "description: (none) -> retrained" in output.changes


def test_inspect_names_the_champion_in_service_at_the_version_s_stage_and_its_comparator(mlflow_settings, versions):
    sample, submitted_to_sit = versions
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    v1 = client.get_model_version(sample.name, sample.version)
    at_dev = client.create_model_version(sample.name, v1.source, run_id=v1.run_id, model_id=v1.source.split("/")[-1],
                                         tags={"run_test": "true"}).version
    handler = inspect_model_version.make_handler(mlflow_settings)
    dev = handler(inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=at_dev), task())
    sit = handler(inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=submitted_to_sit), task())
    champion = handler(inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=sample.version), task())
    assert dev.champion_version == str(sample.version)
    assert dev.comparator_file == v1.tags["comparator"] and dev.comparator_file.endswith("mlc/comparator.dmn")
    assert sit.champion_version is None  # nothing in service at SIT
    assert champion.champion_version is None  # the champion is not its own challenger


def test_inspect_of_the_version_in_service_has_no_previous(mlflow_settings, versions):
    sample, _ = versions
    output = inspect_model_version.make_handler(mlflow_settings)(
        inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=sample.version), task())
    assert output.previous_version is None and "first version" in output.changes
    assert not output.flag_run_test


def test_inspect_of_an_unknown_version_is_a_business_error(mlflow_settings, versions):
    sample, _ = versions
    with pytest.raises(BusinessError) as error:
        inspect_model_version.make_handler(mlflow_settings)(
            inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION="99"), task())
    assert error.value.code == "MODEL_NOT_FOUND" and "99" in error.value.message


def test_expiration_date_comes_from_the_ticket_field(mlflow_settings, versions):
    sample, submitted = versions
    handler = set_expiration_date.make_handler(mlflow_settings)
    output = handler(set_expiration_date.ExpirationInput(
        MODEL_ID=sample.name, MODEL_VERSION=submitted, JIRA_FIELDS={"Expiration Date": "2027-03-31"}), task())
    assert output.expiration_date == "2027-03-31"
    tags = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_model_version(sample.name, submitted).tags
    assert tags["expiration_date"] == "2027-03-31"


def test_expiration_date_defaults_to_a_year_ahead():
    expires, source = set_expiration_date.expiration_date({"Summary": "x"}, date(2026, 11, 23))
    assert expires == date(2026, 11, 23) + timedelta(days=365) and "one year" in source


def test_malformed_expiration_date_names_the_value():
    with pytest.raises(FatalError, match="'next spring'"):
        set_expiration_date.expiration_date({"Expiration Date": "next spring"}, date(2026, 11, 23))


def test_schedules_are_copied_without_overwriting(mlflow_settings, versions):
    sample, submitted = versions
    output = copy_schedules.make_handler(mlflow_settings)(copy_schedules.CopySchedulesInput(
        MODEL_ID=sample.name, MODEL_VERSION=submitted, PREVIOUS_VERSION=sample.version), task())
    assert output.schedules_copied == ["backtest"]
    tags = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_model_version(sample.name, submitted).tags
    assert tags["schedule.backtest"] == "0 6 * * *" and tags["schedule.drift"] == "0 8 * * 1"


def test_no_previous_version_copies_nothing(mlflow_settings, versions):
    sample, submitted = versions
    output = copy_schedules.make_handler(mlflow_settings)(copy_schedules.CopySchedulesInput(
        MODEL_ID=sample.name, MODEL_VERSION=submitted), task())
    assert output.schedules_copied == []
