"""The warm-up (shadow) of a candidate version on an online runtime, before it is reviewed and switched to.

The candidate is loaded on the runtime beside the version in service, under a name of its own
(:func:`workers.domain.serving.warm_up_name`), and both are sent the same requests, one after the other:
the requests the runtime captured, else rows of the version's test data. What is measured:

- the candidate's latency per request (``latency_p50_ms``, ``latency_p99_ms``, ``latency_mean_ms``) and
  the champion's on the same requests (``champion_latency_*``, their ratio ``latency_p99_ratio``);
- ``agreement_rate``: the share of the rows both answered on which the candidate's answer is the
  champion's (every output value equal; numbers within the runtime's ``warm_up_tolerance``, relative to
  the champion's value and at least absolute);
- ``warm_up_requests``, ``warm_up_rows``, ``warm_up_errors`` and ``warm_up_error_rate`` (requests the
  candidate refused or failed).

A number that cannot be computed (no champion in service, no answer) is -99, ModelOp's "not computed".
One request goes to each side first, unmeasured: the first call of a freshly loaded model pays for
its lazy set-up, which no consumer sees once it serves.

**Request log** (``request_log`` of a runtime in ``deploy/runtimes.yaml``): a text file of JSON lines,
one V2 inference request per line as consumers post it to ``/v2/models/<model>/infer``:
``{"inputs": [{"name": ..., "shape": [rows, 1], "datatype": ..., "data": [...]}, ...], "parameters": {...}}``
(``parameters`` optional; a line may also wrap the request as ``{"request": {...}}``, as request
loggers often store it beside the response). The last lines are the most recent: the warm-up replays
the last ``warm_up_requests`` of them. Blank lines are ignored; a line that is not such a request is
skipped and counted. A log that is missing or holds no request leaves the test data to replay.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workers.clients.mlserver import InferenceAnswer, InferenceOutput, MlserverError, MlserverUnavailable, pandas_inputs

__all__ = [
    "NOT_COMPUTED",
    "WARM_UP_FAILED",
    "ReplayRequest",
    "RequestLog",
    "WarmUpMeasure",
    "agreement",
    "combined_metrics",
    "read_request_log",
    "replay",
    "requests_from_rows",
]

WARM_UP_FAILED = "WARM_UP_FAILED"
"""The BPMN error of a warm-up that cannot run: the candidate does not load, nothing to replay."""
NOT_COMPUTED = -99

Call = Callable[["ReplayRequest"], InferenceAnswer]


@dataclass(frozen=True)
class ReplayRequest:
    """One V2 inference request to replay: its input tensors and request parameters."""

    inputs: list[dict[str, Any]]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        shape = self.inputs[0].get("shape") if self.inputs else None
        return int(shape[0]) if isinstance(shape, list) and shape else 1


@dataclass(frozen=True)
class RequestLog:
    """What a request log gave: the requests to replay and the lines skipped as not V2 requests."""

    requests: list[ReplayRequest]
    skipped: int
    path: Path


def read_request_log(path: Path, limit: int) -> RequestLog | None:
    """The last ``limit`` requests of the log at ``path``; ``None`` when there is no such file."""
    if not path.is_file():
        return None
    kept: deque[ReplayRequest] = deque(maxlen=limit)
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            request = _request(line)
            if request is None:
                skipped += 1
            else:
                kept.append(request)
    return RequestLog(list(kept), skipped, path)


def _request(line: str) -> ReplayRequest | None:
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("request"), dict):
        body = body["request"]
    if not isinstance(body, dict):
        return None
    inputs, parameters = body.get("inputs"), body.get("parameters") or {}
    if not isinstance(inputs, list) or not inputs or not isinstance(parameters, dict):
        return None
    if not all(isinstance(tensor, dict) and {"name", "shape", "datatype", "data"} <= set(tensor) for tensor in inputs):
        return None
    return ReplayRequest(inputs=inputs, parameters=parameters)


def requests_from_rows(frame: pd.DataFrame, limit: int) -> list[ReplayRequest]:
    """Up to ``limit`` requests of one row each of ``frame`` (test data without its label), as the pandas
    codec reads them."""
    return [ReplayRequest(pandas_inputs(frame.iloc[[position]]), {"content_type": "pd"})
            for position in range(min(limit, len(frame)))]


@dataclass
class WarmUpMeasure:
    """The numbers of one runtime's warm-up."""

    runtime: str
    source: str
    champion_version: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    champion_latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    rows: int = 0
    errors: int = 0
    compared_rows: int = 0
    agreeing_rows: int = 0
    first_error: str | None = None

    def metrics(self) -> dict[str, Any]:
        """The flat numbers an SLA DMN reads."""
        p99, champion_p99 = _percentile(self.latencies_ms, 99), _percentile(self.champion_latencies_ms, 99)
        found: dict[str, Any] = {
            "warm_up_requests": self.requests,
            "warm_up_rows": self.rows,
            "warm_up_errors": self.errors,
            "warm_up_error_rate": round(self.errors / self.requests, 4) if self.requests else NOT_COMPUTED,
            "latency_p50_ms": _percentile(self.latencies_ms, 50),
            "latency_p99_ms": p99,
            "latency_mean_ms": round(float(np.mean(self.latencies_ms)), 3) if self.latencies_ms else NOT_COMPUTED,
            "champion_latency_p50_ms": _percentile(self.champion_latencies_ms, 50),
            "champion_latency_p99_ms": champion_p99,
            "latency_p99_ratio": (round(p99 / champion_p99, 3) if NOT_COMPUTED not in (p99, champion_p99)
                                  and champion_p99 > 0 else NOT_COMPUTED),
            "agreement_rate": (round(self.agreeing_rows / self.compared_rows, 4) if self.compared_rows
                               else NOT_COMPUTED),
        }
        if self.champion_version is not None:
            found["champion_version"] = self.champion_version
        return found

    def details(self) -> dict[str, Any]:
        """The runtime's numbers with where they came from, for ``WARM_UP_DETAILS`` and the MLflow run."""
        return {"runtime": self.runtime, "source": self.source, **self.metrics(),
                "compared_rows": self.compared_rows, "first_error": self.first_error}

    def summary(self) -> str:
        numbers = self.metrics()
        text = (f"{self.runtime}: {self.requests} requests ({self.source}), p50 {_ms(numbers['latency_p50_ms'])}, "
                f"p99 {_ms(numbers['latency_p99_ms'])}, {self.errors} failed")
        if self.champion_version is None:
            return text + ", no champion in service to compare with"
        return (text + f"; champion version {self.champion_version}: p99 {_ms(numbers['champion_latency_p99_ms'])}, "
                       f"agreement {_share(numbers['agreement_rate'])}")


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else NOT_COMPUTED


def _ms(value: float) -> str:
    return "-" if value == NOT_COMPUTED else f"{value:.1f} ms"


def _share(value: float) -> str:
    return "-" if value == NOT_COMPUTED else f"{value:.1%}"


def replay(measure: WarmUpMeasure, requests: Sequence[ReplayRequest], candidate: Call, champion: Call | None,
           tolerance: float) -> WarmUpMeasure:
    """Send every request to ``candidate`` and then to ``champion`` (if any), timing each, comparing the
    answers; adds to ``measure``. :class:`MlserverUnavailable` goes through: the warm-up is retried."""
    if requests:
        _quietly(candidate, requests[0])
        if champion is not None:
            _quietly(champion, requests[0])
    for request in requests:
        measure.requests += 1
        measure.rows += request.rows
        answer, elapsed = _timed(candidate, request)
        if isinstance(answer, str):
            measure.errors += 1
            measure.first_error = measure.first_error or answer
        else:
            measure.latencies_ms.append(elapsed)
        if champion is None:
            continue
        expected, champion_elapsed = _timed(champion, request)
        if isinstance(expected, str):
            continue
        measure.champion_latencies_ms.append(champion_elapsed)
        measure.champion_version = measure.champion_version or expected.model_version
        if not isinstance(answer, str):
            compared, agreeing = agreement(answer.outputs, expected.outputs, request.rows, tolerance)
            measure.compared_rows += compared
            measure.agreeing_rows += agreeing
    return measure


def _quietly(call: Call, request: ReplayRequest) -> None:
    try:
        call(request)
    except MlserverUnavailable:
        raise
    except MlserverError:
        pass


def _timed(call: Call, request: ReplayRequest) -> tuple[InferenceAnswer | str, float]:
    started = time.perf_counter()
    try:
        answer: InferenceAnswer | str = call(request)
    except MlserverUnavailable:
        raise
    except MlserverError as exc:
        answer = exc.message
    return answer, round((time.perf_counter() - started) * 1000, 3)


def agreement(answer: Sequence[InferenceOutput], expected: Sequence[InferenceOutput], rows: int,
              tolerance: float) -> tuple[int, int]:
    """How many of ``rows`` rows the two answers give, and on how many of them every output agrees."""
    theirs = {output.name: output for output in expected}
    shared = [(output, theirs[output.name]) for output in answer if output.name in theirs]
    if not shared or rows <= 0:
        return 0, 0
    agreeing = 0
    for row in range(rows):
        if all(_row(mine, row, rows) is not None and _same(_row(mine, row, rows), _row(other, row, rows), tolerance)
               for mine, other in shared):
            agreeing += 1
    return rows, agreeing


def _row(output: InferenceOutput, row: int, rows: int) -> list[Any] | None:
    if not output.data or len(output.data) % rows:
        return None
    width = len(output.data) // rows
    return output.data[row * width:(row + 1) * width]


def _same(mine: list[Any] | None, other: list[Any] | None, tolerance: float) -> bool:
    if mine is None or other is None or len(mine) != len(other):
        return False
    return all(_value_same(a, b, tolerance) for a, b in zip(mine, other, strict=True))


def _value_same(a: Any, b: Any, tolerance: float) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return bool(a == b)


def combined_metrics(measures: Sequence[WarmUpMeasure]) -> dict[str, Any]:
    """The numbers of every runtime's warm-up as one set: each the worst of the runtimes (highest
    latency, error rate and ratio, lowest agreement; -99 only when no runtime computed it), counts summed."""
    per_runtime = [measure.metrics() for measure in measures]
    combined: dict[str, Any] = {}
    for key in ("warm_up_requests", "warm_up_rows", "warm_up_errors"):
        combined[key] = sum(metrics[key] for metrics in per_runtime)
    for key in ("warm_up_error_rate", "latency_p50_ms", "latency_p99_ms", "latency_mean_ms", "champion_latency_p50_ms",
                "champion_latency_p99_ms", "latency_p99_ratio", "agreement_rate"):
        computed = [metrics[key] for metrics in per_runtime if metrics[key] != NOT_COMPUTED]
        worst = min if key == "agreement_rate" else max
        combined[key] = worst(computed) if computed else NOT_COMPUTED
    champions = sorted({measure.champion_version for measure in measures if measure.champion_version is not None})
    if champions:
        combined["champion_version"] = ", ".join(champions)
    sources = sorted({"request log" if measure.source.startswith("request log") else "test data"
                      for measure in measures})
    combined["warm_up_source"] = ", ".join(sources)
    return combined
