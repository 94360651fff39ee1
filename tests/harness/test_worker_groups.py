"""Several topics in one worker process (`mlc worker TOPIC TOPIC ...`, `--group`): each topic has its own
task loop and settings, the process one health and metrics port, and SIGTERM drains every loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import requests

from tests.conftest import REPO, free_port
from tests.support import finished_instance, start_harness_check, unique_topic, variables_of, wait_for
from workers.config import EngineSettings
from workers.engine import EngineClient


def start_group(engine_settings: EngineSettings, topics: list[str], sleep_s: float, port: int,
                **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "MLC_ENGINE_URL": engine_settings.url,
        "MLC_ENGINE_USER": engine_settings.user or "",
        "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value() if engine_settings.password else "",
        "MLC_WORKER_HEALTH_PORT": str(port),
        "MLC_WORKER_ASYNC_RESPONSE_TIMEOUT_MS": "2000",
        "MLC_WORKER_ID": "group-worker",
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.Popen([sys.executable, "-m", "tests.support.topic_worker", ",".join(topics), str(sleep_s)],
                            cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def env_name(topic: str) -> str:
    return topic.upper().replace("-", "_")


class HealthSampler:
    """Reads /health every 20 ms in the background; keeps the largest in_flight seen per topic."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak: dict[str, int] = {}
        self.last: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.last = requests.get(self.url, timeout=2).json()
            except requests.RequestException:
                continue
            for topic, body in self.last.get("topics", {}).items():
                self.peak[topic] = max(self.peak.get(topic, 0), body["in_flight"])

    def __enter__(self) -> HealthSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_one_process_serves_several_topics_each_with_its_own_loop_and_settings(
        engine: EngineClient, engine_settings: EngineSettings, harness_process: str) -> None:
    single, parallel, failing = unique_topic("one-at-a-time"), unique_topic("parallel"), unique_topic("fail")
    port = free_port()
    worker = start_group(engine_settings, [single, parallel, failing], sleep_s=0.6, port=port,
                         **{f"MLC_WORKER_{env_name(single)}_MAX_TASKS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/health") or worker.poll() is not None, timeout_s=60)
        assert worker.poll() is None, worker.communicate()[0].decode()
        with HealthSampler(f"{base}/health") as sampler:
            instances = {topic: [start_harness_check(engine, topic) for _ in range(3)] for topic in (single, parallel)}
            broken = start_harness_check(engine, failing)
            for topic in (single, parallel):
                for instance in instances[topic]:
                    assert finished_instance(engine, instance, timeout_s=30)["state"] == "COMPLETED"
                    assert variables_of(engine, instance)["handled_by"] == "group-worker"
            incident = wait_for(lambda: engine.get("/incident", processInstanceId=broken), timeout_s=30)[0]
        assert incident["incidentMessage"] == "no greeting for hello ADA"
        assert sampler.peak[single] == 1  # MLC_WORKER_<TOPIC>_MAX_TASKS=1: one task at a time
        assert sampler.peak[parallel] >= 2  # the default, 4, for the other topic of the same process
        health = requests.get(f"{base}/health", timeout=5).json()
        assert health["status"] == "ok" and health["worker_id"] == "group-worker"
        assert set(health["topics"]) == {single, parallel, failing}
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert f'mlc_tasks_completed_total{{topic="{single}"}} 3.0' in metrics
        assert f'mlc_tasks_completed_total{{topic="{parallel}"}} 3.0' in metrics
        assert f'mlc_tasks_failed_total{{kind="incident",topic="{failing}"}} 1.0' in metrics
        assert metrics.count("# TYPE mlc_tasks_completed_total counter") == 1  # one registry for the process

        held = start_harness_check(engine, parallel)
        wait_for(lambda: engine.get("/external-task", processInstanceId=held, locked="true"), timeout_s=30)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, output.decode()
        assert finished_instance(engine, held, timeout_s=5)["state"] == "COMPLETED"  # drained, not unlocked
        assert output.count(b'"worker stopped"') == 3  # every loop drained
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
