"""Every topic the fleet handles, one module per topic named after it.

``run-metrics-job`` lives in ``workers/topics/run_metrics_job.py``, and so on. :data:`TOPICS` is the
fixed registry the CLI and the tests read; it is never modified at run time.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from workers.harness.topic import Topic
from workers.topics import (
    check_jira_ticket,
    check_training_job,
    copy_schedules,
    create_jira,
    create_servicenow_incident,
    deploy_model,
    evaluate_dmn,
    find_rollback_target,
    find_runtimes,
    find_scheduled_back_tests,
    get_batch_deployment,
    get_compatible_runtime,
    get_model,
    inspect_model_version,
    promote_stage,
    record_deployments,
    run_batch_job,
    run_metrics_job,
    send_notification,
    set_expiration_date,
    start_training_job,
    summarize_back_tests,
    warm_up_model,
)

__all__ = ["TOPICS"]

_ALL: tuple[Topic[Any, Any], ...] = (
    check_jira_ticket.TOPIC,
    check_training_job.TOPIC,
    copy_schedules.TOPIC,
    create_jira.TOPIC,
    create_servicenow_incident.TOPIC,
    deploy_model.TOPIC,
    evaluate_dmn.TOPIC,
    find_rollback_target.TOPIC,
    find_runtimes.TOPIC,
    find_scheduled_back_tests.TOPIC,
    get_batch_deployment.TOPIC,
    get_compatible_runtime.TOPIC,
    get_model.TOPIC,
    inspect_model_version.TOPIC,
    promote_stage.TOPIC,
    record_deployments.TOPIC,
    run_batch_job.TOPIC,
    run_metrics_job.TOPIC,
    send_notification.TOPIC,
    set_expiration_date.TOPIC,
    start_training_job.TOPIC,
    summarize_back_tests.TOPIC,
    warm_up_model.TOPIC,
)

TOPICS: MappingProxyType[str, Topic[Any, Any]] = MappingProxyType({topic.name: topic for topic in _ALL})
