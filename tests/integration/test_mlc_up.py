"""The README's first command: `mlc up` starts the fleet and takes the sample model through Run Back Test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import local_fleet_environment
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.engine
def test_mlc_up_runs_the_sample_through_back_tests_and_a_deployment_then_stops_cleanly(tmp_path):
    """As from a plain clone: no Jira contract anywhere (the tests' MLC_JIRA_CONTRACT is taken away)."""
    environment = local_fleet_environment(tmp_path / "fleet")
    result = subprocess.run([sys.executable, "-m", "workers", "up", "--exit-after-demo"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "back test on its test data: Back test passed" in output
    assert "back test on drifted data: Back test failed, ticket open (MLC-1)" in output
    # a version registered in MLflow starts Deploy with run test and Jira through the webhook and the bridge
    assert "review ticket MLC-2 waits for approval" in output
    assert "Cockpit   http://127.0.0.1:" in output
    assert "stopping the fleet" in output
    assert f"started {len(TOPICS)} workers" in output
    for log in ("engine.log", "mlflow.log", "mlserver.log", "bridge.log", "jira-dev.log", "servicenow-dev.log",
                "worker-deploy-model.log", "worker-run-batch-job.log"):
        assert (tmp_path / "fleet" / "logs" / log).exists(), log
    jira_log = (tmp_path / "fleet" / "logs" / "jira-dev.log").read_text()
    assert jira_log.count("requests are not checked against it") == 1
    # the development servers keep their tickets in the fleet home
    assert {path.name for path in (tmp_path / "fleet" / "devservers").iterdir()} >= {"jira.json"}
