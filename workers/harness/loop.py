"""The task loop of one topic's worker: fetch, run in parallel, keep locks, report, drain.

Three threads share the work. The poller long-polls ``fetchAndLock`` for as many tasks as there are
free slots (never more than ``max_tasks`` held at once) and hands each to a thread pool. The lock
keeper extends the lock of every task still running at half its duration, and marks a task lost when
the engine refuses (lock expired and taken elsewhere, process cancelled): a lost task's result is
not reported. :meth:`TaskLoop.stop` (SIGTERM, SIGINT) drains: no more fetching, running tasks get
``drain_timeout_s`` to finish, the rest are unlocked so another worker takes them at once.

This replaces ``ExternalTaskWorker.subscribe`` of camunda-external-task-client-python3, which
handles tasks one at a time, never extends a lock, cannot be stopped, and on a handler exception
reports nothing (the task waits for its lock to expire) and then sleeps five minutes.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
import tenacity
from camunda.external_task.external_task import ExternalTask
from pydantic import ValidationError

from workers.config import WorkerSettings
from workers.engine.client import EngineClient
from workers.engine.errors import EngineBadRequest, EngineError, EngineServerError, EngineUnavailable
from workers.engine.variables import decode_variables
from workers.harness.outcomes import FatalError
from workers.harness.reporting import RetryPolicy, describe_invalid_input, fit_message, report, result_for_error
from workers.harness.telemetry import WorkerMetrics, WorkerState
from workers.harness.topic import TaskContext, Topic

__all__ = ["TaskLoop"]


class _Stopped(Exception):
    pass


@dataclass
class _HeldTask:
    task_id: str
    lock_expires_at: float
    lost: bool = False
    abandoned: bool = False
    done: bool = False


class TaskLoop:
    """Runs ``topic``'s handler for every task the engine hands out, until stopped."""

    def __init__(
        self,
        topic: Topic[Any, Any],
        client: EngineClient,
        settings: WorkerSettings,
        *,
        metrics: WorkerMetrics | None = None,
        state: WorkerState | None = None,
    ) -> None:
        self.topic = topic
        self.handler = topic.resolve_handler()
        self.client = client
        self.settings = settings
        self.metrics = metrics or WorkerMetrics(topic.name)
        self.state = state or WorkerState(topic.name, settings.id)
        self.lock_duration_ms = topic.lock_duration_ms or settings.lock_duration_ms
        self.retry_policy = RetryPolicy(settings.max_retries, settings.retry_timeout_ms, settings.retry_timeout_max_ms)
        self.log = structlog.get_logger("mlc.worker").bind(topic=topic.name, worker_id=settings.id)
        self._variables = topic.variable_names
        self._held: dict[str, _HeldTask] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._pool = ThreadPoolExecutor(settings.max_tasks, thread_name_prefix=f"{topic.name}-task")
        self.abandoned_tasks = 0

    # -- public ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to drain and return; safe from signal handlers and other threads."""
        self._stopping.set()

    def run(self) -> None:
        """Block until :meth:`stop`, then drain."""
        self.log.info("worker started", max_tasks=self.settings.max_tasks, lock_duration_ms=self.lock_duration_ms,
                      engine=self.client.base_url)
        poller = threading.Thread(target=self._poll, name=f"{self.topic.name}-poller", daemon=True)
        keeper = threading.Thread(target=self._keep_locks, name=f"{self.topic.name}-locks", daemon=True)
        poller.start()
        keeper.start()
        while not self._stopping.wait(0.5):
            if not poller.is_alive():
                self.log.error("poller ended unexpectedly; stopping")
                break
        self._drain()

    def start(self) -> threading.Thread:
        """Run in a background thread (tests, benchmarks, several topics in one process)."""
        thread = threading.Thread(target=self.run, name=f"{self.topic.name}-loop", daemon=True)
        thread.start()
        return thread

    # -- polling ---------------------------------------------------------------------------------

    def _poll(self) -> None:
        structlog.contextvars.bind_contextvars(topic=self.topic.name)
        fetching = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(EngineError),
            wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=30.0),
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._stopping.wait,
            before_sleep=self._poll_failed,
            reraise=True,
        )
        while not self._stopping.is_set():
            free = self._wait_for_free_slots()
            if not free:
                break
            try:
                tasks = fetching(self._fetch, free)
            except (_Stopped, EngineError):
                break
            for raw in tasks:
                if self._stopping.is_set():
                    self._unlock(raw["id"], reason="fetched while draining")
                else:
                    self._dispatch(raw)

    def _fetch(self, free: int) -> list[dict[str, Any]]:
        if self._stopping.is_set():
            raise _Stopped
        tasks = self.client.fetch_and_lock(self.topic.name, variables=self._variables, max_tasks=free)
        self.state.poll_succeeded()
        return tasks

    def _poll_failed(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        self.metrics.poll_errors.inc()
        self.state.poll_failed(str(error))
        level = self.log.warning if isinstance(error, EngineUnavailable) else self.log.error
        level("fetchAndLock failed; backing off", error=str(error),
              retry_in_s=round(retry_state.upcoming_sleep, 2), attempt=retry_state.attempt_number)

    def _wait_for_free_slots(self) -> int:
        """The free slots to fetch for: at once when none is held; while some are, after half of them came
        free or ``fetch_batch_wait_ms`` passed, so a loop draining a backlog asks for tasks in batches
        (each ``fetchAndLock`` is a query over the topic's open tasks, whatever it asks for)."""
        capacity, batch = self.settings.max_tasks, max(1, self.settings.max_tasks // 2)
        with self._changed:
            while len(self._held) >= capacity and not self._stopping.is_set():
                self._changed.wait(0.5)
            deadline = time.monotonic() + self.settings.fetch_batch_wait_ms / 1000
            while (self._held and capacity - len(self._held) < batch and not self._stopping.is_set()
                   and (left := deadline - time.monotonic()) > 0):
                self._changed.wait(left)
            return 0 if self._stopping.is_set() else capacity - len(self._held)

    def _dispatch(self, raw: dict[str, Any]) -> None:
        held = _HeldTask(raw["id"], time.monotonic() + self.lock_duration_ms / 1000)
        with self._changed:
            self._held[held.task_id] = held
        self.metrics.fetched.inc()
        self.metrics.in_flight.inc()
        self._pool.submit(self._run_task, held, raw)

    # -- one task --------------------------------------------------------------------------------

    def _run_task(self, held: _HeldTask, raw: dict[str, Any]) -> None:
        task = ExternalTask(raw)
        context = {"topic": self.topic.name, "task_id": held.task_id,
                   "process_instance_id": raw.get("processInstanceId")}
        with structlog.contextvars.bound_contextvars(**context):
            log = structlog.get_logger("mlc.task")
            started = time.perf_counter()
            try:
                result = self._handle(task, raw, log, held)
                elapsed = time.perf_counter() - started
                self.metrics.handler_seconds.observe(elapsed)
                try:
                    self._report(held, result, log, elapsed)
                except (EngineBadRequest, EngineServerError) as exc:
                    self._report_refusal(held, exc, log)
            except Exception as exc:  # reporting itself failed: the lock expires and the task returns
                log.error("could not report the task's result; it returns when its lock expires",
                          error=str(exc), exc_info=True)
            finally:
                held.done = True
                self.metrics.in_flight.dec()
                with self._changed:
                    self._held.pop(held.task_id, None)
                    self._changed.notify_all()

    def _handle(self, task: ExternalTask, raw: dict[str, Any], log: Any, held: _HeldTask) -> Any:
        task_context = TaskContext(
            task_id=raw["id"],
            topic=self.topic.name,
            process_instance_id=raw.get("processInstanceId"),
            process_definition_key=raw.get("processDefinitionKey"),
            activity_id=raw.get("activityId"),
            business_key=raw.get("businessKey"),
            retries=raw.get("retries"),
            worker_id=self.settings.id,
            extension_properties=raw.get("extensionProperties") or {},
            log=log,
            confirm_lock=lambda: self._confirm_lock(held),
        )
        try:
            try:
                data = self.topic.input_model.model_validate(decode_variables(raw.get("variables")))
            except ValidationError as exc:
                raise FatalError(describe_invalid_input(self.topic.name, exc)) from exc
            output = self.handler(data, task_context)
            return task.complete(self.topic.output_variables(output))
        except Exception as exc:
            return result_for_error(task, exc, self.retry_policy)

    def _report(self, held: _HeldTask, result: Any, log: Any, elapsed: float) -> None:
        if held.lost or held.abandoned:
            log.warning("result not reported: the task's lock was given up", lost=held.lost, abandoned=held.abandoned)
            return
        sent = report(self.client, result)
        duration_ms = round(elapsed * 1000, 1)
        if sent == "complete":
            self.metrics.completed.inc()
            log.info("task completed", duration_ms=duration_ms)
        elif sent == "bpmn-error":
            self.metrics.bpmn_errors.labels(topic=self.topic.name, code=result.bpmn_error_code).inc()
            log.info("task ended with BPMN error", code=result.bpmn_error_code, message=result.error_message,
                     duration_ms=duration_ms)
        else:
            self.metrics.failed.labels(topic=self.topic.name, kind=sent).inc()
            log.error("task failed", error=result.error_message, retries_left=result.retries,
                      retry_in_ms=result.retry_timeout, incident=sent == "incident", duration_ms=duration_ms)

    def _report_refusal(self, held: _HeldTask, error: EngineError, log: Any) -> None:
        """The engine refused the result (e.g. the next activity's expression fails): an incident now.

        Reporting again after the lock expired would be refused the same way, for ever, unseen.
        """
        message = f"the engine refused this task's result: {error.message}"
        self.client.failure(held.task_id, fit_message(message), f"{message}\n\n{traceback.format_exc()}", 0, 0)
        self.metrics.failed.labels(topic=self.topic.name, kind="incident").inc()
        log.error("the engine refused the task's result; reported as an incident", error=error.message)

    # -- locks and draining ------------------------------------------------------------------------

    def _keep_locks(self) -> None:
        lock_s = self.lock_duration_ms / 1000
        interval = max(0.1, min(5.0, lock_s / 4))
        while not self._finished.wait(interval):
            now = time.monotonic()
            with self._changed:
                due = [h for h in self._held.values()
                       if not (h.done or h.lost or h.abandoned) and h.lock_expires_at - now < lock_s / 2]
            for held in due:
                self._extend(held, lock_s)

    def _confirm_lock(self, held: _HeldTask) -> bool:
        """Extend ``held``'s lock now: whether this delivery still owns the task (see
        :meth:`TaskContext.confirm_lock`)."""
        if held.lost or held.abandoned:
            return False
        try:
            self.client.extend_lock(held.task_id, self.lock_duration_ms)
        except EngineUnavailable:
            return False
        except EngineError as exc:
            held.lost = True
            self.metrics.locks_lost.inc()
            self.log.warning("lock lost; the task's result will not be reported", task_id=held.task_id,
                             error=str(exc))
            return False
        held.lock_expires_at = time.monotonic() + self.lock_duration_ms / 1000
        return True

    def _extend(self, held: _HeldTask, lock_s: float) -> None:
        try:
            self.client.extend_lock(held.task_id, self.lock_duration_ms)
        except EngineUnavailable as exc:
            self.log.warning("could not extend a lock; will try again", task_id=held.task_id, error=str(exc))
        except EngineError as exc:
            if held.done:
                return
            held.lost = True
            self.metrics.locks_lost.inc()
            self.log.warning("lock lost; the task's result will not be reported", task_id=held.task_id,
                             error=str(exc))
        else:
            held.lock_expires_at = time.monotonic() + lock_s
            self.metrics.locks_extended.inc()

    def _drain(self) -> None:
        self.state.draining = True
        deadline = time.monotonic() + self.settings.drain_timeout_s
        with self._changed:
            if self._held:
                self.log.info("draining", held=len(self._held), timeout_s=self.settings.drain_timeout_s)
            while self._held and time.monotonic() < deadline:
                self._changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            left = [h for h in self._held.values() if not h.done]
            for held in left:
                held.abandoned = True
        for held in left:
            self._unlock(held.task_id, reason="still running when the drain timeout ran out")
        self.abandoned_tasks = len(left)
        self._finished.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.log.info("worker stopped", unlocked=len(left))

    def _unlock(self, task_id: str, *, reason: str) -> None:
        try:
            self.client.unlock(task_id)
            self.log.info("task unlocked", task_id=task_id, reason=reason)
        except EngineError as exc:
            self.log.warning("could not unlock; the task returns when its lock expires", task_id=task_id,
                             error=str(exc))
