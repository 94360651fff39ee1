"""MLServer, as the deploy-model topic needs it: one method per call of the V2 inference protocol.

:class:`MlserverClient` speaks to one MLServer endpoint. No answer, or a 502/503/504, is
:class:`MlserverUnavailable` (retried by :data:`RETRY_POLICY` first); any other error answer is
:class:`MlserverError` carrying the status and MLServer's own error text. A model that fails while
predicting gets a bare 500 from MLServer, whose log holds the cause: that is an :class:`MlserverError`
too, since retrying the same rows cannot help.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import pandas as pd
import requests
import tenacity

__all__ = [
    "RETRY_POLICY",
    "InferenceAnswer",
    "InferenceOutput",
    "MlserverClient",
    "MlserverError",
    "MlserverUnavailable",
    "RepositoryModel",
    "pandas_inputs",
]

T = TypeVar("T")

_UNAVAILABLE_STATUSES = {502, 503, 504}


class MlserverError(Exception):
    """MLServer answered with an error: ``status`` is its HTTP status, the message its own text."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint


class MlserverUnavailable(MlserverError):
    """No answer from MLServer, or a gateway/unavailable status: worth retrying later."""


RETRY_POLICY = tenacity.Retrying(
    retry=tenacity.retry_if_exception_type(MlserverUnavailable),
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
"""Retries of an MLServer call: three attempts, 0.5 s then 1 s apart, on :class:`MlserverUnavailable` only."""


@dataclass(frozen=True)
class RepositoryModel:
    """A model of MLServer's repository index: its name and state (``READY``, ``UNAVAILABLE``, ...)."""

    name: str
    state: str
    reason: str = ""
    version: str | None = None


@dataclass(frozen=True)
class InferenceOutput:
    """One output tensor of a V2 inference response."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]


@dataclass(frozen=True)
class InferenceAnswer:
    """A V2 inference response: the model and version that answered, and the output tensors."""

    model_name: str
    model_version: str | None
    outputs: list[InferenceOutput]


def _model_path(name: str, version: str | None) -> str:
    """``/v2/models/{name}``, or ``/v2/models/{name}/versions/{version}`` for a pinned version."""
    path = f"/v2/models/{quote(name, safe='')}"
    return f"{path}/versions/{quote(version, safe='')}" if version else path


class MlserverClient:
    """The MLServer at ``endpoint`` (e.g. ``http://127.0.0.1:8090``).

    ``timeout_s`` bounds ordinary calls, ``load_timeout_s`` a model load (which reads the model files).
    """

    def __init__(self, endpoint: str, *, timeout_s: float = 30.0, load_timeout_s: float = 300.0,
                 retry: tenacity.Retrying = RETRY_POLICY, session: requests.Session | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self._retry = retry
        self._session = session or requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> MlserverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ready(self) -> bool:
        """Whether the server is ready (``GET /v2/health/ready``); ``False`` when it does not answer."""
        try:
            return self._session.get(f"{self.endpoint}/v2/health/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def repository_index(self) -> list[RepositoryModel]:
        """Every model of the server's repository, loaded or not (``POST /v2/repository/index``)."""
        answer = self._request("POST", "/v2/repository/index", "the repository index", json={})
        return [RepositoryModel(name=item["name"], state=item.get("state", ""), reason=item.get("reason") or "",
                                version=item.get("version")) for item in answer.json()]

    def load(self, name: str) -> None:
        """Load (or reload) model ``name`` from the repository (``POST /v2/repository/models/{name}/load``).

        MLServer loads every version of ``name`` its repository holds and unloads the loaded versions
        it no longer holds."""
        self._request("POST", f"/v2/repository/models/{quote(name, safe='')}/load", f"loading model {name!r}",
                      timeout_s=self.load_timeout_s)

    def unload(self, name: str) -> None:
        """Unload every version of model ``name`` (``POST /v2/repository/models/{name}/unload``)."""
        self._request("POST", f"/v2/repository/models/{quote(name, safe='')}/unload", f"unloading model {name!r}")

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether model ``name`` (its ``version``, else the one its name answers with) is loaded and ready
        (``GET /v2/models/{name}[/versions/{version}]/ready``)."""
        try:
            self._request("GET", f"{_model_path(name, version)}/ready", f"readiness of model {name!r}")
        except MlserverUnavailable:
            raise
        except MlserverError as exc:
            if exc.status in (400, 404):
                return False
            raise
        return True

    def infer(self, name: str, inputs: Sequence[Mapping[str, Any]],
              parameters: Mapping[str, Any] | None = None, version: str | None = None) -> list[InferenceOutput]:
        """Run model ``name`` on V2 ``inputs`` (``POST /v2/models/{name}[/versions/{version}]/infer``); its
        output tensors.

        ``inputs`` are V2 tensors ``{"name", "shape", "datatype", "data"}``; see :func:`pandas_inputs`.
        """
        return self.infer_answer(name, inputs, parameters, version).outputs

    def infer_answer(self, name: str, inputs: Sequence[Mapping[str, Any]],
                     parameters: Mapping[str, Any] | None = None, version: str | None = None) -> InferenceAnswer:
        """Like :meth:`infer`, with the model version that answered (``model_version`` of the response)."""
        body: dict[str, Any] = {"inputs": [dict(tensor) for tensor in inputs]}
        if parameters:
            body["parameters"] = dict(parameters)
        pinned = f" version {version}" if version else ""
        answer = self._request("POST", f"{_model_path(name, version)}/infer",
                               f"inference with model {name!r}{pinned}", json=body).json()
        outputs = [InferenceOutput(name=item["name"], shape=tuple(item["shape"]), datatype=item["datatype"],
                                   data=list(item["data"])) for item in answer.get("outputs", [])]
        version_answered = answer.get("model_version")
        return InferenceAnswer(model_name=str(answer.get("model_name", name)),
                               model_version=str(version_answered) if version_answered is not None else None,
                               outputs=outputs)

    def _request(self, method: str, path: str, what: str, *, json: Any = None,
                 timeout_s: float | None = None) -> requests.Response:
        def attempt() -> requests.Response:
            try:
                answer = self._session.request(method, f"{self.endpoint}{path}", json=json,
                                               timeout=timeout_s or self.timeout_s)
            except requests.RequestException as exc:
                raise MlserverUnavailable(f"{what}: MLServer at {self.endpoint} unreachable ({exc})",
                                          endpoint=self.endpoint) from exc
            if answer.status_code >= 400:
                raise _error(answer, what, self.endpoint)
            return answer

        return self._call(attempt)

    def _call(self, attempt: Callable[[], T]) -> T:
        return self._retry.copy()(attempt)


def _error(answer: requests.Response, what: str, endpoint: str) -> MlserverError:
    """The one place MLServer's error answers become errors: ``{"error": ...}`` bodies carry its text."""
    try:
        text = str(answer.json().get("error") or answer.text)
    except (ValueError, AttributeError):
        text = answer.text.strip() or answer.reason
    kind = MlserverUnavailable if answer.status_code in _UNAVAILABLE_STATUSES else MlserverError
    detail = f"{text} (see the MLServer log)" if answer.status_code == 500 and text == "Internal Server Error" else text
    return kind(f"{what}: MLServer at {endpoint} answered {answer.status_code}: {detail}",
                status=answer.status_code, endpoint=endpoint)


_DATATYPES = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}


def pandas_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The V2 input tensors of ``frame``: one ``[rows, 1]`` tensor per column, named after it, as
    MLServer's pandas codec decodes them (pair with ``parameters={"content_type": "pd"}``)."""
    tensors = []
    for column in frame.columns:
        values = frame[column]
        datatype = _DATATYPES.get(values.dtype.kind, "BYTES")
        data = [None if isinstance(v, float) and math.isnan(v) else v
                for v in (values.astype(str) if datatype == "BYTES" else values).tolist()]
        tensors.append({"name": str(column), "shape": [len(frame), 1], "datatype": datatype, "data": data})
    return tensors
