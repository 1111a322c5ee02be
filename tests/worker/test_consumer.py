"""The consumer's parts that need no broker: batched acknowledgements, deliveries, settling, reconnecting.

`Acknowledger` runs against a channel stand-in that records the ``basic.ack``/``basic.nack`` frames.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiormq
from pamqp.commands import Basic

from worker import metrics
from worker.consumer import Acknowledger, Delivery, RequestConsumer, Settle
from worker.settings import WorkerSettings

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"


@dataclass
class AckChannel:
    """Records settlement frames as (kind, tag, multiple); `failing` makes each frame fail when sent."""

    is_closed: bool = False
    failing: bool = False
    frames: list[tuple[str, int, bool]] = field(default_factory=list)

    async def _sent(self) -> None:
        if self.failing:
            raise aiormq.exceptions.ChannelInvalidStateError("closed meanwhile")

    def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> Any:
        assert wait is False
        self.frames.append(("ack", tag, multiple))
        return self._sent()

    def basic_nack(self, tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True) -> Any:
        assert wait is False and requeue is True
        self.frames.append(("nack", tag, multiple))
        return self._sent()


def settle(channel: AckChannel, delivered: list[int], settled: list[tuple[int | None, Settle]]) -> None:
    """Deliver `delivered`, settle `settled` in one loop iteration, and let the frames go out."""

    async def run() -> None:
        acks = Acknowledger(channel)  # type: ignore[arg-type]
        for tag in delivered:
            acks.delivered(tag)
        for tag, how in settled:
            acks.settle(tag, how)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(run())


def test_the_acknowledged_front_goes_out_as_one_multiple_ack_and_the_rest_singly() -> None:
    channel = AckChannel()
    settle(channel, [1, 2, 3, 4, 5], [(2, Settle.ACK), (1, Settle.ACK), (5, Settle.ACK), (4, Settle.REQUEUE)])
    assert channel.frames == [("ack", 2, True), ("nack", 4, False), ("ack", 5, False)]


def test_a_requeued_delivery_at_the_front_stops_the_batch() -> None:
    channel = AckChannel()
    settle(channel, [1, 2], [(1, Settle.REQUEUE), (2, Settle.ACK)])
    assert channel.frames == [("nack", 1, False), ("ack", 2, False)]


def test_a_delivery_still_running_holds_back_only_itself() -> None:
    async def run() -> list[tuple[str, int, bool]]:
        channel = AckChannel()
        acks = Acknowledger(channel)  # type: ignore[arg-type]
        for tag in (1, 2, 3):
            acks.delivered(tag)
        acks.settle(2, Settle.ACK)
        await asyncio.sleep(0)
        acks.settle(1, Settle.ACK)
        acks.settle(3, Settle.ACK)
        await asyncio.sleep(0)
        return channel.frames

    assert asyncio.run(run()) == [("ack", 2, False), ("ack", 3, True)]


def test_draining_sends_what_is_settled_at_once_and_waits_for_it() -> None:
    async def run() -> list[tuple[str, int, bool]]:
        channel = AckChannel()
        acks = Acknowledger(channel)  # type: ignore[arg-type]
        for tag in (1, 2, 3):
            acks.delivered(tag)
        acks.settle(1, Settle.ACK)
        acks.settle(3, Settle.ACK)
        await acks.drain()  # no loop iteration in between: the stop path must not lose them
        return channel.frames

    assert asyncio.run(run()) == [("ack", 1, True), ("ack", 3, False)]


def test_given_a_closed_channel_then_nothing_is_acknowledged() -> None:
    channel = AckChannel(is_closed=True)
    settle(channel, [1, 2], [(1, Settle.ACK), (2, Settle.ACK)])
    assert channel.frames == []


def test_unknown_or_missing_tags_are_ignored() -> None:
    channel = AckChannel()
    settle(channel, [1, None], [(None, Settle.ACK), (7, Settle.ACK)])  # type: ignore[list-item]
    assert channel.frames == []


def test_given_frames_failing_to_go_out_then_the_failure_is_only_logged() -> None:
    channel = AckChannel(failing=True)
    settle(channel, [1, 2], [(1, Settle.ACK), (2, Settle.REQUEUE)])
    assert channel.frames == [("ack", 1, True), ("nack", 2, False)]


def message(tag: int, **properties: Any) -> Any:
    """A delivered message as aiormq hands it over."""
    return SimpleNamespace(
        body=b'{"id": "r1"}',
        delivery_tag=tag,
        header=SimpleNamespace(properties=Basic.Properties(**properties)),
    )


def consumer(handler: Any) -> RequestConsumer:
    return RequestConsumer(WorkerSettings(broker_url=UNREACHABLE_BROKER), handler, workers_user="workers")


def test_a_delivery_carries_the_envelope_and_the_brokers_delivery_count() -> None:
    requests = consumer(None)
    counted = requests._delivery(message(1, headers={"x-delivery-count": 3}, reply_to="me", user_id="erp"))
    uncounted = requests._delivery(message(2, headers={"x-delivery-count": True}))
    assert counted.delivery_count == 3 and counted.envelope.reply_to == "me"
    assert counted.envelope.producer == "erp" and uncounted.delivery_count == 0


def test_given_a_handler_that_crashes_then_the_request_is_requeued() -> None:
    async def crash(delivery: Delivery, publisher: Any) -> Settle:
        raise RuntimeError("bug")

    async def run() -> list[tuple[str, int, bool]]:
        channel = AckChannel()
        acks = Acknowledger(channel)  # type: ignore[arg-type]
        acks.delivered(1)
        in_flight = metrics.IN_FLIGHT._value.get()
        await consumer(crash)._settle(message(1), acks, None)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert metrics.IN_FLIGHT._value.get() == in_flight
        return channel.frames

    assert asyncio.run(run()) == [("nack", 1, False)]


def test_given_a_handled_request_then_it_is_acknowledged() -> None:
    async def handled(delivery: Delivery, publisher: Any) -> Settle:
        return Settle.ACK

    async def run() -> list[tuple[str, int, bool]]:
        channel = AckChannel()
        acks = Acknowledger(channel)  # type: ignore[arg-type]
        acks.delivered(1)
        await consumer(handled)._settle(message(1), acks, None)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return channel.frames

    assert asyncio.run(run()) == [("ack", 1, True)]


def test_given_no_broker_then_the_consumer_keeps_trying_until_stopped() -> None:
    async def run() -> tuple[bool, bool, int]:
        requests = consumer(None)
        running = asyncio.create_task(requests.run())
        await asyncio.sleep(0.2)  # the first connection attempt was refused; it waits to try again
        finished = await requests.stop(timeout_s=1)
        await asyncio.wait_for(running, timeout=5)
        return finished, requests.consuming, requests.in_flight

    assert asyncio.run(run()) == (True, False, 0)
