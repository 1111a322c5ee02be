"""The per-process runtime and the Celery app around it, started and stopped in process.

The broker named here does not answer (port 1): the consumer keeps trying to connect while the tests
look at what the runtime built, its status, and how it stops.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import worker.app
from tests.support.inprocess import emulator_connection, write_connections
from worker.app import RequestConsumerStep, create_app, hypatos_status
from worker.errors import ConfigError
from worker.result_store import FallibleStoreGuard, MemoryResultStore
from worker.runtime import Runtime, load_registry, open_result_store
from worker.settings import WorkerSettings

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"


@pytest.fixture
def settings(tmp_path: Path, emulator: Any) -> WorkerSettings:
    path = write_connections(tmp_path / "connections.toml", {"main": emulator_connection(emulator)})
    return WorkerSettings(
        broker_url=UNREACHABLE_BROKER, connections_file=path, allow_custom_endpoints=True, concurrency=3
    )


def test_given_no_connections_file_then_the_runtime_says_which_setting_to_set() -> None:
    with pytest.raises(ConfigError, match="HYPATOS_CONNECTIONS_FILE is not set"):
        load_registry(WorkerSettings(connections_file=None))


def test_without_redis_the_result_store_is_in_memory_and_with_it_guarded() -> None:
    assert isinstance(open_result_store(WorkerSettings()), MemoryResultStore)
    guarded = open_result_store(WorkerSettings(redis_url="redis://127.0.0.1:1/0"))  # not contacted here
    assert isinstance(guarded, FallibleStoreGuard)


def test_a_runtime_runs_coroutines_on_its_loop_and_closes_once(settings: WorkerSettings) -> None:
    runtime = Runtime(settings)
    try:
        names = runtime.run(_on_loop(runtime))
        assert names == ["main"]
        assert runtime.status() == {
            "request_queue": settings.request_queue,
            "consuming": False,
            "in_flight": 0,
            "concurrency": 3,
        }
        assert runtime.stop_consuming(timeout_s=1) is True  # never consumed
    finally:
        runtime.close()
    runtime.close()  # safe twice


async def _on_loop(runtime: Runtime) -> list[str]:
    assert threading.current_thread().name == "hypatos-loop"
    return runtime.services.connections.names()


def test_given_an_unreachable_broker_then_the_consumer_waits_and_stops_cleanly(
    settings: WorkerSettings,
) -> None:
    runtime = Runtime(settings)
    try:
        runtime.start_consuming(lambda services: _never_called)
        assert runtime.status()["consuming"] is False
        assert runtime.stop_consuming(timeout_s=1) is True
    finally:
        runtime.close()


async def _never_called(*_: Any) -> Any:
    raise AssertionError("no request can arrive without a broker")


def test_the_app_carries_the_settings_and_the_request_path_step(settings: WorkerSettings) -> None:
    app = create_app(settings)
    assert app.settings is settings and app.conf.task_default_queue == settings.task_queue
    assert app.conf.worker_pool == "threads" and app.conf.task_acks_late is True
    assert RequestConsumerStep in app.steps["worker"]


def test_the_request_consumer_step_starts_the_runtime_and_stops_it(
    settings: WorkerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[WorkerSettings] = []
    monkeypatch.setattr(worker.app, "check_broker", checked.append)  # no broker here: see test_preflight
    app = create_app(settings)
    parent = SimpleNamespace(app=app, hostname="hypatos-1@test", consumer=None)
    step = RequestConsumerStep(parent)
    step.start(parent)
    try:
        assert app.runtime is not None
        status = hypatos_status(SimpleNamespace(consumer=SimpleNamespace(app=app)))
        assert status["consuming"] is False and status["in_flight"] == 0 and status["concurrency"] == 3
    finally:
        step.stop(parent)
    assert app.runtime is None and checked == [settings]
    step.stop(parent)  # nothing left to stop
    assert hypatos_status(SimpleNamespace(consumer=SimpleNamespace(app=app))) == {
        "consuming": False,
        "in_flight": 0,
    }


def test_the_request_handler_is_the_tasks_handler_bound_to_the_services(settings: WorkerSettings) -> None:
    from tasks.handle import handle_request

    handler = worker.app._request_handler("services")  # type: ignore[arg-type]
    assert handler.func is handle_request and handler.keywords == {"services": "services"}


def test_a_warm_shutdown_arms_a_backstop_timer_and_a_cold_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed: list[float] = []

    class Timer:
        def __init__(self, interval: float, function: Any, args: Any) -> None:
            armed.append(interval)
            self.daemon = False

        def start(self) -> None:
            assert self.daemon

    monkeypatch.setattr(worker.app.threading, "Timer", Timer)
    worker.app._bound_warm_shutdown(how="Cold")
    worker.app._bound_warm_shutdown(how="Warm")
    assert armed == [worker.app.default_app().settings.shutdown_timeout_s + 15]


def test_the_module_app_is_built_on_first_use_from_the_environment() -> None:
    assert worker.app.app is worker.app.default_app()
    with pytest.raises(AttributeError):
        _ = worker.app.no_such_attribute  # type: ignore[attr-defined]
