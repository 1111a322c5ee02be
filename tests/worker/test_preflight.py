"""The broker check before ready: which broker answers are fatal (and what to fix), and retrying the rest.

`check_broker` runs here against a connection stand-in that fails as told; the real connection is in
the integration tests (a worker that starts is a worker whose check passed).
"""

from __future__ import annotations

from typing import Any

import amqp.exceptions
import pytest
from kombu import Connection

import worker.preflight
from worker.errors import ConfigError
from worker.preflight import check_broker, fatal_reason
from worker.settings import WorkerSettings

BROKER = "amqp://erp:s3cret-pw@rabbit.example:5672/billing"


def reason(error: BaseException) -> str | None:
    return fatal_reason(error, Connection(BROKER))


def test_a_refused_login_names_the_user_and_hides_the_password() -> None:
    text = reason(amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login was refused"))
    assert text is not None and "user 'erp'" in text and "HYPATOS_BROKER_URL" in text
    assert "s3cret-pw" not in text


def test_a_vhost_without_permissions_says_how_to_grant_them() -> None:
    text = reason(amqp.exceptions.AccessRefused("access to vhost 'billing' refused for user 'erp'"))
    assert text is not None and "set_permissions" in text and "'billing'" in text


def test_a_missing_vhost_says_how_to_create_it() -> None:
    assert "add_vhost" in (reason(amqp.exceptions.NotAllowed("vhost billing not found")) or "")


def test_a_queue_declared_with_other_arguments_points_at_the_settings() -> None:
    text = reason(amqp.exceptions.PreconditionFailed("inequivalent arg 'x-queue-type'"))
    assert text is not None and "HYPATOS_QUEUE_TYPE" in text and "broker-definitions" in text


def test_another_refusal_is_fatal_with_the_brokers_words() -> None:
    assert "NOT_FOUND - no exchange" in (reason(amqp.exceptions.NotFound("NOT_FOUND - no exchange")) or "")


def test_an_unreachable_broker_is_not_fatal() -> None:
    assert reason(ConnectionRefusedError(111, "Connection refused")) is None


class FakeConnection:
    """Stands in for kombu's `Connection`: each `connect` takes the next outcome (an error, or None)."""

    outcomes: list[BaseException | None] = []
    declared = 0

    def __init__(self, url: str, connect_timeout: float) -> None:
        self._real = Connection(url)
        self.userid, self.virtual_host = self._real.userid, self._real.virtual_host

    def as_uri(self, include_password: bool = True) -> str:
        return str(self._real.as_uri(include_password=include_password))

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def connect(self) -> None:
        outcome = FakeConnection.outcomes.pop(0)
        if outcome is not None:
            raise outcome


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> type[FakeConnection]:
    def declare(connection: Any, settings: WorkerSettings) -> None:
        FakeConnection.declared += 1

    FakeConnection.declared = 0
    monkeypatch.setattr(worker.preflight, "Connection", FakeConnection)
    monkeypatch.setattr(worker.preflight, "declare_topology", declare)
    return FakeConnection


def test_given_a_broker_that_answers_later_then_the_check_retries_with_growing_waits(
    broker: type[FakeConnection],
) -> None:
    broker.outcomes = [ConnectionRefusedError(111, "refused"), OSError("no route"), None]
    waits: list[float] = []
    check_broker(WorkerSettings(broker_url=BROKER), sleep=waits.append)
    assert waits == [1.0, 2.0] and broker.declared == 1


def test_given_a_fatal_answer_then_the_check_fails_at_once_with_what_to_fix(
    broker: type[FakeConnection],
) -> None:
    broker.outcomes = [amqp.exceptions.AccessRefused("Login was refused")]
    waits: list[float] = []
    with pytest.raises(ConfigError, match="refused the login of user 'erp'"):
        check_broker(WorkerSettings(broker_url=BROKER), sleep=waits.append)
    assert waits == []
