"""The ``mlc`` command: run the local fleet, one topic's worker, deployments and triggers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workers.config import ConfigurationError, EngineSettings, LogSettings, WorkerSettings, load
from workers.engine import EngineClient, EngineError
from workers.fleet import FleetError
from workers.harness.serve import serve
from workers.logs import configure_logging
from workers.topics import TOPICS

__all__ = ["main"]


def engine_client() -> EngineClient:
    return EngineClient(load(EngineSettings))


def run_worker(args: argparse.Namespace) -> int:
    topic = TOPICS.get(args.topic)
    if topic is None:
        print(f"mlc: unknown topic {args.topic!r}; known topics: {', '.join(sorted(TOPICS)) or 'none'}",
              file=sys.stderr)
        return 2
    return serve(topic, load(EngineSettings), load(WorkerSettings))


def process_files(directory: Path) -> dict[str, bytes]:
    """The files the engine deploys from ``directory``, named as the engine names them on start."""
    suffixes = (".bpmn", ".bpmn20.xml", ".dmn", ".dmn11.xml", ".form")
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file() and path.name.endswith(suffixes)}


def run_deploy(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    files = process_files(directory)
    if not files:
        print(f"mlc: no .bpmn, .dmn or .form files under {directory}", file=sys.stderr)
        return 2
    with engine_client() as client:
        deployment = client.deploy(args.name, files)
    deployed = sorted((deployment.get("deployedProcessDefinitions") or {}).values(), key=lambda d: d["key"])
    decisions = (deployment.get("deployedDecisionDefinitions") or {}).values()
    print(f"deployment {deployment['id']}: {len(files)} files, changed ones deployed")
    for definition in [*deployed, *decisions]:
        print(f"  {definition['key']} version {definition['version']}")
    return 0


def run_topics(args: argparse.Namespace) -> int:
    for name, topic in sorted(TOPICS.items()):
        print(f"{name}\t{topic.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run one topic's worker in this process")
    worker.add_argument("topic", help="the external-task topic, e.g. run-metrics-job")
    worker.set_defaults(run=run_worker)

    deploy = commands.add_parser("deploy", help="deploy the changed BPMN/DMN files of a folder")
    deploy.add_argument("--dir", default="bpmn", help="folder of .bpmn/.dmn/.form files (default: bpmn)")
    deploy.add_argument("--name", default="mlc-manager", help="deployment name (default: mlc-manager)")
    deploy.set_defaults(run=run_deploy)

    topics = commands.add_parser("topics", help="list the topics this fleet handles")
    topics.set_defaults(run=run_topics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(load(LogSettings))
        return args.run(args)
    except ConfigurationError as exc:
        print(f"mlc: configuration error: {exc}", file=sys.stderr)
        return 2
    except (FleetError, EngineError) as exc:
        print(f"mlc: {exc}", file=sys.stderr)
        return 1
