"""The ``mlc`` command: run the local fleet, one topic's worker, deployments and triggers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from workers.config import ConfigurationError, EngineSettings, FleetSettings, LogSettings, WorkerSettings, load
from workers.engine import EngineClient, EngineError
from workers.fleet.processes import FleetError
from workers.fleet.secrets import operator_credentials
from workers.harness.serve import serve
from workers.logs import configure_logging
from workers.topics import TOPICS

if TYPE_CHECKING:
    from datetime import datetime

    from workers.fleet.history import EngineHistory

__all__ = ["main"]


def engine_client() -> EngineClient:
    """The engine as the settings name it; on a local fleet without MLC_ENGINE_USER, as its admin."""
    return EngineClient(operator_credentials(load(EngineSettings), load(FleetSettings).home))


def run_worker(args: argparse.Namespace) -> int:
    from workers.fleet.groups import GROUPS

    names: list[str] = list(args.topic)
    if args.all:
        names = sorted(TOPICS)
    for group in args.group or ():
        if group not in GROUPS:
            print(f"mlc: unknown worker group {group!r}; groups: {', '.join(GROUPS)}", file=sys.stderr)
            return 2
        names += GROUPS[group]
    if not names:
        print("mlc worker: name topics, a --group or --all", file=sys.stderr)
        return 2
    unknown = [name for name in names if name not in TOPICS]
    if unknown:
        print(f"mlc: unknown topic {', '.join(map(repr, unknown))}; known topics: {', '.join(sorted(TOPICS))}",
              file=sys.stderr)
        return 2
    return serve([TOPICS[name] for name in dict.fromkeys(names)], load(EngineSettings), load(WorkerSettings))


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


def run_templates(args: argparse.Namespace) -> int:
    from workers.harness.templates import write_templates

    out = Path(args.out)
    try:
        written = write_templates(TOPICS.values(), out)
    except (OSError, ValueError) as exc:
        print(f"mlc: cannot write the element templates to {out}: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} Camunda Modeler element templates in {out}")
    return 0


def run_up(args: argparse.Namespace) -> int:
    from workers.fleet.local import LocalFleet, serve_forever

    return serve_forever(LocalFleet.from_environment(), demo=not args.no_demo, exit_after_demo=args.exit_after_demo)


def run_backtest(args: argparse.Namespace) -> int:
    from workers.fleet.local import run_back_test
    from workers.triggers.signals import BACK_TEST_PASSED, wait_for_outcome

    with engine_client() as client:
        request_id = run_back_test(client, args.model_id, version=args.version, input_file=args.input,
                                   output_file=args.output)
        print(f"back test of {args.model_id} signalled (MLC_REQUEST_ID={request_id})")
        if args.wait:
            outcome = wait_for_outcome(client, request_id, args.timeout)
            print(outcome["summary"])
            return 0 if outcome["end_id"] == BACK_TEST_PASSED else 1
    return 0


def run_batch(args: argparse.Namespace) -> int:
    from workers.triggers.signals import BATCH_JOB_DONE, DEPLOYED_BATCH_JOB, send_signal, wait_for_outcome

    variables = {"TAG": args.tag, "MODEL_STAGE": args.stage, "INPUT_FILE": args.input, "OUTPUT_FILE": args.output,
                 "OVERWRITE": args.overwrite, "LABEL_COLUMN": args.label_column}
    with engine_client() as client:
        request_id = send_signal(client, DEPLOYED_BATCH_JOB, variables)
        print(f"batch job for {args.tag} signalled (MLC_REQUEST_ID={request_id})")
        if args.wait:
            outcome = wait_for_outcome(client, request_id, args.timeout, details=("NOTIFICATION_MESSAGE",
                                                                                  "ERROR_MESSAGE"))
            print(outcome["summary"])
            return 0 if outcome["end_id"] == BATCH_JOB_DONE else 1
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    import getpass

    from workers.triggers.signals import ROLLBACK_MODEL, ROLLED_BACK, send_signal, wait_for_outcome

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    variables = {"MODEL_ID": args.model_id, "TO_VERSION": args.to, "RUNTIME": args.runtime,
                 "MODEL_STAGE": args.stage, "REASON": args.reason, "REQUESTED_BY": user}
    with engine_client() as client:
        request_id = send_signal(client, ROLLBACK_MODEL, variables)
        print(f"rollback of {args.model_id} signalled (MLC_REQUEST_ID={request_id})")
        if args.no_wait:
            return 0
        outcome = wait_for_outcome(client, request_id, args.timeout, details=("NOTIFICATION_MESSAGE",
                                                                              "ERROR_MESSAGE"))
        print(outcome["summary"])
        return 0 if outcome["end_id"] == ROLLED_BACK else 1


def run_dmn_evaluate(args: argparse.Namespace) -> int:
    import json

    from workers.config import DecisionSettings, load
    from workers.domain.decisions import DecisionError, evaluate_dmn

    try:
        metrics = json.loads(Path(args.input).read_text())
        dmn = Path(args.file).read_bytes()
    except (OSError, ValueError) as exc:
        print(f"mlc: cannot read {exc.filename if isinstance(exc, OSError) else args.input}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(metrics, dict):
        print(f"mlc: {args.input} must hold a JSON object: metric names to values, or a monitor's test result",
              file=sys.stderr)
        return 2
    try:
        with engine_client() as client:
            result = evaluate_dmn(dmn, metrics, client, missing_fail=load(DecisionSettings).missing_metrics_fail)
    except DecisionError as exc:
        print(json.dumps({"error": exc.code, "message": exc.message}, indent=2))
        return 1
    print(json.dumps(result.as_variables(), indent=2))
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from workers.triggers.bridge import submit_model_version

    with engine_client() as client:
        instance = submit_model_version(client, args.model_id, args.version)
    state = "started" if instance["created"] else "already submitted"
    print(f"{args.model_id} version {args.version}: Deploy with run test and Jira {state} "
          f"(process instance {instance['id']}, business key {instance['businessKey']})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from workers.clients.mlflow.registry import ModelNotFound, ModelRegistry
    from workers.config import MlflowSettings
    from workers.domain.deployments import deployments_of, format_status

    registry = ModelRegistry(load(MlflowSettings))
    try:
        registry.get_model(args.model_id)
        records = deployments_of(registry, args.model_id)
    except ModelNotFound as exc:
        print(f"mlc: {exc}", file=sys.stderr)
        return 1
    print(format_status(records))
    return 0


def run_bridge(args: argparse.Namespace) -> int:
    from workers.triggers.bridge import BridgeSettings, serve_bridge

    return serve_bridge(load(BridgeSettings), load(EngineSettings))


def run_watch(args: argparse.Namespace) -> int:
    from workers.config import DataSettings, MlflowSettings, S3Settings, WatchSettings
    from workers.triggers.watcher import serve_watcher

    return serve_watcher(load(WatchSettings), load(EngineSettings), load(MlflowSettings), load(DataSettings),
                         load(S3Settings))


class CommandFailed(Exception):
    """A command that cannot do what was asked: ``mlc: <message>`` on stderr, and ``code`` its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def _history(args: argparse.Namespace) -> Iterator[tuple[EngineHistory, datetime | None]]:
    """The engine's history (and MLflow's registry) and the ``--since`` of ``args``, the engine's client closed
    when the block ends. A bad ``--since`` (exit code 2) and MLflow's errors (1) are :class:`CommandFailed`."""
    from workers.clients.mlflow.registry import ModelRegistry, RegistryError
    from workers.config import MlflowSettings
    from workers.fleet.history import EngineHistory, parse_since

    try:
        since = parse_since(args.since) if args.since else None
        history = EngineHistory(engine_client(), ModelRegistry(load(MlflowSettings)))
    except ValueError as exc:
        raise CommandFailed(str(exc), 2) from exc
    try:
        with history.engine:
            yield history, since
    except RegistryError as exc:
        raise CommandFailed(f"MLflow: {exc}", 1) from exc


def run_report(args: argparse.Namespace) -> int:
    from workers.domain.kpis import format_kpis

    with _history(args) as (history, since):
        report = history.kpis(since, args.model)
        audit = history.audit(args.model, since=since) if args.model and args.html else None
    print(format_kpis(report))
    if args.html:
        from workers.fleet.report_html import write_html

        try:
            print(f"\nHTML report written to {write_html(Path(args.html), report, audit)}")
        except RuntimeError as exc:
            print(f"mlc: {exc}", file=sys.stderr)
            return 2
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from workers.domain.audit import format_audit

    with _history(args) as (history, since):
        events = history.audit(args.model_id, args.version, since)
    if not events:
        print(f"mlc: no history of model {args.model_id!r}" + (f" version {args.version}" if args.version else ""),
              file=sys.stderr)
        return 1
    print(format_audit(events))
    return 0


def run_exporter(args: argparse.Namespace) -> int:
    from workers.config import ExporterSettings
    from workers.fleet.exporter import serve_exporter
    from workers.fleet.secrets import operator_credentials

    engine = operator_credentials(load(EngineSettings), load(FleetSettings).home)
    return serve_exporter(load(ExporterSettings), engine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="serve topics in this process, each with its own task loop")
    worker.add_argument("topic", nargs="*", help="external-task topics, e.g. run-metrics-job")
    worker.add_argument("--group", action="append", metavar="GROUP",
                        help="the topics of a worker group: light, metrics, scoring, training, deployment")
    worker.add_argument("--all", action="store_true", help="every topic")
    worker.set_defaults(run=run_worker)

    deploy = commands.add_parser("deploy", help="deploy the changed BPMN/DMN files of a folder")
    deploy.add_argument("--dir", default="bpmn", help="folder of .bpmn/.dmn/.form files (default: bpmn)")
    deploy.add_argument("--name", default="mlc-manager", help="deployment name (default: mlc-manager)")
    deploy.set_defaults(run=run_deploy)

    up = commands.add_parser("up", help="start engine, MLflow, MLServer, bridge, Jira dev server and workers; "
                                        "run the sample")
    up.add_argument("--no-demo", action="store_true", help="skip the sample model, its back tests and new version")
    up.add_argument("--exit-after-demo", action="store_true", help="stop the fleet once the sample has run")
    up.set_defaults(run=run_up)

    backtest = commands.add_parser("backtest", help="signal Run Back Test for a model")
    backtest.add_argument("model_id", metavar="MODEL_ID", help="registered model name")
    backtest.add_argument("--version", help="model version (default: the deployed one)")
    backtest.add_argument("--input", help="labelled data (default: the version's test data)")
    backtest.add_argument("--output", help="where scores go (default: an artifact of the job's run)")
    backtest.add_argument("--wait", action="store_true", help="wait for the outcome and print it")
    backtest.add_argument("--timeout", type=float, default=300, help="seconds --wait waits (default 300)")
    backtest.set_defaults(run=run_backtest)

    batch = commands.add_parser("batch", help="signal Run Batch Model Job: score a file with the batch-deployed "
                                              "version of a service tag")
    batch.add_argument("tag", metavar="TAG", help="model service tag (the model tag 'service')")
    batch.add_argument("--stage", help="stage whose batch deployment scores (default: the latest in any stage)")
    batch.add_argument("--input", required=True, help="data to score: CSV or Parquet, local path or s3:// URI")
    batch.add_argument("--output", required=True, help="where scores go: CSV or Parquet, local path or s3:// URI")
    batch.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    batch.add_argument("--label-column", help="a column of the input to leave out of scoring")
    batch.add_argument("--wait", action="store_true", help="wait for the outcome and print it")
    batch.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    batch.set_defaults(run=run_batch)

    rollback = commands.add_parser("rollback", help="signal Rollback Model: put the previous (or a named) version "
                                                    "back in service, blue-green, and wait for the outcome")
    rollback.add_argument("model_id", metavar="MODEL")
    rollback.add_argument("--to", metavar="VERSION", help="the version to put back (default: the one the version "
                                                          "in service replaced)")
    rollback.add_argument("--runtime", help="only this runtime (default: every runtime of the stage it was "
                                            "replaced on)")
    rollback.add_argument("--stage", help="the stage to roll back (default: the stage of the newest deployment)")
    rollback.add_argument("--reason", help="why: goes into the notification")
    rollback.add_argument("--no-wait", action="store_true", help="signal and return without waiting")
    rollback.add_argument("--timeout", type=float, default=600, help="seconds to wait for the outcome (default 600)")
    rollback.set_defaults(run=run_rollback)

    submit = commands.add_parser("submit", help="start Deploy with run test and Jira for a model version")
    submit.add_argument("model_id", metavar="MODEL_ID", help="registered model name")
    submit.add_argument("version", metavar="VERSION", help="model version")
    submit.set_defaults(run=run_submit)

    status = commands.add_parser("status", help="where a model's versions are deployed (batch or online, since)")
    status.add_argument("model_id", metavar="MODEL_ID", help="registered model name")
    status.set_defaults(run=run_status)

    report = commands.add_parser("report", help="KPIs from the engine's history and MLflow: time to stage, "
                                                "approval lead time, back tests, deployments, incidents")
    report.add_argument("--since", help="only what started since: 30m, 12h, 7d, 2w or an ISO date (default: all)")
    report.add_argument("--model", help="one model only (its audit trail goes into the HTML report)")
    report.add_argument("--html", metavar="FILE", help="also write an HTML report with plots to FILE")
    report.set_defaults(run=run_report)

    audit = commands.add_parser("audit", help="a model's audit trail: every run, decision, ticket and deployment, "
                                              "in order")
    audit.add_argument("model_id", metavar="MODEL_ID", help="registered model name")
    audit.add_argument("--version", help="one version only")
    audit.add_argument("--since", help="only what happened since: 30m, 12h, 7d, 2w or an ISO date")
    audit.set_defaults(run=run_audit)

    exporter = commands.add_parser("exporter", help="serve Prometheus /metrics read from the engine "
                                                    "(MLC_EXPORTER_HOST/PORT)")
    exporter.set_defaults(run=run_exporter)

    bridge = commands.add_parser("bridge", help="serve the event bridge (MLflow and Jira webhooks)")
    bridge.set_defaults(run=run_bridge)

    watch = commands.add_parser("watch", help="start back tests and batch jobs on the new files in the folders and "
                                              "s3:// prefixes models name (tags labeled_data, batch_data)")
    watch.set_defaults(run=run_watch)

    dmn = commands.add_parser("dmn", help="test criteria (DMN) tools").add_subparsers(dest="dmn", required=True)
    evaluate = dmn.add_parser("evaluate", help="evaluate a DMN on metrics with the engine's DMN engine")
    evaluate.add_argument("file", metavar="FILE.dmn", help="the DMN, as exported (ModelOp format accepted)")
    evaluate.add_argument("--input", required=True, metavar="metrics.json",
                          help="JSON object of metrics, flat or a monitor's nested test result")
    evaluate.set_defaults(run=run_dmn_evaluate)

    topics = commands.add_parser("topics", help="list the topics this fleet handles")
    topics.set_defaults(run=run_topics)
    templates = commands.add_parser("templates", help="write a Camunda Modeler element template for every topic")
    templates.add_argument("--out", required=True, help="folder to write them to (one TOPIC.json per topic)")
    templates.set_defaults(run=run_templates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(load(LogSettings))
        return args.run(args)
    except ConfigurationError as exc:
        print(f"mlc: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"mlc: {exc}", file=sys.stderr)
        return exc.code
    except (FleetError, EngineError, OSError) as exc:
        print(f"mlc: {exc}", file=sys.stderr)
        return 1
