"""The Celery application that hosts a worker process, and the seam where the request path plugs in.

Celery runs the process: signals, warm shutdown, remote control (``ping``, ``hypatos_status``) and
events for monitors such as Flower, and the internal task queue for the service's own background
tasks.  The request path itself does not go through Celery's task machinery: `RequestConsumerStep`
(a worker bootstep) starts the process's `Runtime`, whose asyncio loop consumes the request queue
directly and runs every request there (see docs/ARCHITECTURE.md for why).

`create_app` builds an app from settings; nothing is built at import time.  ``celery -A worker.app``
finds `app`, which is created from the environment on first access.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any

import structlog
from celery import Celery, bootsteps, signals
from celery.worker.control import inspect_command

from worker.logging import configure_logging
from worker.metrics import serve_metrics
from worker.preflight import check_broker
from worker.queues import task_queue
from worker.runtime import Runtime, Services
from worker.settings import WorkerSettings
from worker.task_events import TaskEvents

log = structlog.get_logger(__name__)


class HypatosCelery(Celery):
    """A Celery app that carries the worker settings and, in a worker process, its runtime."""

    def __init__(self, settings: WorkerSettings, **kwargs: Any) -> None:
        super().__init__("hypatos", broker=settings.broker_url, **kwargs)
        self.settings = settings
        self.runtime: Runtime | None = None


def _request_handler(services: Services) -> Any:
    """The handler the consumer runs for each request (imported here: `worker` never needs `tasks`)."""
    from tasks.handle import handle_request

    return functools.partial(handle_request, services=services)


class RequestConsumerStep(bootsteps.StartStopStep):
    """Starts the runtime and its request consumer with the worker; stops them on shutdown.

    On a warm shutdown (SIGTERM) the consumer stops taking requests and those in flight get
    ``HYPATOS_SHUTDOWN_TIMEOUT_S`` to finish; past it the process exits at once with status 1, and
    RabbitMQ hands the unacknowledged requests to another worker.
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app: HypatosCelery = parent.app

    def start(self, parent: Any) -> None:
        """Declare the topology, open the runtime (connections, session, stores) and start consuming.

        The topology is declared here too (idempotently), so a worker started with ``celery -A
        worker.app worker`` rather than ``hypatos-worker run`` never consumes without the delay chain
        that deferred requests come back through.
        """
        check_broker(self.app.settings)
        runtime = Runtime(self.app.settings)
        self.app.runtime = runtime
        events = TaskEvents(
            functools.partial(_task_events_wanted, parent), parent.hostname, self.app.clock.forward
        )
        runtime.start_consuming(_request_handler, events)
        serve_metrics(self.app.settings.metrics_port)

    def stop(self, parent: Any) -> None:
        """Stop consuming and let requests in flight finish, within the shutdown timeout."""
        runtime = self.app.runtime
        if runtime is None:
            return
        if not runtime.stop_consuming(self.app.settings.shutdown_timeout_s):
            _exit_now(self.app.settings.shutdown_timeout_s)
        runtime.close()
        self.app.runtime = None


def _task_events_wanted(worker: Any) -> bool:
    """Whether Celery's event dispatcher sends task events now (``-E``, or a monitor's enable_events)."""
    dispatcher = getattr(getattr(worker, "consumer", None), "event_dispatcher", None)
    if dispatcher is None or not dispatcher.enabled:
        return False
    return not dispatcher.groups or "task" in dispatcher.groups


def create_app(settings: WorkerSettings | None = None) -> HypatosCelery:
    """Build the app; tests pass their own settings."""
    settings = settings or WorkerSettings()
    app = HypatosCelery(settings)
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
        worker_concurrency=2,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.task_events,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True},
        broker_heartbeat=30,
    )
    app.steps["worker"].add(RequestConsumerStep)
    return app


@functools.cache
def default_app() -> HypatosCelery:
    """The app for this process's environment (``hypatos-worker run``, ``celery -A worker.app``)."""
    return create_app()


def __getattr__(name: str) -> Any:
    if name == "app":  # created on first use, not at import
        return default_app()
    raise AttributeError(name)


@inspect_command()
def hypatos_status(state: Any, **_: Any) -> dict[str, Any]:
    """Remote control: whether this worker consumes the request queue, and its requests in flight."""
    runtime = getattr(state.consumer.app, "runtime", None)
    return runtime.status() if runtime is not None else {"consuming": False, "in_flight": 0}


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    settings = default_app().settings
    configure_logging(settings.log_level, settings.log_format)


@signals.worker_shutting_down.connect
def _bound_warm_shutdown(how: str = "", **_: Any) -> None:
    """A backstop for a warm shutdown that hangs outside the request path (a stuck broker call)."""
    if how != "Warm":
        return
    timeout_s = default_app().settings.shutdown_timeout_s
    timer = threading.Timer(timeout_s + 15, _exit_now, args=(timeout_s,))
    timer.daemon = True
    timer.start()


def _exit_now(timeout_s: float) -> None:
    log.warning("shutdown_timeout_reached", timeout_s=timeout_s)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)
