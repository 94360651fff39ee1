"""evaluate-dmn: ModelOp test-criteria DMNs prepared, deployed and evaluated by the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import finished_instance, running_loop, unique_topic, variables_of
from workers.config import DataSettings, DecisionSettings, MlflowSettings
from workers.domain.decisions import DecisionError, deploy_dmn, evaluate_dmn, prepare_dmn, read_dmn
from workers.engine import EngineClient
from workers.harness.outcomes import BusinessError, FatalError
from workers.harness.topic import TaskContext, Topic
from workers.topics.evaluate_dmn import TOPIC, EvaluateDmnInput, EvaluateDmnOutput, make_handler

pytestmark = pytest.mark.engine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DMN = FIXTURES / "dmn"
COMPARATOR = DMN / "model-test-comparator.dmn"
MLFLOW = MlflowSettings()


def dmn(name: str) -> bytes:
    return (DMN / name).read_bytes()


def task() -> TaskContext:
    return TaskContext(task_id="task-1", topic="evaluate-dmn", process_instance_id="pi-1",
                       process_definition_key="run-back-test", activity_id="evaluate-dmn", business_key=None,
                       retries=None, worker_id="w")


def deployments_of(engine: EngineClient, key: str) -> list[dict]:
    return engine.get("/deployment", name=f"mlc-dmn-{key}")


# -- results -------------------------------------------------------------------------------------


def test_passing_metrics_pass(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.85, "f1_score": 0.8}, engine)
    assert result.passed is True
    assert result.message == "passed: AUC at least 0.7"
    variables = result.as_variables()
    assert variables["TEST_RESULT"] is True
    assert variables["TEST_RESULT_DETAILS"] == [
        {"passes": True, "reason": "AUC at least 0.7", "category": "performance"}]
    assert variables["TEST_RESULT_METRICS"] == {"auc": 0.85, "f1_score": 0.8}
    assert json.loads(json.dumps(variables)) == variables


def test_failing_metrics_fail_with_every_reason(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.6, "f1_score": 0.4}, engine)
    assert result.passed is False
    assert result.message == "AUC below 0.7; F1 score below 0.5"
    assert [(row.passes, row.category) for row in result.rows] == [(False, "performance"), (False, "performance")]


def test_a_missing_metric_is_listed_and_seen_as_null_so_its_rules_do_not_fire(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"f1_score": 0.8}, engine)
    assert result.passed is True
    assert result.missing == ("auc",)
    assert result.message == ("passed: no rule of the test criteria matched the metrics "
                              "(metrics the criteria read are missing: auc)")
    assert result.as_variables()["TEST_RESULT_MISSING"] == ["auc"]


def test_a_missing_metric_fails_the_test_when_the_setting_says_so(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"f1_score": 0.4}, engine, missing_fail=True)
    assert result.passed is False
    assert result.message == "F1 score below 0.5; metrics the criteria read are missing: auc"


def test_a_null_metric_is_missing_and_nan_is_the_not_computed_sentinel(engine):
    assert evaluate_dmn(COMPARATOR.read_bytes(), {"auc": None, "f1_score": 0.8}, engine).missing == ("auc",)
    nan = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": float("nan"), "f1_score": 0.8}, engine)
    assert (nan.passed, nan.message, nan.metrics["auc"]) == (False, "AUC not computed", -99.0)


def test_a_minus_99_sentinel_works_unchanged(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": -99, "f1_score": 0.8}, engine)
    assert (result.passed, result.message, result.rows[0].category) == (False, "AUC not computed", "data")


def test_no_matched_rule_means_passed(engine):
    result = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": -5, "f1_score": 0.9}, engine)
    assert result.passed is True
    assert result.rows == ()
    assert result.message == "passed: no rule of the test criteria matched the metrics"


def test_inputs_named_by_label_only_even_with_spaces_among_other_decisions(engine):
    result = evaluate_dmn(dmn("label-only.dmn"), {"precision": 0.4, "recall at 10": 0.2}, engine)
    assert result.message == "precision below 0.5; recall at 10 below 0.3"
    assert evaluate_dmn(dmn("label-only.dmn"), {"precision": 0.9, "recall at 10": 0.9}, engine).passed


def test_dmn_1_1_with_a_single_decision_of_any_name(engine):
    result = evaluate_dmn(dmn("dmn11.dmn"), {"accuracy": 0.5}, engine)
    assert result.passed is False
    assert result.rows[0].reason == "accuracy below 0.8"
    assert result.rows[0].category is None


# -- deployments ---------------------------------------------------------------------------------


def test_same_dmn_twice_is_one_deployment_with_one_key(engine):
    first = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.9}, engine)
    second = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.5}, engine)
    assert first.decision_key == second.decision_key
    assert len(deployments_of(engine, first.decision_key)) == 1
    assert len(engine.get("/decision-definition", key=first.decision_key)) == 1


def test_redeploying_the_same_content_deploys_nothing_new(engine):
    prepared = prepare_dmn(COMPARATOR.read_bytes())
    deploy_dmn(prepared, engine)
    again = engine.deploy(f"mlc-dmn-{prepared.key}", {f"{prepared.key}.dmn": prepared.content})
    assert not again.get("deployedDecisionDefinitions")
    assert [d["version"] for d in engine.get("/decision-definition", key=prepared.key)] == [1]


def test_dmns_sharing_a_decision_id_do_not_collide(engine):
    lenient = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.85, "f1_score": 0.8}, engine)
    strict = evaluate_dmn(dmn("stricter-comparator.dmn"), {"auc": 0.85}, engine)
    lenient_again = evaluate_dmn(COMPARATOR.read_bytes(), {"auc": 0.85, "f1_score": 0.8}, engine)
    assert lenient.decision_key != strict.decision_key
    assert (lenient.passed, strict.passed, lenient_again.passed) == (True, False, True)
    assert strict.message == "AUC below 0.9"


# -- preparation ---------------------------------------------------------------------------------


def test_preparation_fills_empty_inputs_and_keeps_namespaces():
    prepared = prepare_dmn(dmn("dmn11.dmn"))
    text = prepared.content.decode()
    assert prepared.inputs == ("accuracy",)
    assert "<text>accuracy</text>" in text
    assert "inputVariable" not in text
    assert 'xmlns:feel="http://www.omg.org/spec/FEEL/20140401"' in text  # typeRef="feel:boolean" needs it
    assert f'<decision id="{prepared.key}"' in text
    assert prepared.key.startswith("mlc_dmn_")
    assert prepare_dmn(dmn("dmn11.dmn")) == prepared


def test_preparation_follows_references_to_renamed_decisions():
    prepared = prepare_dmn(COMPARATOR.read_bytes())
    assert f'dmnElementRef="{prepared.key}"' in prepared.content.decode()
    assert prepared.inputs == ("auc", "f1_score")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "problem"), [
    ("not-xml.dmn", "not valid XML: mismatched tag: line 5, column 4"),
    ("no-decision.dmn", "DMN has no decision"),
    ("no-decision-table.dmn", "decision 'Decision_1' has no decision table"),
    ("modelop/collect-count.dmn", "has hit policy COLLECT COUNT: an aggregation gives one value"),
    ("wrong-outputs.dmn", "lacks the output 'passes' (it has ok, reason, category)"),
    ("unnamed-input.dmn", "input 'Input_2' has no name"),
    ("refused-by-engine.dmn", "the engine refused the DMN: POST"),
    ("bad-expression.dmn", "could not evaluate the test criteria (in rule 1 (Rule_1), input 'auc'): "),
])
def test_a_broken_dmn_is_dmn_invalid_naming_the_problem(engine, fixture, problem):
    with pytest.raises(DecisionError) as caught:
        evaluate_dmn(dmn(fixture), {"auc": 0.5}, engine)
    assert caught.value.code == "DMN_INVALID"
    assert problem in caught.value.message


def test_the_engine_s_own_message_is_kept_when_it_refuses_a_dmn(engine):
    with pytest.raises(DecisionError) as caught:
        evaluate_dmn(dmn("refused-by-engine.dmn"), {"auc": 0.5}, engine)
    assert "ENGINE-22004 Unable to transform DMN resource" in caught.value.message


def test_several_decisions_none_named_comparator_is_invalid(engine):
    two = dmn("label-only.dmn").replace(b'name="Model Test Comparator"', b'name="Another"')
    with pytest.raises(DecisionError, match="2 decisions .* none named 'Model Test Comparator'"):
        evaluate_dmn(two, {}, engine)


def test_not_a_dmn_document_is_invalid(engine):
    with pytest.raises(DecisionError, match="not a DMN file"):
        evaluate_dmn(b"<definitions xmlns='http://www.omg.org/spec/BPMN/20100524/MODEL'/>", {}, engine)


def test_an_unreadable_dmn_file_is_dmn_not_found(tmp_path):
    with pytest.raises(DecisionError) as caught:
        read_dmn(str(tmp_path / "missing.dmn"), MLFLOW)
    assert caught.value.code == "DMN_NOT_FOUND"
    assert "missing.dmn: no such file" in caught.value.message


def test_metrics_that_are_not_json_name_the_metric(engine):
    with pytest.raises(DecisionError, match=r"metric 'heatMap.colours' is not a JSON value: \{'Red'\}") as caught:
        evaluate_dmn(COMPARATOR.read_bytes(), {"heatMap": {"colours": {"Red"}}}, engine)
    assert caught.value.code == "METRICS_INVALID"


# -- the handler ---------------------------------------------------------------------------------


@pytest.fixture
def roots(data_roots: DataSettings) -> DataSettings:
    """The test DMN files and every test's tmp_path."""
    return DataSettings(roots=[DMN, *data_roots.roots])


def test_handler_returns_the_variables(engine, roots):
    handler = make_handler(engine, MLFLOW, roots)
    output = handler(EvaluateDmnInput(DMN_FILE=str(COMPARATOR), METRICS={"auc": 0.6, "f1_score": 0.9}), task())
    assert output.test_result is False
    assert output.test_result_message == "AUC below 0.7"
    assert output.test_result_metrics == {"auc": 0.6, "f1_score": 0.9}
    assert output.test_result_missing == []


def test_handler_judges_missing_metrics_by_the_decision_settings(engine, roots):
    strict = make_handler(engine, MLFLOW, roots, DecisionSettings(missing_metrics_fail=True))
    output = strict(EvaluateDmnInput(DMN_FILE=str(COMPARATOR), METRICS={"f1_score": 0.9}), task())
    assert (output.test_result, output.test_result_missing) == (False, ["auc"])


def test_handler_maps_dmn_faults_to_bpmn_errors(engine, roots, tmp_path):
    handler = make_handler(engine, MLFLOW, roots)
    with pytest.raises(BusinessError) as invalid:
        handler(EvaluateDmnInput(DMN_FILE=str(DMN / "wrong-outputs.dmn"), METRICS={}), task())
    with pytest.raises(BusinessError) as missing:
        handler(EvaluateDmnInput(DMN_FILE=str(tmp_path / "none.dmn"), METRICS={}), task())
    assert (invalid.value.code, missing.value.code) == ("DMN_INVALID", "DMN_NOT_FOUND")
    assert "wrong-outputs.dmn" in invalid.value.message and "passes" in invalid.value.message


def test_handler_makes_bad_metrics_an_incident(engine, roots):
    handler = make_handler(engine, MLFLOW, roots)
    data = EvaluateDmnInput(DMN_FILE=str(COMPARATOR), METRICS={"auc": {0.5, 0.6}})
    with pytest.raises(FatalError, match="metric 'auc'"):
        handler(data, task())


def test_a_local_dmn_outside_the_data_roots_is_refused_unread(engine, tmp_path):
    handler = make_handler(engine, MLFLOW, DataSettings(roots=[tmp_path / "data"]))
    with pytest.raises(BusinessError) as refused:
        handler(EvaluateDmnInput(DMN_FILE=str(COMPARATOR), METRICS={"auc": 0.6}), task())
    assert refused.value.code == "PATH_NOT_ALLOWED"
    assert refused.value.message.startswith(f"{COMPARATOR}: path refused")


def test_topic_declaration():
    assert TOPIC.name == "evaluate-dmn"
    assert TOPIC.variable_names == ["DMN_FILE", "METRICS"]
    assert TOPIC.output_model is EvaluateDmnOutput


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_process(engine: EngineClient) -> str:
    engine.deploy("evaluate-dmn-tests",
                  {"evaluate-dmn-check.bpmn": (FIXTURES / "evaluate-dmn-check.bpmn").read_bytes()})
    return "evaluate-dmn-check"


def test_topic_through_the_harness_sets_the_result_variables(engine, engine_settings, check_process, roots):
    topic = Topic(name=unique_topic("evaluate-dmn"), input_model=EvaluateDmnInput,
                  output_model=EvaluateDmnOutput, handler=make_handler(engine, MLFLOW, roots))
    started = [
        engine.start_process(check_process, {"topicName": topic.name, "DMN_FILE": str(COMPARATOR),
                                             "METRICS": metrics})["id"]
        for metrics in ({"auc": 0.9, "f1_score": 0.8}, {"auc": 0.6, "f1_score": None})
    ]
    broken = engine.start_process(check_process, {"topicName": topic.name, "METRICS": {},
                                                  "DMN_FILE": str(DMN / "not-xml.dmn")})["id"]
    with running_loop(topic, engine_settings):
        passed, failed, unusable = (finished_instance(engine, instance) for instance in (*started, broken))
    assert (passed["endActivityId"], failed["endActivityId"]) == ("evaluated", "evaluated")
    good, bad = (variables_of(engine, instance) for instance in started)
    assert good["TEST_RESULT"] is True
    assert good["TEST_RESULT_MESSAGE"] == "passed: AUC at least 0.7"
    assert bad["TEST_RESULT"] is False
    assert bad["TEST_RESULT_MESSAGE"] == "AUC below 0.7"
    assert json.loads(bad["TEST_RESULT_DETAILS"]) == [
        {"passes": False, "reason": "AUC below 0.7", "category": "performance"}]
    assert json.loads(bad["TEST_RESULT_METRICS"]) == {"auc": 0.6, "f1_score": None}
    assert json.loads(bad["TEST_RESULT_MISSING"]) == ["f1_score"]
    assert unusable["endActivityId"] == "criteria-unusable"
    error = variables_of(engine, broken)
    assert error["ERROR_CODE"] == "DMN_INVALID"
    assert "not valid XML" in error["ERROR_MESSAGE"]
