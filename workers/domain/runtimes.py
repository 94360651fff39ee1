"""The runtimes models are deployed to (ModelOp's "runtimes"), as data: ``deploy/runtimes.yaml``.

A runtime has a name, a stage (one of the file's ordered ``stages``), the model service tags it
serves and its endpoints. A runtime without endpoints is a **batch** runtime: a deployment there only
marks the version as the one to score with at job time. A runtime with endpoints is **online**: an
MLServer at each endpoint loads the model from ``model_repository``, a folder it shares with the
deploying worker. An online runtime may ask for a warm-up of every version (``warm_up``), replaying
the requests it captured (``request_log``, see :mod:`workers.domain.warmup`).

A batch runtime's ``kind`` says what its jobs score on: ``in-process`` (the default: the worker scores
the file in chunks itself) or ``spark`` (the worker drives a Spark application at ``spark.master`` with
the configuration ``spark.config``, :mod:`workers.domain.spark_scoring`).

String values may name environment variables as ``${VAR}`` or ``${VAR:-default}``, so one file
serves the local fleet and ``docker compose``. Every problem is an :class:`InventoryError` naming the
file, the runtime and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workers.config import ConfigurationError
from workers.harness.outcomes import FatalError

__all__ = [
    "BAD_PROMOTION",
    "InventoryError",
    "Runtime",
    "RuntimeInventory",
    "SparkSpec",
    "current_inventory",
    "load_inventory",
    "promotion_problem",
]

BAD_PROMOTION = "BAD_PROMOTION"
"""The BPMN error of a promotion the inventory's stages do not allow."""

Mode = Literal["batch", "online"]
Kind = Literal["in-process", "spark"]

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class InventoryError(ConfigurationError):
    """The runtime inventory cannot be used; the message names the file, runtime and field."""


class SparkSpec(BaseModel):
    """Where a ``spark`` runtime's jobs run: a master URL (``local[2]``, ``spark://host:7077``, ``yarn``,
    ``k8s://...``), Spark configuration (``spark.executor.memory``, ``spark.jars.packages``, ...) and a
    folder every executor and the worker reach where jobs stage their scored parts (default: the worker's
    scratch folder, which only a local master's executors share)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = Field(min_length=1)
    config: dict[str, str] = Field(default_factory=dict)
    staging: str | None = None
    s3a_packages: bool = True
    """Whether a job that reads or stages on ``s3://`` adds ``hadoop-aws`` and the AWS SDK to
    ``spark.jars.packages`` (:mod:`workers.clients.s3a`); false for a cluster with its own ``hadoop-aws``."""

    @field_validator("staging")
    @classmethod
    def _blank_is_none(cls, staging: str | None) -> str | None:
        return staging.strip() or None if staging is not None else None

    @field_validator("config", mode="before")
    @classmethod
    def _text_values(cls, config: Any) -> Any:
        """YAML numbers and booleans as Spark reads them: ``2`` and ``true`` as text."""
        if isinstance(config, dict):
            return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in config.items()}
        return config


class Runtime(BaseModel):
    """One deployment target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    stage: str = Field(min_length=1)
    service_tags: tuple[str, ...] = Field(min_length=1)
    endpoints: tuple[str, ...] = ()
    model_repository: Path | None = None
    kind: Kind = "in-process"
    spark: SparkSpec | None = None
    description: str = ""
    warm_up: bool = False
    """Warm every version up on this (online) runtime before it is reviewed and switched to, whatever its tags."""
    request_log: Path | None = None
    """The requests captured on this runtime, replayed by the warm-up: JSON lines of V2 inference requests."""
    warm_up_requests: int = Field(100, ge=1, le=10_000)
    """How many requests the warm-up replays (the most recent of the log, else rows of the test data)."""

    @field_validator("stage")
    @classmethod
    def _upper_case(cls, stage: str) -> str:
        return stage.upper()

    @field_validator("endpoints")
    @classmethod
    def _http_urls(cls, endpoints: tuple[str, ...]) -> tuple[str, ...]:
        for endpoint in endpoints:
            if not re.match(r"^https?://[^/\s]+", endpoint):
                raise ValueError(f"{endpoint!r} is not an http(s) URL")
        return tuple(endpoint.rstrip("/") for endpoint in endpoints)

    @property
    def mode(self) -> Mode:
        """``online`` when the runtime has endpoints, else ``batch``."""
        return "online" if self.endpoints else "batch"


class _InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: tuple[str, ...] = Field(min_length=1)
    runtimes: list[dict[str, Any]] = Field(default_factory=list)


class RuntimeInventory:
    """The runtimes of one inventory file and the ordered stages they belong to."""

    def __init__(self, stages: Sequence[str], runtimes: Sequence[Runtime], source: str = "<inventory>") -> None:
        self.stages = tuple(stages)
        self.runtimes = tuple(runtimes)
        self.source = source

    def get(self, name: str) -> Runtime | None:
        return next((runtime for runtime in self.runtimes if runtime.name == name), None)

    def matching(self, service_tag: str, stage: str | None = None) -> list[Runtime]:
        """The runtimes serving ``service_tag`` in ``stage`` (any stage when ``None``), in file order."""
        wanted = stage.upper() if stage else None
        return [runtime for runtime in self.runtimes
                if service_tag in runtime.service_tags and (wanted is None or runtime.stage == wanted)]

    def next_stage(self, stage: str) -> str | None:
        """The stage after ``stage``; ``None`` after the last one."""
        position = self.stages.index(self._known_stage(stage))
        return self.stages[position + 1] if position + 1 < len(self.stages) else None

    def _known_stage(self, stage: str) -> str:
        if stage.upper() not in self.stages:
            raise InventoryError(f"{self.source}: unknown stage {stage!r}; the stages are {', '.join(self.stages)}")
        return stage.upper()


def load_inventory(path: Path | str, environ: dict[str, str] | None = None) -> RuntimeInventory:
    """Read and check the inventory at ``path``, substituting ``${VAR:-default}`` from ``environ``
    (default: the process environment)."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"{source}: cannot read the runtime inventory ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise InventoryError(f"{source}: expected a mapping with 'stages' and 'runtimes'")
    raw = _substitute(raw, os.environ if environ is None else environ, source)
    try:
        parsed = _InventoryFile.model_validate(raw)
    except ValidationError as exc:
        raise InventoryError(f"{source}: {_problems(exc)}") from exc
    stages = tuple(stage.upper() for stage in parsed.stages)
    if len(set(stages)) != len(stages):
        raise InventoryError(f"{source}: stages are listed twice: {', '.join(parsed.stages)}")
    runtimes: list[Runtime] = []
    for position, entry in enumerate(parsed.runtimes, start=1):
        label = f"runtime {entry.get('name')!r}" if isinstance(entry, dict) and entry.get("name") else \
            f"runtime #{position}"
        try:
            runtime = Runtime.model_validate(entry)
        except ValidationError as exc:
            raise InventoryError(f"{source}: {label}: {_problems(exc)}") from exc
        runtimes.append(_checked(runtime, stages, runtimes, f"{source}: {label}"))
    return RuntimeInventory(stages, runtimes, source)


def _checked(runtime: Runtime, stages: tuple[str, ...], earlier: list[Runtime], where: str) -> Runtime:
    if runtime.stage not in stages:
        raise InventoryError(f"{where}: field 'stage': unknown stage {runtime.stage!r}; "
                             f"the stages are {', '.join(stages)}")
    if any(other.name == runtime.name for other in earlier):
        raise InventoryError(f"{where}: field 'name': the name is used by an earlier runtime")
    if runtime.endpoints and runtime.model_repository is None:
        raise InventoryError(f"{where}: field 'model_repository': an online runtime (with endpoints) needs the "
                             f"folder its MLServer loads models from")
    if not runtime.endpoints and (runtime.warm_up or runtime.request_log is not None):
        raise InventoryError(f"{where}: field 'warm_up': only an online runtime (with endpoints) is warmed up")
    if runtime.kind == "spark" and runtime.endpoints:
        raise InventoryError(f"{where}: field 'kind': a spark runtime is a batch runtime and has no endpoints")
    if runtime.kind == "spark" and runtime.spark is None:
        raise InventoryError(f"{where}: field 'spark': a spark runtime needs 'spark: {{master: ...}}'")
    if runtime.kind != "spark" and runtime.spark is not None:
        raise InventoryError(f"{where}: field 'spark': only a runtime of kind spark has a spark section")
    return runtime


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"field {'.'.join(str(p) for p in error['loc']) or '(top)'!r}: {error['msg']}"
                     for error in exc.errors())


def _substitute(value: Any, environ: Any, source: str) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in environ and (environ[name] != "" or default is None):
                return str(environ[name])
            if default is None:
                raise InventoryError(f"{source}: environment variable {name} is not set and has no default")
            return default

        return _VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {key: _substitute(item, environ, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, environ, source) for item in value]
    return value


def promotion_problem(inventory: RuntimeInventory, stage: str, promote_to: str) -> str | None:
    """Why promoting from ``stage`` to ``promote_to`` is impossible in ``inventory``; ``None`` when it is fine."""
    stages = inventory.stages
    if stage.upper() not in stages:
        return f"stage {stage!r} is not a stage of {inventory.source}; the stages are {' -> '.join(stages)}"
    if promote_to.upper() not in stages:
        return (f"promote_to {promote_to!r} is not a stage of {inventory.source}; "
                f"the stages are {' -> '.join(stages)}")
    if stages.index(promote_to.upper()) < stages.index(stage.upper()):
        return (f"promote_to {promote_to.upper()} comes before stage {stage.upper()} "
                f"({' -> '.join(stages)}): a version is promoted forwards only")
    return None


def current_inventory(path: Path) -> RuntimeInventory:
    """The inventory at ``path`` as it is now, so an edit takes effect without restarting workers; a file
    that cannot be used (:class:`~workers.domain.runtimes.InventoryError`) is an incident naming the problem."""
    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise FatalError(str(exc)) from exc
