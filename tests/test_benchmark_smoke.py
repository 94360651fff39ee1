"""The benchmarks run end to end on small inputs: throughput against the session engine (REST auth on)
on a few tasks, batch memory on a few thousand rows.

Only that they work is checked: each client completes its tasks, every row is scored, and the result
line has its keys. Timings and memory are the benchmarks' output, never a test's assertion
(DESIGN.md, "Scale and speed").
"""

from __future__ import annotations

import json

import pytest

from benchmarks import batch_memory, serving_switch
from benchmarks.throughput import Options, result_line, run_benchmark
from workers.config import EngineSettings


@pytest.mark.engine
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


def test_batch_memory_scores_every_generated_row(tmp_path) -> None:
    options = batch_memory.Options(rows=2_500, chunk_rows=1_000, directory=tmp_path, tracemalloc=True)

    result = batch_memory.run_benchmark(options)

    assert (result.rows, result.chunks) == (2_500, 3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["batch-input.csv", "batch-scores.csv"]
    line = json.loads(result.line())
    assert {"rows", "seconds", "rows_per_s", "input_mb", "peak_rss_mb", "tracemalloc_peak_mb", "whole_frame_mb",
            "whole_load_peak_rss_mb"} <= set(line)
    assert all(line[key] > 0 for key in ("rows_per_s", "input_mb", "peak_rss_mb", "tracemalloc_peak_mb",
                                         "whole_frame_mb", "whole_load_peak_rss_mb"))


def test_metrics_job_benchmark_runs_every_monitor(tmp_path) -> None:
    from benchmarks import metrics_job

    result = metrics_job.run_benchmark(metrics_job.Options(rows=3_000, chunk_rows=1_000, directory=tmp_path))

    assert result.rows == 3_000 and result.drifted_features == 10
    assert {"rows", "seconds", "peak_rss_mb", "max_psi", "selection_rate_disparity"} <= set(json.loads(result.line()))



def test_serving_switch_counts_every_answer_of_the_stable_endpoint() -> None:
    result = serving_switch.run_benchmark(serving_switch.Options(clients=1, settle_s=0.3))

    assert result.requests > 0 and set(result.versions_answered) <= {"1", "2"}
    line = json.loads(result.line())
    assert {"switch_seconds", "rollback_seconds", "failed_requests", "failed_during_switches"} <= set(line)


@pytest.mark.engine
def test_pickup_latency_times_every_task(engine_settings: EngineSettings) -> None:
    from benchmarks import pickup_latency

    result = pickup_latency.measure(engine_settings, tasks=5, warmup=2, gap_s=0.05)

    assert result["tasks"] == 5
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


@pytest.mark.engine
def test_backlog_drain_completes_every_task_with_its_replicas(engine_settings: EngineSettings) -> None:
    from benchmarks import backlog_drain

    result = backlog_drain.run_benchmark(engine_settings, tasks=60, replicas=2, max_tasks=8, every_s=0.5,
                                         timeout_s=120)

    assert (result["completed"], result["replicas"]) == (60, 2)
    assert result["poll_errors"] == 0 and result["failed_reports"] == 0
    assert result["rate_over_time"] and result["tasks_per_s"] > 0


def test_batch_speed_runs_both_ways_on_both_formats(tmp_path) -> None:
    from benchmarks import batch_speed

    result = batch_speed.run_benchmark(batch_speed.Options(rows=2_000, chunk_rows=500, rounds=1, directory=tmp_path))

    line = json.loads(result.line())
    assert line["rows"] == 2_000 and len(line["csv_streamed_runs"]) == len(line["parquet_arrow_runs"]) == 1
    assert all(line[key] > 0 for key in ("csv_arrow_seconds", "csv_streamed_seconds", "csv_ratio",
                                         "parquet_arrow_seconds", "parquet_streamed_seconds", "parquet_ratio",
                                         "streamed_peak_rss_mb", "arrow_peak_rss_mb"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["speed-input.csv", "speed-input.parquet"]


@pytest.mark.timeout(900)  # a Spark session starts in seconds on an idle machine, minutes on a loaded one
def test_spark_batch_benchmark_scores_every_row_both_ways(tmp_path) -> None:
    from benchmarks import spark_batch

    result = spark_batch.run_benchmark(spark_batch.Options(rows=2_000, chunk_rows=500, directory=tmp_path))

    line = json.loads(result.line())
    assert (line["rows"], line["in_process"]["rows_out"], line["spark"]["rows_out"]) == (2_000, 2_000, 2_000)
    assert {"seconds", "peak_rss_mb"} <= set(line["in_process"])
    assert {"seconds", "peak_rss_mb", "spark_jvm_peak_rss_mb", "spark_total_peak_rss_mb", "application_id"} <= set(
        line["spark"])
    assert line["spark"]["spark_jvm_peak_rss_mb"] > 0
