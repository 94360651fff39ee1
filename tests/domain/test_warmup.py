"""The warm-up's pieces without a server: the request log, the agreement of two answers, the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support import write_inventory
from workers.clients.mlserver import InferenceAnswer, InferenceOutput, MlserverError, MlserverUnavailable
from workers.domain.runtimes import InventoryError, Runtime, load_inventory
from workers.domain.warmup import (
    NOT_COMPUTED,
    ReplayRequest,
    WarmUpMeasure,
    agreement,
    combined_metrics,
    read_request_log,
    replay,
    requests_from_rows,
)


def tensor(name: str, rows: list[float]) -> dict:
    return {"name": name, "shape": [len(rows), 1], "datatype": "FP64", "data": rows}


def output(data: list, name: str = "output-1") -> InferenceOutput:
    return InferenceOutput(name=name, shape=(len(data), 1), datatype="INT64", data=data)


def test_the_request_log_gives_its_last_requests_and_counts_the_lines_it_skips(tmp_path):
    log = tmp_path / "requests.jsonl"
    lines = [json.dumps({"inputs": [tensor("x", [float(n)])], "parameters": {"content_type": "pd"}}) for n in range(5)]
    lines[1:1] = ["", "not json", json.dumps({"inputs": []}), json.dumps([1, 2]),
                  json.dumps({"inputs": [{"name": "x"}]})]  # blank, broken, empty, not an object, no tensor fields
    lines.append(json.dumps({"request": {"inputs": [tensor("x", [9.0, 10.0])]}, "response": {}}))  # wrapped
    log.write_text("\n".join(lines) + "\n")
    found = read_request_log(log, limit=3)
    assert found is not None and found.skipped == 4 and found.path == log
    assert [request.inputs[0]["data"] for request in found.requests] == [[3.0], [4.0], [9.0, 10.0]]
    assert found.requests[0].parameters == {"content_type": "pd"} and found.requests[2].parameters == {}
    assert [request.rows for request in found.requests] == [1, 1, 2]
    assert read_request_log(tmp_path / "missing.jsonl", limit=3) is None


def test_test_data_rows_become_one_request_each():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    requests = requests_from_rows(frame, limit=2)
    assert len(requests) == 2
    assert requests[1].inputs == [tensor("a", [2.0]), {"name": "b", "shape": [1, 1], "datatype": "BYTES",
                                                        "data": ["y"]}]
    assert requests[1].parameters == {"content_type": "pd"}


def test_agreement_counts_the_rows_on_which_every_output_agrees():
    assert agreement([output([1, 0, 1])], [output([1, 1, 1])], rows=3, tolerance=0) == (3, 2)
    probabilities = InferenceOutput(name="p", shape=(2, 2), datatype="FP64", data=[0.1, 0.9, 0.5, 0.5])
    near = InferenceOutput(name="p", shape=(2, 2), datatype="FP64", data=[0.1 + 1e-9, 0.9, 0.6, 0.4])
    assert agreement([probabilities], [near], rows=2, tolerance=1e-6) == (2, 1)
    assert agreement([output(["a", "b"])], [output(["a", "b"])], rows=2, tolerance=0) == (2, 2)
    assert agreement([output([1, 0])], [output([1, 0], name="other")], rows=2, tolerance=0) == (0, 0)
    assert agreement([output([1, 0, 1])], [output([1, 0])], rows=3, tolerance=0) == (3, 0)  # a row short


def answer(data: list, version: str = "2") -> InferenceAnswer:
    return InferenceAnswer(model_name="m", model_version=version, outputs=[output(data)])


def test_replay_times_both_sides_and_counts_the_candidates_failures():
    requests = [ReplayRequest([tensor("x", [float(n)])]) for n in range(4)]
    calls: list[str] = []

    def candidate(request: ReplayRequest) -> InferenceAnswer:
        calls.append("candidate")
        if request.inputs[0]["data"] == [2.0]:
            raise MlserverError("bad row", status=400)
        return answer([1])

    def champion(request: ReplayRequest) -> InferenceAnswer:
        calls.append("champion")
        return answer([1 if request.inputs[0]["data"] != [3.0] else 0], version="1")

    measure = replay(WarmUpMeasure(runtime="r", source="test data t.csv"), requests, candidate, champion, 0)
    assert calls[:2] == ["candidate", "champion"] and len(calls) == 2 + 8  # one unmeasured call each first
    metrics = measure.metrics()
    assert metrics["warm_up_requests"] == 4 and metrics["warm_up_rows"] == 4
    assert metrics["warm_up_errors"] == 1 and metrics["warm_up_error_rate"] == 0.25
    assert metrics["agreement_rate"] == round(2 / 3, 4)  # three rows both answered, the last one differs
    assert metrics["champion_version"] == "1"
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
    assert metrics["latency_p99_ratio"] > 0
    assert measure.first_error == "bad row"
    assert "champion version 1" in measure.summary() and "agreement 66.7%" in measure.summary()


def test_without_a_champion_agreement_is_not_computed_and_an_unreachable_server_goes_through():
    requests = [ReplayRequest([tensor("x", [1.0])])]
    measure = replay(WarmUpMeasure(runtime="r", source="s"), requests, lambda request: answer([1]), None, 0)
    metrics = measure.metrics()
    assert metrics["agreement_rate"] == NOT_COMPUTED and metrics["champion_latency_p99_ms"] == NOT_COMPUTED
    assert metrics["latency_p99_ratio"] == NOT_COMPUTED and "champion_version" not in metrics
    assert "no champion in service" in measure.summary()

    def down(request: ReplayRequest) -> InferenceAnswer:
        raise MlserverUnavailable("MLServer unreachable")

    with pytest.raises(MlserverUnavailable):
        replay(WarmUpMeasure(runtime="r", source="s"), requests, down, None, 0)


def test_combined_numbers_are_the_worst_of_the_runtimes():
    fast = WarmUpMeasure(runtime="a", source="test data x", champion_version="3", latencies_ms=[1.0, 2.0],
                         champion_latencies_ms=[1.0, 1.0], requests=2, rows=2, compared_rows=2, agreeing_rows=2)
    slow = WarmUpMeasure(runtime="b", source="request log /l.jsonl", latencies_ms=[10.0, 30.0], requests=2, rows=4,
                         errors=1)
    combined = combined_metrics([fast, slow])
    assert combined["warm_up_requests"] == 4 and combined["warm_up_rows"] == 6 and combined["warm_up_errors"] == 1
    assert combined["latency_p99_ms"] == slow.metrics()["latency_p99_ms"]
    assert combined["agreement_rate"] == 1.0  # b had no champion: not computed there
    assert combined["warm_up_error_rate"] == 0.5
    assert combined["champion_version"] == "3" and combined["warm_up_source"] == "request log, test data"


def test_only_an_online_runtime_may_ask_for_a_warm_up(tmp_path: Path):
    path = write_inventory(tmp_path / "runtimes.yaml", ["DEV"], [
        Runtime(name="batch", stage="DEV", service_tags=("s",), warm_up=True)])
    with pytest.raises(InventoryError, match="runtime 'batch': field 'warm_up': only an online runtime"):
        load_inventory(path)
    path = write_inventory(tmp_path / "runtimes.yaml", ["DEV"], [
        Runtime(name="online", stage="DEV", service_tags=("s",), endpoints=("http://127.0.0.1:1",),
                model_repository=tmp_path, warm_up=True, request_log=tmp_path / "log.jsonl", warm_up_requests=5)])
    [runtime] = load_inventory(path).runtimes
    assert runtime.warm_up and runtime.request_log == tmp_path / "log.jsonl" and runtime.warm_up_requests == 5
