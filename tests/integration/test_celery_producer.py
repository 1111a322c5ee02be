"""A Celery-based system submits requests the way the README ("From Celery") shows: the JSON request
published with its app's producer pool, confirmed and mandatory, the result read from the queue."""

from __future__ import annotations

import json
from typing import Any

import amqp.exceptions as amqp_errors
import pytest
from celery import Celery
from kombu import Queue

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


class NotDelivered(Exception):
    """No queue took the request: nothing was sent."""


def submit(app: Celery, exchange: str, request: dict[str, Any], *, reply_to: str | None = None) -> None:
    """The README's `submit`, with the request exchange's name as a parameter."""
    returned: list[Any] = []

    def on_return(*args: Any) -> None:
        returned.append(args)

    with app.producer_pool.acquire(block=True) as producer:
        events = producer.channel.events["basic_return"]
        events.add(on_return)
        try:
            producer.publish(
                json.dumps(request).encode(),
                exchange=exchange,
                routing_key="",
                content_type="application/json",
                delivery_mode=2,
                mandatory=True,
                retry=True,
                correlation_id=request["id"],
                reply_to=reply_to,
            )
        finally:
            events.discard(on_return)
    if returned:
        raise NotDelivered(f"no queue took request {request['id']}")


def test_given_a_celery_app_then_its_producer_pool_submits_requests_and_a_missing_queue_raises(
    fleet: WorkerFleet, broker_url: str, emulator, amqp: AmqpTestClient
) -> None:
    # Given: a Celery app of an upstream system (not the worker's), and one worker
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    app = Celery("upstream", broker=broker_url)
    app.conf.broker_transport_options = {"confirm_publish": True}
    requests = fleet.env["HYPATOS_REQUEST_QUEUE"]  # the request exchange has the queue's name
    unbound = f"{requests}.unbound"
    amqp.channel.exchange_declare(unbound, exchange_type="fanout", auto_delete=False)
    try:
        # When: it submits one request, one to an exchange no queue is bound to, one to an exchange
        # that does not exist, and one more
        submit(
            app,
            requests,
            {
                "id": "c-1",
                "connection": "main",
                "operation": "documentsGetById",
                "params": {"id": document["id"]},
            },
        )
        with pytest.raises(NotDelivered):
            submit(app, unbound, {"id": "c-x", "connection": "main", "operation": "companiesList"})
        with pytest.raises(amqp_errors.NotFound):
            submit(
                app, f"{requests}.missing", {"id": "c-y", "connection": "main", "operation": "companiesList"}
            )
        submit(app, requests, {"id": "c-2", "connection": "main", "operation": "companiesList"})
        # Then: both sent requests are answered in the result queue
        results = {}
        with (
            app.connection_for_read() as connection,
            connection.SimpleQueue(Queue(fleet.env["HYPATOS_RESULT_QUEUE"], no_declare=True)) as queue,
        ):
            for _ in range(2):
                message = queue.get(timeout=60)
                result = json.loads(message.body)
                message.ack()
                results[result["id"]] = result
    finally:
        app.close()
        amqp.channel.exchange_delete(unbound)
    assert set(results) == {"c-1", "c-2"}
    assert all(result["status"] == "succeeded" for result in results.values()), results
