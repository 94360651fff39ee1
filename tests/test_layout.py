"""The layout's rules, read from the source: what may import what, and where each kind of module lives.

See the README's "Layout" section: harness, engine, clients (one per outside system), domain, topics,
fleet, triggers; the development servers apart in ``devservers/``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workers"
TOP_LEVEL_MODULES = {"__init__", "__main__", "cli", "config", "logs"}
MLFLOW_HOMES = ("workers.clients.mlflow", "workers.fleet.sample")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


KNOWN = modules()


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in KNOWN else node.module


def own_imports(name: str) -> set[str]:
    return {imported for imported in imports_of(KNOWN[name]) if imported in KNOWN and imported != name}


def test_the_top_level_holds_only_the_entry_points_settings_and_logging():
    assert {path.stem for path in PACKAGE.glob("*.py")} == TOP_LEVEL_MODULES
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"} == {
        "clients", "domain", "engine", "fleet", "harness", "topics", "triggers"}


@pytest.mark.parametrize("name", sorted(n for n in KNOWN if n.startswith("workers.topics.")))
def test_a_topic_imports_no_other_topic(name):
    assert {imported for imported in own_imports(name) if imported.startswith("workers.topics")} == set()


def test_no_module_imports_itself_through_others():
    graph = {name: own_imports(name) for name in KNOWN}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                cycle = path[path.index(imported):] + [imported] if imported in path else [name, imported]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_mlflow_is_imported_by_its_client_only():
    offenders = {name for name, path in KNOWN.items() if not name.startswith(MLFLOW_HOMES)
                 and any(imported.split(".")[0] == "mlflow" for imported in imports_of(path))}
    assert offenders == set()


def test_every_settings_class_is_in_config_on_its_public_base():
    defined: dict[str, str] = {}
    for name, path in KNOWN.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(base, "id", getattr(base, "attr", "")) in ("BaseSettings", "Settings", "_Settings")
                    for base in node.bases):
                defined[node.name] = name
    assert defined and set(defined.values()) == {"workers.config"}
    import workers.config as config

    for class_name in defined:
        if class_name != "Settings":
            assert issubclass(getattr(config, class_name), config.Settings), class_name


def test_the_product_never_imports_the_development_servers():
    offenders = {name for name, path in KNOWN.items()
                 if any(imported.split(".")[0] == "devservers" for imported in imports_of(path))}
    assert offenders == set()


def test_the_topic_registry_names_every_topic_module():
    from workers.topics import TOPIC_NAMES, TOPICS

    modules = {path.stem for path in (PACKAGE / "topics").glob("*.py") if path.stem != "__init__"}
    assert {name.replace("-", "_") for name in TOPIC_NAMES} == modules
    assert all(TOPICS[name].name == name for name in TOPIC_NAMES)


def test_a_process_of_light_topics_loads_no_ml_library():
    """The light worker group, its handlers built as at start, imports neither MLflow nor pandas nor
    scikit-learn nor pyarrow (about 160 MB): registry calls go over MLflow's REST API."""
    import subprocess
    import sys

    script = ("import sys; from workers.fleet.groups import GROUPS; from workers.topics import TOPICS\n"
              "[TOPICS[name].resolve_handler() for name in GROUPS['light']]\n"
              "print(sorted(m for m in ('mlflow', 'pandas', 'sklearn', 'pyarrow', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
