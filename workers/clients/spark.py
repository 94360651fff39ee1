"""The worker's Spark application: one ``SparkSession`` per worker process, started when a job first
needs it and stopped when the process exits.

Starting a session costs seconds (a JVM, its scheduler, Python workers), so it is kept between jobs and
shared by the tasks a worker runs at once. A job asking for another master or configuration than the
running session's waits until no job uses it, then gets a new session (Spark allows one per process) in a
new JVM: Spark reads some settings only when its JVM starts (``spark.jars.packages``, ``spark.driver.memory``)
and Hadoop keeps the file systems it opened, with their settings (``fs.s3a.endpoint``), for the JVM's life.

``pyspark`` is the optional extra ``spark`` (``pip install 'mlc-manager[spark]'``) and needs Java 17 or
later; without it a spark runtime's job is :class:`SparkUnavailable`. With a ``local[...]`` master the
executors' Python is this worker's interpreter, unless ``PYSPARK_PYTHON`` or ``spark.pyspark.python`` says
otherwise.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["SparkUnavailable", "active_session", "session", "stop"]

_APP_NAME = "mlc-manager"
_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


class SparkUnavailable(Exception):
    """No Spark session can be had: pyspark is not installed, or the master refused to start one."""


class _Sessions:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._session: Any = None
        self._key: tuple[str, tuple[tuple[str, str], ...]] | None = None
        self._users = 0

    @contextmanager
    def session(self, master: str, config: Mapping[str, str]) -> Iterator[Any]:
        key = (master, tuple(sorted(config.items())))
        with self._changed:
            while self._session is not None and self._key != key and self._users:
                self._changed.wait()
            if self._session is None or self._key != key:
                self._stop()
                _stop_jvm()
                self._session = _started(master, config)
                self._key = key
            self._users += 1
            current = self._session
        try:
            yield current
        finally:
            with self._changed:
                self._users -= 1
                self._changed.notify_all()

    def active(self) -> Any:
        with self._changed:
            return self._session

    def stop(self) -> None:
        with self._changed:
            self._stop()

    def _stop(self) -> None:
        if self._session is not None:
            session, self._session, self._key = self._session, None, None
            try:
                session.stop()
            except Exception:  # noqa: BLE001 - a JVM already gone (killed, crashed) has nothing left to stop
                pass


def _started(master: str, config: Mapping[str, str]) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable("pyspark is not installed in this worker: install the extra "
                               "'mlc-manager[spark]' (and Java 17 or later)") from exc
    settings = {**_DEFAULTS, **config}
    if master.startswith("local") and "spark.pyspark.python" not in settings:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # what a local master's Python workers run
    builder = SparkSession.builder.master(master).appName(settings.pop("spark.app.name", _APP_NAME))
    for name, value in settings.items():
        builder = builder.config(name, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j and the JVM raise many types when a master or a setting is wrong
        packages = settings.get("spark.jars.packages")
        hint = (f" (the JVM first resolves spark.jars.packages {packages} through Ivy, from its cache or Maven "
                "Central: Spark's output on this worker's stderr says what failed)") if packages else ""
        raise SparkUnavailable(f"cannot start a Spark session on master {master!r}: {type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}{hint}") from exc


def _stop_jvm() -> None:
    """Stop the JVM pyspark started in this process (its next session starts a new one), if there is one."""
    try:
        from pyspark import SparkContext
    except ImportError:
        return
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    try:
        gateway.shutdown()
    except Exception:  # noqa: BLE001 - a JVM already gone has no connection left to close
        pass
    if process is not None:
        process.stdin.close()  # pyspark's gateway exits when its standard input closes
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None


_SESSIONS = _Sessions()
atexit.register(_SESSIONS.stop)


def session(master: str, config: Mapping[str, str] | None = None) -> Any:
    """A context manager giving this process's ``SparkSession`` on ``master`` with ``config``, started if
    need be; the session stays for the next job."""
    return _SESSIONS.session(master, dict(config or {}))


def active_session() -> Any:
    """The running session, ``None`` when none has been started (or it was stopped)."""
    return _SESSIONS.active()


def stop() -> None:
    """Stop the running session (done by itself when the process exits)."""
    _SESSIONS.stop()
