"""Where each model version is deployed, kept in the MLflow registry itself.

A deployment of a version to a runtime is the version tag ``mlc.deployment.<runtime>``, whose value
is the JSON of a :class:`DeploymentRecord`. While a version is in service on a runtime its record has
no ``until``; when another version of the model takes the runtime over, the older record gets the
time it was replaced. The aliases ``deployed`` (the latest deployment anywhere) and
``deployed-<stage>`` (e.g. ``deployed-dev``) point at the version in service.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from workers.clients.mlflow.registry import DEPLOYED_ALIAS, ModelRegistry, VersionRecord

__all__ = [
    "DEPLOYMENT_TAG_PREFIX",
    "DeploymentRecord",
    "active_deployment",
    "batch_deployment",
    "batch_deployment_record",
    "deployments_of",
    "format_status",
    "move_aliases",
    "now_iso",
    "record_deployment",
    "replaced_by",
    "retire_deployment",
    "stage_alias",
]

DEPLOYMENT_TAG_PREFIX = "mlc.deployment."

Mode = Literal["batch", "online"]


def stage_alias(stage: str) -> str:
    """The alias naming the version in service in ``stage``: ``deployed-dev`` for ``DEV``."""
    return f"{DEPLOYED_ALIAS}-{stage.lower()}"


@dataclass(frozen=True)
class DeploymentRecord:
    """A version deployed to a runtime: since when, how, where it answers, and until when if replaced."""

    model: str
    version: str
    runtime: str
    stage: str
    mode: Mode
    since: str
    endpoint: str | None = None
    served_name: str | None = None
    until: str | None = None

    @property
    def active(self) -> bool:
        return self.until is None

    def to_tag(self) -> str:
        """The tag value: the record without the model and version, which the tag's owner gives."""
        values = asdict(self)
        del values["model"], values["version"]
        return json.dumps(values, separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_tag(cls, model: str, version: str, value: str) -> DeploymentRecord | None:
        """The record of a tag value; ``None`` when it is not one (edited by hand, say)."""
        try:
            values = json.loads(value)
            return cls(model=model, version=version, runtime=str(values["runtime"]), stage=str(values["stage"]),
                       mode=values["mode"], since=str(values["since"]), endpoint=values.get("endpoint"),
                       served_name=values.get("served_name"), until=values.get("until"))
        except (ValueError, KeyError, TypeError):
            return None


def records_of(version: VersionRecord) -> list[DeploymentRecord]:
    """The deployment records on ``version``'s tags."""
    found = (DeploymentRecord.from_tag(version.name, version.version, value)
             for key, value in version.tags.items() if key.startswith(DEPLOYMENT_TAG_PREFIX))
    return [record for record in found if record is not None]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def record_deployment(registry: ModelRegistry, model: str, version: str, *, runtime: str, stage: str, mode: Mode,
                      endpoint: str | None = None, served_name: str | None = None,
                      since: str | None = None, aliases: bool = True) -> DeploymentRecord:
    """Record ``version`` of ``model`` as in service on ``runtime`` and, with ``aliases``, move the aliases to it.

    Marks the record of the version it replaces on that runtime, if any, with ``until`` (the new
    record's ``since``). The version's tag is written first and the aliases last, so a retry after a
    failure in between completes the move.
    """
    record = DeploymentRecord(model=model, version=str(version), runtime=runtime, stage=stage.upper(), mode=mode,
                              since=since or now_iso(), endpoint=endpoint, served_name=served_name)
    registry.set_version_tag(model, record.version, DEPLOYMENT_TAG_PREFIX + runtime, record.to_tag())
    for previous in _active_on(registry, model, runtime):
        if previous.version != record.version:
            retire_deployment(registry, previous, until=record.since)
    if aliases:
        move_aliases(registry, model, record.stage, record.version)
    return record


def move_aliases(registry: ModelRegistry, model: str, stage: str, version: str) -> None:
    """Point ``deployed-<stage>`` and then ``deployed`` at ``version`` of ``model``."""
    registry.set_alias(model, stage_alias(stage), str(version))
    registry.set_alias(model, DEPLOYED_ALIAS, str(version))


def replaced_by(registry: ModelRegistry, record: DeploymentRecord) -> list[DeploymentRecord]:
    """The records ``record`` retired on its runtime (their ``until`` is its ``since``)."""
    return [other for other in deployments_of(registry, record.model)
            if other.runtime == record.runtime and other.until == record.since and other.version != record.version]


def retire_deployment(registry: ModelRegistry, record: DeploymentRecord, until: str | None = None) -> DeploymentRecord:
    """Mark ``record`` as replaced at ``until`` (default: now)."""
    retired = replace(record, until=until or now_iso())
    registry.set_version_tag(record.model, record.version, DEPLOYMENT_TAG_PREFIX + record.runtime, retired.to_tag())
    return retired


def active_deployment(registry: ModelRegistry, model: str, runtime: str) -> DeploymentRecord | None:
    """The record of the version of ``model`` in service on ``runtime``, if any (the newest if several)."""
    found = _active_on(registry, model, runtime)
    return max(found, key=lambda record: (record.since, int(record.version))) if found else None


def _active_on(registry: ModelRegistry, model: str, runtime: str) -> list[DeploymentRecord]:
    return [record for version in registry.search_versions(model) for record in records_of(version)
            if record.runtime == runtime and record.active]


def deployments_of(registry: ModelRegistry, model: str) -> list[DeploymentRecord]:
    """Every deployment record of every version of ``model``, newest first."""
    records = [record for version in registry.search_versions(model) for record in records_of(version)]
    return sorted(records, key=lambda record: (record.since, int(record.version), record.runtime), reverse=True)


def format_status(records: list[DeploymentRecord]) -> str:
    """A table of ``records`` for ``mlc status MODEL_ID``: one line per deployment, newest first."""
    if not records:
        return "not deployed"
    header = ("VERSION", "RUNTIME", "STAGE", "MODE", "STATE", "SINCE", "UNTIL", "ENDPOINT")
    rows = [header] + [(record.version, record.runtime, record.stage, record.mode,
                        "active" if record.active else "replaced", record.since, record.until or "-",
                        _served_at(record)) for record in records]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)),
                                row[-1]]).rstrip() for row in rows)


def _served_at(record: DeploymentRecord) -> str:
    if record.endpoint is None:
        return "-"
    return f"{record.endpoint}/v2/models/{record.served_name}/infer" if record.served_name else record.endpoint


def batch_deployment(registry: ModelRegistry, service_tag: str, stage: str | None = None) -> VersionRecord | None:
    """The version most recently deployed as batch and still in service in ``stage`` (any stage when
    ``None``), among the models whose service tag is ``service_tag``."""
    found = _latest_batch(registry, service_tag, stage)
    return found[1] if found else None


def batch_deployment_record(registry: ModelRegistry, service_tag: str,
                            stage: str | None = None) -> DeploymentRecord | None:
    """The record of :func:`batch_deployment`'s version on the runtime it was deployed to as batch."""
    found = _latest_batch(registry, service_tag, stage)
    return found[0] if found else None


def _latest_batch(registry: ModelRegistry, service_tag: str,
                  stage: str | None) -> tuple[DeploymentRecord, VersionRecord] | None:
    wanted = stage.upper() if stage else None
    best: tuple[tuple[str, int], DeploymentRecord, VersionRecord] | None = None
    for model in _models_with_service(registry, service_tag):
        for version in registry.search_versions(model):
            for record in records_of(version):
                if record.mode == "batch" and record.active and (wanted is None or record.stage == wanted):
                    key = (record.since, int(version.version))
                    if best is None or key > best[0]:
                        best = (key, record, version)
    return (best[1], best[2]) if best else None


def _models_with_service(registry: ModelRegistry, service_tag: str) -> list[str]:
    """Names of the registered models tagged ``service = service_tag``."""
    escaped = service_tag.replace("'", "\\'")
    return [model.name for model in registry.search_models(f"tags.service = '{escaped}'")]
