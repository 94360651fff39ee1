"""find-runtimes: matching by service tag and stage, named outcomes when nothing matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.topics.test_send_notification import task
from workers.domain.runtimes import InventoryError
from workers.harness.outcomes import BusinessError
from workers.topics.find_runtimes import FindRuntimesInput, make_handler

INVENTORY = """
stages: [DEV, PROD]
runtimes:
  - {name: dev-batch, stage: DEV, service_tags: [fraud], endpoints: []}
  - {name: dev-online, stage: DEV, service_tags: [fraud, churn], endpoints: ["http://127.0.0.1:1"],
     model_repository: /tmp/models}
  - {name: prod-batch, stage: PROD, service_tags: [churn], endpoints: []}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "runtimes.yaml"
    path.write_text(INVENTORY)
    return path


def find(inventory: Path, **variables: str):
    return make_handler(inventory)(FindRuntimesInput(**variables), task())


def test_runtimes_match_tag_and_stage_in_file_order(inventory):
    output = find(inventory, SERVICE_TAG="fraud", MODEL_STAGE="dev")
    assert output.runtimes == ["dev-batch", "dev-online"]
    assert output.runtime_modes == {"dev-batch": "batch", "dev-online": "online"}
    assert output.stable_endpoints == {}  # no model named: no URL to give


def test_the_stable_url_of_the_model_on_each_online_runtime(inventory):
    output = find(inventory, SERVICE_TAG="fraud", MODEL_STAGE="DEV", MODEL_ID="fraud model")
    assert output.stable_endpoints == {"dev-online": "http://127.0.0.1:1/v2/models/fraud-model/infer"}


def test_no_runtime_in_the_stage_says_where_the_tag_is_served(inventory):
    with pytest.raises(BusinessError) as error:
        find(inventory, SERVICE_TAG="fraud", MODEL_STAGE="PROD")
    assert error.value.code == "NO_RUNTIME"
    assert "'fraud' in stage PROD" in error.value.message and "dev-batch (DEV)" in error.value.message


def test_missing_service_tag_and_unknown_stage_are_named(inventory):
    with pytest.raises(BusinessError, match="no service tag"):
        find(inventory, MODEL_STAGE="DEV")
    with pytest.raises(BusinessError, match="unknown stage 'QA'"):
        find(inventory, SERVICE_TAG="fraud", MODEL_STAGE="QA")


def test_an_edited_inventory_applies_without_restart(inventory):
    handler = make_handler(inventory)
    inventory.write_text(INVENTORY.replace("service_tags: [churn]", "service_tags: [churn, fraud]"))
    assert handler(FindRuntimesInput(SERVICE_TAG="fraud", MODEL_STAGE="PROD"), task()).runtimes == ["prod-batch"]


def test_a_broken_inventory_stops_the_worker_at_start(tmp_path):
    broken = tmp_path / "runtimes.yaml"
    broken.write_text("stages: [DEV]\nruntimes:\n  - {name: x, stage: QA, service_tags: [a]}\n")
    with pytest.raises(InventoryError, match="QA"):
        make_handler(broken)


def test_a_promotion_target_outside_the_inventory_stops_before_anything_deploys(inventory):
    with pytest.raises(BusinessError) as error:
        find(inventory, SERVICE_TAG="fraud", MODEL_STAGE="DEV", PROMOTE_TO="staging")
    assert error.value.code == "BAD_PROMOTION" and "DEV -> PROD" in error.value.message


def test_a_promotion_target_before_the_stage_is_refused(inventory):
    with pytest.raises(BusinessError) as error:
        find(inventory, SERVICE_TAG="churn", MODEL_STAGE="PROD", PROMOTE_TO="dev")
    assert error.value.code == "BAD_PROMOTION" and "forwards only" in error.value.message


def test_promotion_moves_to_the_next_stage_of_the_inventory(inventory):
    from workers.topics.promote_stage import PromoteInput
    from workers.topics.promote_stage import make_handler as promote

    output = promote(inventory)(PromoteInput(MODEL_STAGE="dev", PROMOTE_TO="PROD"), task())
    assert (output.model_stage, output.promoted_from_stage) == ("PROD", "DEV")
    with pytest.raises(BusinessError) as error:
        promote(inventory)(PromoteInput(MODEL_STAGE="PROD", PROMOTE_TO="PROD"), task())
    assert error.value.code == "BAD_PROMOTION" and "last" in error.value.message


def test_promotion_from_a_stage_the_inventory_lacks_is_refused(inventory):
    from workers.topics.promote_stage import PromoteInput
    from workers.topics.promote_stage import make_handler as promote

    with pytest.raises(BusinessError) as error:
        promote(inventory)(PromoteInput(MODEL_STAGE="qa", PROMOTE_TO="PROD"), task())
    assert error.value.code == "BAD_PROMOTION" and "'qa' is not a stage" in error.value.message


def test_an_inventory_broken_since_the_worker_started_is_an_incident(inventory):
    from workers.harness.outcomes import FatalError

    handler = make_handler(inventory)
    inventory.write_text("stages: [DEV\n")
    with pytest.raises(FatalError) as error:
        handler(FindRuntimesInput(SERVICE_TAG="fraud", MODEL_STAGE="DEV"), task())
    assert str(inventory) in str(error.value) and "not valid YAML" in str(error.value)
