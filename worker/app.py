"""The Celery application: broker settings, the internal task queue, the bridge and the runtime.

``celery -A worker.app worker`` and ``hypatos-worker run`` both use `app`.  Settings come from the
environment (`worker.settings.WorkerSettings`) when this module is imported.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import structlog
from celery import Celery, signals

from worker.bridge import RequestBridge
from worker.logging import configure_logging
from worker.metrics import serve_metrics
from worker.queues import task_queue
from worker.runtime import Runtime
from worker.settings import WorkerSettings


class HypatosCelery(Celery):
    """A Celery app that carries the worker settings and the process's async runtime."""

    def __init__(self, settings: WorkerSettings, **kwargs: Any) -> None:
        super().__init__("hypatos", broker=settings.broker_url, **kwargs)
        self.settings = settings
        self._runtime: Runtime | None = None
        self._runtime_lock = threading.Lock()

    @property
    def runtime(self) -> Runtime:
        """This process's runtime, started on first use (pool threads race for it safely)."""
        if self._runtime is None:
            with self._runtime_lock:
                if self._runtime is None:
                    self._runtime = Runtime(self.settings)
        return self._runtime

    def close_runtime(self) -> None:
        """Close the runtime's session and loop, if one was started."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


def create_app(settings: WorkerSettings | None = None) -> HypatosCelery:
    """Build the app; tests pass their own settings."""
    settings = settings or WorkerSettings()
    app = HypatosCelery(settings, include=["tasks.run"])
    app.conf.update(
        task_queues=[task_queue(settings)],
        task_default_queue=settings.task_queue,
        task_default_exchange=settings.task_queue,
        task_default_exchange_type="topic",
        task_default_routing_key=settings.task_queue,
        task_create_missing_queues=False,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        worker_pool="threads",
        worker_concurrency=settings.concurrency,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True},
        broker_heartbeat=30,
    )
    app.steps["worker"].add(RequestBridge)
    return app


app = create_app()


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(app.settings.log_level, app.settings.log_format)


@signals.worker_ready.connect
def _start_runtime(**_: Any) -> None:
    """Open the session and load connections before the first request; serve metrics if asked."""
    app.runtime  # noqa: B018 - the property starts it
    serve_metrics(app.settings.metrics_port)


@signals.worker_shutting_down.connect
def _bound_warm_shutdown(how: str = "", **_: Any) -> None:
    """SIGTERM starts a warm shutdown (no new requests, finish those in flight); bound its length.

    After ``HYPATOS_SHUTDOWN_TIMEOUT_S`` the process exits at once (status 1): requests still running
    were never acknowledged, so RabbitMQ hands them to another worker when the connections close.
    Celery's own cold shutdown cannot be used: its thread pool cannot cancel running tasks.
    """
    if how != "Warm":
        return
    timer = threading.Timer(app.settings.shutdown_timeout_s, _shut_down_cold)
    timer.daemon = True
    timer.start()


def _shut_down_cold() -> None:
    structlog.get_logger(__name__).warning(
        "shutdown_timeout_reached", timeout_s=app.settings.shutdown_timeout_s
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    app.close_runtime()
