"""The throughput benchmark runs end to end against the session engine (REST auth on), on a few tasks.

Only that it works is checked: each client completes its tasks and the result line has its keys.
Timings are the benchmark's output, never a test's assertion (DESIGN.md, "Scale and speed").
"""

from __future__ import annotations

import json

import pytest

from benchmarks.throughput import Options, result_line, run_benchmark
from workers.config import EngineSettings

pytestmark = pytest.mark.engine


def test_the_three_clients_complete_their_tasks(engine_settings: EngineSettings) -> None:
    options = Options(tasks=30, plain_tasks=20, max_tasks=10, harness_max_tasks=8, warmup=10,
                      timeout_s=120, stall_s=60)

    results = run_benchmark(engine_settings, options)

    assert [(m.client, m.tasks) for m in results] == [("raw loop", 30), ("harness", 30), ("plain client", 20)]
    assert all(m.tps > 0 for m in results)
    line = json.loads(result_line(results, options.tasks))
    assert set(line) == {"raw_loop_tps", "harness_tps", "plain_client_tps", "tasks"}
    assert line["tasks"] == 30
    assert all(line[key] > 0 for key in ("raw_loop_tps", "harness_tps", "plain_client_tps"))
