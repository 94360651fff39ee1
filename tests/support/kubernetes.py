"""Rendering deploy/kubernetes with kustomize and checking objects against their schemas, offline.

kustomize: a ``kustomize`` binary, else ``kubectl kustomize`` (kubectl bundles it), else the pinned
release built once with ``go install`` into ``~/.cache/mlc-tests``. Kubernetes' own kinds are
checked with kubernetes-validate's bundled schemas; KEDA's with the OpenAPI schema of KEDA's CRDs,
taken from KEDA's Go module (``go mod download``, kept in Go's module cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["KEDA_VERSION", "KUSTOMIZE_VERSION", "containers", "keda_schema", "kustomize_command", "render",
           "strict_schema", "validate_custom", "workloads"]

KUSTOMIZE_VERSION = "v5.5.0"
KEDA_VERSION = "v2.21.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlc-tests"


@cache
def kustomize_command() -> tuple[str, ...]:
    """The command that renders a kustomization folder given as its last argument."""
    if binary := shutil.which("kustomize"):
        return (binary, "build")
    if kubectl := shutil.which("kubectl"):
        return (kubectl, "kustomize")
    bin_dir = CACHE / f"kustomize-{KUSTOMIZE_VERSION}"
    binary = bin_dir / "kustomize"
    if not binary.is_file():
        go = shutil.which("go")
        if go is None:
            raise RuntimeError("no kustomize, kubectl or go on PATH: install one of them to render deploy/kubernetes")
        subprocess.run([go, "install", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"],
                       env={**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod"},
                       cwd=tempfile.gettempdir(), check=True, capture_output=True, timeout=600)
    return (str(binary), "build")


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects kustomize renders from ``folder``."""
    result = subprocess.run([*kustomize_command(), str(folder)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kustomize could not render {folder}:\n{result.stderr}")
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@cache
def _keda_module() -> Path:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is needed to fetch KEDA's CRDs (module github.com/kedacore/keda/v2)")
    result = subprocess.run([go, "mod", "download", "-json", f"github.com/kedacore/keda/v2@{KEDA_VERSION}"],
                            cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=600,
                            env={**os.environ, "GOFLAGS": "-mod=mod"})
    if result.returncode != 0:
        raise RuntimeError(f"go mod download of KEDA {KEDA_VERSION} failed:\n{result.stdout}{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


@cache
def keda_schema(kind: str, version: str = "v1alpha1") -> dict[str, Any]:
    """The OpenAPI schema of KEDA's CRD for ``kind`` (ScaledObject, TriggerAuthentication, ...), made strict."""
    path = _keda_module() / "config/crd/bases" / f"keda.sh_{kind.lower()}s.yaml"
    if not path.is_file():
        raise LookupError(f"KEDA {KEDA_VERSION} has no CRD of kind {kind} ({path.name})")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["spec"]["names"]["kind"] == kind, path
    served = {entry["name"]: entry for entry in crd["spec"]["versions"]}
    return strict_schema(served[version]["schema"]["openAPIV3Schema"])


def strict_schema(schema: Any) -> Any:
    """``schema`` with unknown fields refused, as ``kubectl apply --validate=strict`` refuses them.

    The API server prunes a field a CRD does not declare: without this a misspelt field would pass.
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: strict_schema(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        strict["additionalProperties"] = False
    return strict


def validate_custom(document: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raises :class:`jsonschema.ValidationError` naming the path of the first wrong field."""
    jsonschema.Draft7Validator(schema).validate(document)


def workloads(documents: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The Deployments among ``documents``."""
    return (document for document in documents if document["kind"] == "Deployment")


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]
