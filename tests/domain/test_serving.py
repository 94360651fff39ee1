"""What the serving topics share: the runtimes of a task, the clients of their endpoints, the rows a
version is sent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workers.clients.mlserver import MlserverClient
from workers.config import DataSettings, MlflowSettings
from workers.domain.runtimes import Runtime, RuntimeInventory
from workers.domain.serving import EndpointClients, runtimes_of, sample_rows
from workers.harness.outcomes import FatalError

LOCAL_ONLY = MlflowSettings(tracking_uri="http://127.0.0.1:9")  # never reached: these files are not artifacts


class Refused(Exception):
    pass


def online(name: str, *endpoints: str, stage: str = "DEV") -> Runtime:
    return Runtime(name=name, stage=stage, service_tags=("svc",), endpoints=endpoints,
                   model_repository=Path("/srv/models"))


def test_each_endpoint_has_one_client_made_when_first_asked_for():
    made: list[str] = []

    def factory(endpoint: str) -> MlserverClient:
        made.append(endpoint)
        return MlserverClient(endpoint)

    clients = EndpointClients(factory)
    first = clients.of(online("a", "http://one:1", "http://two:2"))
    again = clients.of(online("b", "http://two:2", "http://three:3"))
    assert [client.endpoint for client in first] == ["http://one:1", "http://two:2"]
    assert [client.endpoint for client in again] == ["http://two:2", "http://three:3"]
    assert again[0] is first[1]
    assert made == ["http://one:1", "http://two:2", "http://three:3"]


def test_the_runtimes_of_a_task_are_named_once_each_and_in_its_stage():
    inventory = RuntimeInventory(["DEV", "PROD"], [online("a", "http://a:1"), online("b", "http://b:1"),
                                                   online("p", "http://p:1", stage="PROD")])
    assert [runtime.name for runtime in runtimes_of(inventory, ["b", "a", "b"], "dev")] == ["b", "a"]
    with pytest.raises(FatalError, match="stage PROD, not MODEL_STAGE DEV"):
        runtimes_of(inventory, ["a", "p"], "DEV")
    with pytest.raises(FatalError, match="unknown runtime 'x'"):
        runtimes_of(inventory, ["x"], None)


def test_sample_rows_are_the_complete_rows_without_the_label(tmp_path):
    data = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "y": [1, 2, None, 4], "label": [0, 1, 0, 1]})
    data.to_csv(tmp_path / "test.csv", index=False)
    rows = sample_rows(str(tmp_path / "test.csv"), LOCAL_ONLY, DataSettings(roots=[tmp_path]), label_column="label",
                       read=10, failed=Refused)
    assert rows.to_dict("list") == {"x": [1.0, 4.0], "y": [1.0, 4.0]}
    assert list(rows.index) == [0, 1]


def test_sample_rows_are_all_the_rows_read_when_none_is_complete(tmp_path):
    data = pd.DataFrame({"x": [1.0, None] * 100, "y": [None, 2.0] * 100})
    data.to_csv(tmp_path / "test.csv", index=False)
    rows = sample_rows(str(tmp_path / "test.csv"), LOCAL_ONLY, DataSettings(roots=[tmp_path]), label_column="label",
                       read=5, failed=Refused)
    assert len(rows) == 100  # at least 100 rows are read


def test_sample_rows_outside_the_data_roots_or_unreadable_are_the_callers_failure(tmp_path):
    (tmp_path / "data").mkdir()
    allowed = DataSettings(roots=[tmp_path / "data"])
    with pytest.raises(Refused, match="outside"):
        sample_rows(str(tmp_path / "elsewhere.csv"), LOCAL_ONLY, allowed, label_column="label", read=5,
                    failed=Refused)
    with pytest.raises(Refused, match="no such file"):
        sample_rows(str(tmp_path / "data" / "absent.csv"), LOCAL_ONLY, allowed, label_column="label", read=5,
                    failed=Refused)
