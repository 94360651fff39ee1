"""ModelOp-shaped test criteria judged through the engine's DMN engine: every hit policy, string,
boolean and nested metrics, expressions in FEEL, JUEL and Groovy, and entries that cannot be evaluated.

The tables under tests/fixtures/dmn/modelop are written in the shapes of ModelOp's public
test-criteria files (Model Test Comparator decisions, empty input expressions named by
camunda:inputVariable, outputs passes/reason/category and more).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import REPO, WORKER_PASSWORD, WORKER_USER, free_port
from workers.config import EngineSettings, FleetSettings
from workers.domain.decisions import DecisionError, evaluate_dmn
from workers.engine import EngineClient
from workers.fleet.processes import engine_process

pytestmark = pytest.mark.engine

MODELOP = Path(__file__).resolve().parents[1] / "fixtures" / "dmn" / "modelop"
TEST_RESULT = json.loads((MODELOP / "mrm-test-result.json").read_text())


def criteria(name: str) -> bytes:
    return (MODELOP / f"{name}.dmn").read_bytes()


# -- hit policies ----------------------------------------------------------------------------------


def test_unique_is_the_default_and_branches_on_a_string_metric(engine):
    high = evaluate_dmn(criteria("unique-risk-tier"), {"modelRisk": "High", "auc": 0.75}, engine)
    low = evaluate_dmn(criteria("unique-risk-tier"), {"modelRisk": "Low", "auc": 0.75}, engine)
    assert (high.hit_policy, high.passed, high.message) == ("UNIQUE", False, "AUC below 0.8 for a high-risk model")
    assert high.as_variables()["TEST_RESULT_DETAILS"] == [
        {"passes": False, "reason": "AUC below 0.8 for a high-risk model", "category": "performance",
         "issueSeverity": "HIGH"}]
    assert (low.passed, low.message) == (True, "passed: AUC at least 0.7")


def test_unique_with_two_matching_rules_is_the_engine_s_error(engine):
    overlapping = criteria("unique-risk-tier").replace(b"<text>&gt;= 0.8</text>", b"<text>&gt;= 0.6</text>")
    with pytest.raises(DecisionError) as caught:
        evaluate_dmn(overlapping, {"modelRisk": "High", "auc": 0.7}, engine)
    assert caught.value.code == "DMN_INVALID"
    assert "Hit policy 'UNIQUE' only allows a single rule to match" in caught.value.message


def test_first_takes_the_first_match_and_a_catch_all_row_without_passes_does_not_fail(engine):
    regression = evaluate_dmn(criteria("first-methodology"), {"modelMethodology": "regression", "r2_score": 0.3},
                              engine)
    other = evaluate_dmn(criteria("first-methodology"), {"modelMethodology": "survival"}, engine)
    assert (regression.passed, [row.reason for row in regression.rows]) == (False, ["R2 below 0.5"])
    assert other.passed is True
    assert [row.passes for row in other.rows] == [None]
    assert other.message == ("passed: no threshold for this methodology "
                             "(metrics the criteria read are missing: r2_score, auc)")


def test_any_fails_on_a_boolean_metric_and_keeps_custom_outputs(engine):
    invalid = evaluate_dmn(criteria("any-invalid-files"), {"invalidFiles": True, "missing-files count": 0}, engine)
    valid = evaluate_dmn(criteria("any-invalid-files"), {"invalidFiles": False, "missing-files count": 0}, engine)
    assert invalid.passed is False
    assert invalid.rows[0].outputs["action"] == "fix the files"
    assert (valid.passed, valid.rows) == (True, ())


def test_rule_order_with_passes_typed_string_reads_a_flattened_nested_result(engine):
    result = evaluate_dmn(criteria("rule-order-heatmap"), TEST_RESULT, engine)
    assert result.hit_policy == "RULE ORDER"
    assert result.passed is False
    assert result.message == "data drift is Red"
    assert [row.as_dict()["passes"] for row in result.rows] == [False]
    green = {**TEST_RESULT, "heatMap": {"Characteristic Stability": {"testResult": "Green"},
                                        "Data Drift": {"testResult": "Yellow"}}}
    assert evaluate_dmn(criteria("rule-order-heatmap"), green, engine).passed is True


def test_collect_returns_every_failing_row(engine):
    result = evaluate_dmn(criteria("collect-expressions"),
                          {"drift_share": 0.4, "heatMap": {"stability": {"testResult": "Red"}}, "ks-pvalue": 0.01},
                          engine)
    assert result.passed is False
    assert result.message == "drift share 40.0% above 30%; stability is Red; KS p-value below 0.05"


# -- expressions -----------------------------------------------------------------------------------


def test_feel_expressions_see_every_metric_nested_ones_as_contexts(engine):
    result = evaluate_dmn(criteria("collect-expressions"),
                          {"drift_share": 0.1, "heatMap": {"stability": {"testResult": "Green"}}, "ks-pvalue": 0.5},
                          engine)
    assert (result.passed, result.rows, result.missing) == (True, (), ())


def test_a_nested_value_an_expression_reads_that_is_not_there_is_missing_not_broken(engine):
    result = evaluate_dmn(criteria("collect-expressions"), {"drift_share": 0.1, "ks-pvalue": 0.5}, engine)
    assert result.passed is True
    assert result.missing == ("heatMap",)


@pytest.mark.parametrize(("name", "metrics", "passed"), [
    ("juel-expression", {"auc": 0.65}, False),
    ("juel-expression", {"auc": 0.9}, True),
    ("groovy-expression", {"auc": 0.6, "f1_score": 0.5}, False),
    ("groovy-expression", {"auc": 0.9, "f1_score": 0.8}, True),
])
def test_juel_and_groovy_expressions_see_every_metric(engine, name, metrics, passed):
    assert evaluate_dmn(criteria(name), metrics, engine).passed is passed


def test_workers_may_not_deploy_criteria_that_run_code_by_default(worker_engine_settings):
    with EngineClient(worker_engine_settings) as worker, pytest.raises(DecisionError) as caught:
        evaluate_dmn(criteria("groovy-expression").replace(b"auc + f1_score", b"auc + f1_score + 0"),
                     {"auc": 0.9, "f1_score": 0.8}, worker)
    assert caught.value.code == "DMN_INVALID"
    assert "expression language 'groovy' is not FEEL" in caught.value.message
    assert "MLC_ENGINE_WORKER_DMN_LANGUAGES" in caught.value.message


# -- criteria that cannot be evaluated -------------------------------------------------------------


def test_an_entry_the_engine_cannot_evaluate_is_dmn_invalid_never_no_match(engine):
    with pytest.raises(DecisionError) as caught:
        evaluate_dmn(criteria("broken-entry"), {"auc": 5.0}, engine)
    assert caught.value.code == "DMN_INVALID"
    message = caught.value.message
    assert "(in rule 2 (Rule_2), input 'auc')" in message
    assert "FEEL input entry 'if <0 or >10 then true else false' cannot be evaluated" in message


def test_a_string_where_the_table_types_a_number_is_dmn_invalid(engine):
    with pytest.raises(DecisionError, match="Invalid value 'high' for clause with type 'double'") as caught:
        evaluate_dmn(criteria("first-methodology"), {"modelMethodology": "regression", "r2_score": "high"}, engine)
    assert caught.value.code == "DMN_INVALID"


def test_a_string_compared_with_a_number_in_an_untyped_input_is_dmn_invalid(engine):
    untyped = criteria("first-methodology").replace(b'typeRef="double"', b"")
    with pytest.raises(DecisionError, match="Can't compare") as caught:
        evaluate_dmn(untyped, {"modelMethodology": "regression", "r2_score": "high"}, engine)
    assert "(in rule 1 (Rule_1), input 'r2_score')" in caught.value.message


def test_the_raw_nested_test_result_of_a_monitor_is_accepted(engine):
    result = evaluate_dmn(criteria("unique-risk-tier"), TEST_RESULT, engine)
    assert (result.passed, result.message) == (True, "passed: AUC at least 0.8")
    assert result.as_variables()["TEST_RESULT_METRICS"]["heatMap_Data_Drift_testResult"] == "Red"


def test_the_engine_lets_workers_deploy_the_languages_it_is_told_to(tmp_path):
    settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="admin-juel",
                              password="admin-juel-secret")
    fleet = FleetSettings(home=tmp_path, engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                          bpmn_dir=tmp_path / "no-processes")
    (tmp_path / "no-processes").mkdir()
    engine = engine_process(fleet, settings, extra_env={
        "MLC_ENGINE_WORKER_USER": WORKER_USER, "MLC_ENGINE_WORKER_PASSWORD": WORKER_PASSWORD,
        "MLC_ENGINE_WORKER_DMN_LANGUAGES": "juel, Groovy"})
    engine.start(timeout_s=fleet.engine_start_timeout_s)
    try:
        worker = settings.model_copy(update={"user": WORKER_USER, "password": SecretStr(WORKER_PASSWORD)})
        with EngineClient(worker) as client:
            assert evaluate_dmn(criteria("groovy-expression"), {"auc": 0.6, "f1_score": 0.5}, client).passed is False
            assert evaluate_dmn(criteria("juel-expression"), {"auc": 0.9}, client).passed is True
    finally:
        engine.stop()
