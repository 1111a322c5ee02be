"""`tasks.handle.handle_request`: one delivery in, exactly one confirmed publish out, then how to settle.

The real handler and `worker.publisher.Publisher` run in process; only the broker's channel is a
stand-in (`RecordingChannel`) that keeps each publish or fails it as a broker going away would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiormq
from kombu.transport.native_delayed_delivery import calculate_routing_key

from tests.support.inprocess import WORKERS_USER, InProcessWorker
from worker import constants, metrics
from worker.consumer import Settle
from worker.publisher import DELAY_EXCHANGE

Build = Callable[..., InProcessWorker]

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def request(request_id: str = "r1", **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "connection": "main", "operation": "documentsList", **fields}


def sample(counter: Any, *labels: str) -> float:
    """The current value of a Prometheus counter (with `labels`)."""
    return float((counter.labels(*labels) if labels else counter)._value.get())


def test_given_a_body_that_is_not_json_then_it_is_dead_lettered_and_acknowledged(in_process: Build) -> None:
    worker = in_process()
    settle = worker.handle(b"\xff not json", correlation_id="c-1", reply_to="my-replies")
    dead = worker.channel.to(worker.settings.dead_letter_queue)
    assert settle is Settle.ACK and len(worker.channel.published) == 1
    assert dead[0].body == b"\xff not json" and dead[0].properties.correlation_id == "c-1"
    assert "not valid UTF-8 JSON" in dead[0].headers[constants.DEAD_REASON_HEADER]
    assert dead[0].headers[constants.DEAD_SOURCE_HEADER] == worker.settings.request_queue
    assert dead[0].properties.content_type == "application/octet-stream"


def test_given_a_request_without_an_id_then_it_is_dead_lettered_with_the_reason(in_process: Build) -> None:
    worker = in_process()
    worker.handle({"connection": "main", "operation": "documentsList"}, content_type="application/json")
    dead = worker.channel.to(worker.settings.dead_letter_queue)
    assert "`id` must be a string" in dead[0].headers[constants.DEAD_REASON_HEADER]
    assert dead[0].properties.content_type == "application/json"


def test_given_the_broker_refusing_the_dead_letter_then_the_message_is_requeued(in_process: Build) -> None:
    worker = in_process()
    worker.channel.failure = aiormq.exceptions.ChannelInvalidStateError("closed")
    assert worker.handle(b"[]") is Settle.REQUEUE


def test_given_a_request_then_its_result_is_published_with_headers_and_correlation_id(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    before = sample(metrics.REQUESTS, "documentsList", "succeeded", "")
    settle = worker.handle(request(), correlation_id="c-7", headers={"traceparent": TRACE})
    [published] = worker.channel.published
    assert settle is Settle.ACK and published.routing_key == worker.settings.result_queue
    assert published.exchange == "" and published.properties.delivery_mode == 2
    assert published.properties.correlation_id == "c-7"
    assert published.headers == {
        constants.REQUEST_ID_HEADER: "r1",
        constants.STATUS_HEADER: "succeeded",
        constants.TRACEPARENT_HEADER: TRACE,
    }
    assert published.json()["status"] == "succeeded"
    assert sample(metrics.REQUESTS, "documentsList", "succeeded", "") == before + 1


def test_given_reply_to_then_the_result_goes_to_that_queue(in_process: Build) -> None:
    worker = in_process()
    worker.handle(request(), reply_to="erp.replies")
    assert [p.routing_key for p in worker.channel.published] == ["erp.replies"]


def test_given_the_same_request_again_then_the_stored_result_is_published_marked_replayed(
    in_process: Build,
) -> None:
    worker = in_process()
    replayed_before = sample(metrics.REPLAYED)
    worker.handle(request())
    worker.handle(request())
    first, second = worker.channel.published
    assert first.body == second.body
    assert (
        constants.REPLAYED_HEADER not in first.headers and second.headers[constants.REPLAYED_HEADER] is True
    )
    assert sample(metrics.REPLAYED) == replayed_before + 1


def test_given_a_reply_to_queue_that_does_not_exist_then_the_result_is_dead_lettered(
    in_process: Build,
) -> None:
    worker = in_process()
    worker.channel.unroutable = {"gone.replies"}
    unroutable_before = sample(metrics.RESULTS_UNROUTABLE)
    settle = worker.handle(request(), reply_to="gone.replies", correlation_id="c-9")
    [dead] = worker.channel.published
    assert settle is Settle.ACK and dead.routing_key == worker.settings.dead_letter_queue
    assert "no queue named 'gone.replies'" in dead.headers[constants.DEAD_REASON_HEADER]
    assert dead.headers[constants.DEAD_SOURCE_HEADER] == "gone.replies"
    assert dead.headers[constants.REQUEST_ID_HEADER] == "r1" and dead.properties.correlation_id == "c-9"
    assert sample(metrics.RESULTS_UNROUTABLE) == unroutable_before + 1


def test_given_the_broker_refusing_the_result_then_the_request_is_requeued(in_process: Build) -> None:
    worker = in_process()
    worker.channel.failure = aiormq.exceptions.ConnectionClosed(320, "broker going away")
    assert worker.handle(request()) is Settle.REQUEUE


def test_given_a_reply_to_naming_an_internal_queue_then_invalid_request_goes_to_the_result_queue(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    worker.handle(request(), reply_to=worker.settings.request_queue)
    [published] = worker.channel.published
    result = published.json()
    assert published.routing_key == worker.settings.result_queue
    assert result["error"]["code"] == "invalid_request"
    assert result["error"]["details"] == [
        {
            "field": "reply_to",
            "message": f"may not name the service's own queue {worker.settings.request_queue!r}",
        }
    ]


def test_given_a_transient_failure_then_the_request_is_deferred_through_the_delay_chain(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(error_rate=1.0, error_statuses=[503])
    worker = in_process(call_attempts=2)
    deferred_before = sample(metrics.DEFERRED, "server_error")
    body = json.dumps(request()).encode()
    settle = worker.handle(body, correlation_id="c-3", reply_to="erp.replies", user_id="erp")
    [deferred] = worker.channel.published
    *levels, queue = deferred.routing_key.split(".", 28)  # kombu's 28 binary delay levels, then the queue
    assert settle is Settle.ACK and deferred.exchange == DELAY_EXCHANGE and deferred.body == body
    assert queue == worker.settings.request_queue
    seconds = int("".join(levels), 2)
    assert deferred.routing_key == calculate_routing_key(seconds, worker.settings.request_queue)
    assert 1 <= seconds <= worker.settings.broker_wait_max_s
    assert deferred.properties.user_id == WORKERS_USER
    assert deferred.properties.reply_to == "erp.replies" and deferred.properties.correlation_id == "c-3"
    headers = deferred.headers
    assert headers[constants.ATTEMPTS_HEADER] == 2 and headers[constants.DEFERRALS_HEADER] == 1
    assert headers[constants.PRODUCER_HEADER] == "erp"
    assert time.time() - 60 < headers[constants.FIRST_RECEIVED_HEADER] / 1000 <= time.time()  # milliseconds
    assert sample(metrics.DEFERRED, "server_error") == deferred_before + 1


def test_given_a_deferred_copy_coming_back_then_its_counters_carry_on(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(error_rate=1.0, error_statuses=[503])
    worker = in_process(call_attempts=2, request_attempts=3)
    worker.handle(request())
    [deferred] = worker.channel.published
    worker.handle(deferred.body, user_id=WORKERS_USER, headers=deferred.headers)
    final = worker.channel.published[-1].json()
    assert final["status"] == "failed" and final["attempts"] == 4 and final["error"]["retryable"] is True


def test_given_the_broker_refusing_the_deferral_then_the_request_is_requeued(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    worker.hold(request())  # another attempt runs: this delivery is deferred
    worker.channel.failure = aiormq.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]
    assert worker.handle(request()) is Settle.REQUEUE


def test_given_an_unknown_operation_then_its_metrics_label_is_unknown(in_process: Build) -> None:
    worker = in_process()
    before = sample(metrics.REQUESTS, "unknown", "failed", "unknown_operation")
    worker.handle(request(operation="noSuchOperation-" + "x" * 40))
    assert sample(metrics.REQUESTS, "unknown", "failed", "unknown_operation") == before + 1
