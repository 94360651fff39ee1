"""The runtime inventory: the shipped file, matching by service tag and stage, and the errors that name
the file, runtime and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.config import RuntimeSettings, load
from workers.domain.runtimes import InventoryError, load_inventory

REPO = Path(__file__).resolve().parents[2]

VALID = """
stages: [DEV, SIT, UAT, PROD]
runtimes:
  - name: dev-batch
    stage: DEV
    service_tags: [fraud]
  - name: dev-online
    stage: dev
    service_tags: [fraud, churn]
    endpoints: ["${MLSERVER_URL:-http://127.0.0.1:8090/}"]
    model_repository: ${REPO_DIR:-/srv/models}
  - name: prod-online
    stage: PROD
    service_tags: [fraud]
    endpoints: [http://mlserver.prod:8080]
    model_repository: /srv/prod
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runtimes.yaml"
    path.write_text(text)
    return path


def failure(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(InventoryError) as error:
        load_inventory(write(tmp_path, text), environ or {})
    return str(error.value)


def test_the_shipped_inventory_has_a_batch_and_an_online_runtime_for_the_sample_in_dev():
    inventory = load_inventory(REPO / "deploy/runtimes.yaml", {})
    assert inventory.stages == ("DEV", "SIT", "UAT", "PROD")
    dev = inventory.matching("cancer-screening", "DEV")
    assert [(runtime.name, runtime.mode) for runtime in dev] == [("dev-batch", "batch"), ("dev-mlserver", "online")]
    assert dev[1].endpoints == ("http://127.0.0.1:8090",)
    assert dev[1].model_repository == Path(".mlc/mlserver/models")
    assert {runtime.stage for runtime in inventory.matching("cancer-screening")} == {"DEV", "SIT", "UAT", "PROD"}


def test_the_shipped_inventory_takes_the_compose_endpoint_from_the_environment():
    inventory = load_inventory(REPO / "deploy/runtimes.yaml", {"MLC_MLSERVER_URL": "http://mlserver:8080"})
    assert inventory.get("dev-mlserver").endpoints == ("http://mlserver:8080",)


def test_matching_by_tag_and_stage_in_file_order(tmp_path):
    inventory = load_inventory(write(tmp_path, VALID), {})
    assert [r.name for r in inventory.matching("fraud", "DEV")] == ["dev-batch", "dev-online"]
    assert [r.name for r in inventory.matching("fraud", "prod")] == ["prod-online"]
    assert [r.name for r in inventory.matching("churn")] == ["dev-online"]
    assert inventory.matching("fraud", "UAT") == []
    assert inventory.matching("unknown-tag", "DEV") == []
    online = inventory.get("dev-online")
    assert online.stage == "DEV" and online.mode == "online"
    assert online.endpoints == ("http://127.0.0.1:8090",)
    assert online.model_repository == Path("/srv/models")
    assert inventory.get("dev-batch").mode == "batch"


def test_variables_with_and_without_defaults(tmp_path):
    inventory = load_inventory(write(tmp_path, VALID), {"MLSERVER_URL": "http://mlserver:8080", "REPO_DIR": "/m"})
    assert inventory.get("dev-online").endpoints == ("http://mlserver:8080",)
    assert inventory.get("dev-online").model_repository == Path("/m")
    message = failure(tmp_path, VALID.replace("${REPO_DIR:-/srv/models}", "${REPO_DIR}"))
    assert message == f"{tmp_path / 'runtimes.yaml'}: environment variable REPO_DIR is not set and has no default"


def test_next_stage(tmp_path):
    inventory = load_inventory(write(tmp_path, VALID), {})
    assert inventory.next_stage("DEV") == "SIT"
    assert inventory.next_stage("uat") == "PROD"
    assert inventory.next_stage("PROD") is None
    with pytest.raises(InventoryError, match="unknown stage 'QA'; the stages are DEV, SIT, UAT, PROD"):
        inventory.next_stage("QA")


def test_an_unknown_stage_names_the_runtime_and_the_stages(tmp_path):
    message = failure(tmp_path, VALID.replace("stage: PROD", "stage: QA"))
    assert message == (f"{tmp_path / 'runtimes.yaml'}: runtime 'prod-online': field 'stage': unknown stage 'QA'; "
                       f"the stages are DEV, SIT, UAT, PROD")


def test_a_duplicate_name_is_refused(tmp_path):
    message = failure(tmp_path, VALID.replace("name: prod-online", "name: dev-batch"))
    assert message.endswith("runtime 'dev-batch': field 'name': the name is used by an earlier runtime")


@pytest.mark.parametrize(("change", "expected"), [
    (("service_tags: [fraud]\n  - name: dev-online", "service_tags: []\n  - name: dev-online"),
     "runtime 'dev-batch': field 'service_tags': "),
    (("endpoints: [http://mlserver.prod:8080]", "endpoints: [mlserver.prod:8080]"),
     "runtime 'prod-online': field 'endpoints': Value error, 'mlserver.prod:8080' is not an http(s) URL"),
    (("    model_repository: /srv/prod\n", ""),
     "runtime 'prod-online': field 'model_repository': an online runtime (with endpoints) needs the folder"),
    (("    stage: DEV\n", "    stage: DEV\n    endpoint: http://x\n"),
     "runtime 'dev-batch': field 'endpoint': Extra inputs are not permitted"),
    (("  - name: dev-batch\n", "  - name: ''\n"), "runtime #1: field 'name': "),
])
def test_field_errors_name_the_runtime_and_the_field(tmp_path, change, expected):
    message = failure(tmp_path, VALID.replace(*change))
    assert message.startswith(f"{tmp_path / 'runtimes.yaml'}: {expected}"), message


def test_file_level_problems(tmp_path):
    path = tmp_path / "runtimes.yaml"
    assert failure(tmp_path, "runtimes: []\n") == f"{path}: field 'stages': Field required"
    assert failure(tmp_path, "- just a list\n") == f"{path}: expected a mapping with 'stages' and 'runtimes'"
    assert failure(tmp_path, "stages: [DEV, dev]\n") == f"{path}: stages are listed twice: DEV, dev"
    assert failure(tmp_path, "stages: [DEV\n").startswith(f"{path}: not valid YAML")
    with pytest.raises(InventoryError, match="absent.yaml: cannot read the runtime inventory"):
        load_inventory(tmp_path / "absent.yaml")


def test_settings_name_the_file(monkeypatch):
    assert load(RuntimeSettings).file == Path("deploy/runtimes.yaml")
    monkeypatch.setenv("MLC_RUNTIMES_FILE", "/etc/mlc/runtimes.yaml")
    assert load(RuntimeSettings).file == Path("/etc/mlc/runtimes.yaml")


SPARK = """
stages: [DEV]
runtimes:
  - name: dev-spark
    stage: DEV
    service_tags: [fraud]
    kind: spark
    spark:
      master: ${SPARK_MASTER:-local[2]}
      config: {spark.executor.memory: 2g, spark.sql.shuffle.partitions: 8, spark.sql.adaptive.enabled: true}
      staging: s3a://jobs/staging
"""


def test_a_spark_runtime_has_a_master_and_its_configuration(tmp_path):
    runtime = load_inventory(write(tmp_path, SPARK), {"SPARK_MASTER": "spark://spark:7077"}).get("dev-spark")
    assert (runtime.kind, runtime.mode) == ("spark", "batch")
    assert runtime.spark.master == "spark://spark:7077"
    assert runtime.spark.config == {"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "8",
                                    "spark.sql.adaptive.enabled": "true"}
    assert runtime.spark.staging == "s3a://jobs/staging"
    assert load_inventory(write(tmp_path, VALID), {}).get("dev-batch").kind == "in-process"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda text: text.replace("master: ${SPARK_MASTER:-local[2]}", 'master: ""'),
     "runtime 'dev-spark': field 'spark.master'"),
    (lambda text: text.split("    spark:")[0], "runtime 'dev-spark': field 'spark': a spark runtime needs"),
    (lambda text: text.replace("kind: spark", "kind: in-process"),
     "runtime 'dev-spark': field 'spark': only a runtime of kind spark has a spark section"),
    (lambda text: text.replace("kind: spark", "kind: dask"), "runtime 'dev-spark': field 'kind'"),
    (lambda text: text.replace("    kind: spark", "    kind: spark\n    endpoints: [http://x:1]\n"
                                                  "    model_repository: /m"),
     "runtime 'dev-spark': field 'kind': a spark runtime is a batch runtime and has no endpoints"),
])
def test_a_spark_runtime_without_what_it_needs_is_refused(tmp_path, change, expected):
    message = failure(tmp_path, change(SPARK))
    assert message.startswith(f"{tmp_path / 'runtimes.yaml'}: {expected}"), message


def test_the_shipped_inventory_has_a_spark_runtime_on_a_local_master_by_default():
    inventory = load_inventory(REPO / "deploy/runtimes.yaml", {})
    spark = inventory.get("dev-spark")
    assert (spark.kind, spark.mode, spark.spark.master) == ("spark", "batch", "local[2]")
    assert "cancer-screening" not in spark.service_tags  # the sample's jobs stay in-process
    assert load_inventory(REPO / "deploy/runtimes.yaml", {"MLC_SPARK_MASTER": "spark://spark-master:7077"}).get(
        "dev-spark").spark.master == "spark://spark-master:7077"
