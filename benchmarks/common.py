"""What the benchmarks share: the command's frame (progress on stderr, one JSON line on stdout, exit
codes), the synthetic data of the sample model and the model itself, fresh child processes, and the
memory and CPU of processes read from ``/proc``.

pandas, NumPy, scikit-learn, MLflow and the workers are imported inside the functions that use them, so
a benchmark's child process and the RSS it reads before its work hold only what that work imports.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["MB", "BenchmarkError", "Report", "ResultLine", "at_least_one", "engine_exit_code", "in_child",
           "peak_rss_mb", "print_result", "process_tree", "reporter", "sample_model", "sample_pipeline",
           "sample_rows", "status_mb", "tree_cpu_s", "tree_rss_mb", "work_folder", "write_features",
           "write_frames"]

MB = 1024 * 1024
Report = Callable[[str], None]
"""Takes a line of progress, for stderr."""
T = TypeVar("T")


class BenchmarkError(Exception):
    """A client stalled or timed out, or the engine is not in the expected state; the message says which."""


# -- the command -------------------------------------------------------------------------------------


class ResultLine:
    """A benchmark's result (a dataclass) as the one JSON line its command prints on stdout."""

    def line(self) -> str:
        return json.dumps(asdict(self))  # type: ignore[call-overload]  # every subclass is a dataclass


R = TypeVar("R", bound=ResultLine)


def reporter(name: str) -> Report:
    """Progress lines on stderr, each starting with ``[name]``."""

    def say(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    return say


def at_least_one(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Stop with the usage and an error naming the option when one of ``names`` is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


def print_result(run: Callable[[], R], say: Report, summary: Callable[[R], str] | None = None) -> int:
    """The end of a benchmark's ``main``: ``run()``, its ``summary`` on stderr, then its JSON line on stdout;
    the exit code (130 on an interrupt)."""
    try:
        result = run()
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    if summary is not None:
        print(summary(result), file=sys.stderr)
    print(result.line(), flush=True)
    return 0


def engine_exit_code(run: Callable[[], T], show: Callable[[T], None], say: Report, starting: str) -> int:
    """``run()`` against an engine, then ``show`` its result; the exit code that ends the command: 0; 3 when
    ``starting`` (the engine, the cluster) could not start; 1 when the benchmark or an engine call failed;
    130 on an interrupt. Every failure is said first."""
    import requests

    from workers.engine.errors import EngineError
    from workers.fleet.processes import FleetError

    try:
        result = run()
    except FleetError as exc:
        say(f"{starting} could not start: {exc}")
        return 3
    except BenchmarkError as exc:
        say(f"FAILED: {exc}")
        return 1
    except (EngineError, requests.RequestException) as exc:
        say(f"FAILED: an engine call failed: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    show(result)
    return 0


@contextmanager
def work_folder(directory: Path | None, prefix: str) -> Iterator[Path]:
    """``directory``, made if need be and kept; without one, a temporary folder removed at the end."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)


def in_child(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a fresh (spawned) process, so that neither its imports nor its memory count in
    this one's."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# -- the sample model and its data -------------------------------------------------------------------


def sample_rows(rows: int, rng: Any, chunk_rows: int) -> Iterator[tuple[int, Any, Any]]:
    """``rows`` rows of the 30 breast-cancer features of scikit-learn, picked with replacement from
    ``rng`` (a NumPy generator) and multiplied by 1 ± 5 % noise, rounded to 4 decimals, ``chunk_rows``
    at a time: the first row's number, the indexes of the rows picked, and the ``pandas`` frame."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data
    values = features.to_numpy()
    for start in range(0, rows, chunk_rows):
        count = min(chunk_rows, rows - start)
        picked = rng.integers(0, len(values), count)
        noisy = values[picked] * rng.normal(1.0, 0.05, size=(count, values.shape[1]))
        yield start, picked, pd.DataFrame(np.round(noisy, 4), columns=features.columns)


def write_frames(path: str, frames: Iterable[Any]) -> None:
    """``frames`` (``pandas``) one after another into one file: CSV when ``path`` ends in ``.csv``, else Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    first = True
    for frame in frames:
        if path.endswith(".csv"):
            frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        first = False
    if writer is not None:
        writer.close()


def write_features(path: str, rows: int, seed: int, chunk_rows: int = 100_000) -> None:
    """The input of the batch benchmarks: an ``id`` and the features of :func:`sample_rows`, generated and
    written ``chunk_rows`` at a time."""
    import numpy as np

    def frames() -> Iterator[Any]:
        for start, _, frame in sample_rows(rows, np.random.default_rng(seed), chunk_rows):
            frame.insert(0, "id", np.arange(start, start + len(frame)))
            yield frame

    write_frames(path, frames())


def sample_pipeline() -> Any:
    """The sample model's pipeline (``StandardScaler`` + ``LogisticRegression``) trained on the whole
    breast-cancer data set."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(features, labels)


def sample_model(model: Any = None, path: Path | None = None) -> Any:
    """``model`` (default: :func:`sample_pipeline`'s), saved at ``path`` if given, as a loaded model."""
    from workers.clients.mlflow.registry import LoadedModel

    return LoadedModel("breast-cancer-classifier", "benchmark", "sklearn",
                       sample_pipeline() if model is None else model, path=path)


# -- processes, from /proc -----------------------------------------------------------------------------


def status_mb(field: str, pid: int | str = "self") -> float:
    """``VmRSS``, ``VmHWM`` (the peak) or another ``Vm`` field of ``/proc/<pid>/status`` in MB; 0 for a process
    that has none (one that has exited and not been waited for)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """This process's peak RSS so far, from ``getrusage`` (which Linux counts in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, as they are now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (MLflow's server runs its workers as children)."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks
