"""Typed process variables: Python values to the engine's form and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from workers.engine.variables import decode_variables, encode_variables


def test_values_get_engine_types():
    encoded = encode_variables({"flag": True, "count": 3, "big": 2**40, "ratio": 0.5, "name": "x", "none": None})
    assert {name: v["type"] for name, v in encoded.items()} == {
        "flag": "Boolean", "count": "Integer", "big": "Long", "ratio": "Double", "name": "String", "none": "Null"}


def test_dicts_and_lists_travel_as_json_and_come_back():
    encoded = encode_variables({"metrics": {"auc": 0.91}, "rows": [1, 2]})
    assert encoded["metrics"] == {"value": json.dumps({"auc": 0.91}), "type": "Json"}
    assert decode_variables(encoded) == {"metrics": {"auc": 0.91}, "rows": [1, 2]}


def test_json_serialized_objects_are_decoded():
    raw = {"o": {"type": "Object", "value": '{"a": 1}', "valueInfo": {"serializationDataFormat": "application/json"}}}
    assert decode_variables(raw) == {"o": {"a": 1}}


def test_dates_use_the_engine_format():
    encoded = encode_variables({"at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)})
    assert encoded["at"] == {"value": "2026-01-02T03:04:05.678+0000", "type": "Date"}


def test_unsupported_values_are_refused_with_their_type():
    with pytest.raises(TypeError, match="set"):
        encode_variables({"s": {1, 2}})


def test_a_string_longer_than_the_engines_string_column_is_kept_whole(engine, harness_process):
    from tests.support import start_harness_check, unique_topic, wait_for
    from workers.engine.variables import STRING_LIMIT

    essay = "".join(f"model-{index:05d}, " for index in range(1000))  # 13,000 characters
    assert len(essay) > STRING_LIMIT
    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    [task] = wait_for(lambda: engine.fetch_and_lock(topic, max_tasks=1))
    engine.complete(task["id"], {"essay": essay, "short": "a few words"})
    stored = engine.get("/history/variable-instance", processInstanceId=instance, deserializeValues="false")
    assert decode_variables({entry["name"]: entry for entry in stored})["essay"] == essay
    # the engine itself reads it back as a Java string (what an expression or a script sees)
    [entry] = engine.get("/history/variable-instance", processInstanceId=instance, variableName="essay")
    assert entry["value"] == essay and entry["valueInfo"]["objectTypeName"] == "java.lang.String"
    [short] = engine.get("/history/variable-instance", processInstanceId=instance, variableName="short")
    assert short["type"] == "String"
