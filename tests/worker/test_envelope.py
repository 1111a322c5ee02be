"""The envelope: read once from a message; its counters trusted only when the workers published it."""

from __future__ import annotations

from pamqp.commands import Basic

from worker.envelope import Envelope

WORKERS = "hypatos-worker"


def props(**fields: object) -> Basic.Properties:
    return Basic.Properties(**fields)  # type: ignore[arg-type]


def test_a_producer_message_starts_afresh_whatever_its_headers_say() -> None:
    forged = {
        "x-hypatos-first-received-at-ms": 1000,
        "x-hypatos-attempts": 0,
        "x-hypatos-deferrals": 0,
        "x-hypatos-producer": "someone-else",
    }
    envelope = Envelope.from_message(
        props(user_id="erp", reply_to="mine", correlation_id="c1", headers=forged),
        workers_user=WORKERS,
        now=100.0,
    )
    assert envelope == Envelope(reply_to="mine", correlation_id="c1", producer="erp", first_received_at=100.0)


def test_a_deferred_copy_published_by_the_workers_keeps_its_counters_and_producer() -> None:
    first = Envelope(
        reply_to="r",
        correlation_id="c",
        producer="erp",
        first_received_at=50.0,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    headers = first.deferred(attempts=3).deferred_headers()
    again = Envelope.from_message(
        props(user_id=WORKERS, reply_to="r", correlation_id="c", headers=headers),
        workers_user=WORKERS,
        now=90.0,
    )
    assert again == Envelope(
        reply_to="r",
        correlation_id="c",
        producer="erp",
        first_received_at=50.0,
        attempts_before=3,
        deferrals=1,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


def test_counters_cannot_be_negative_or_in_the_future() -> None:
    headers = {
        "x-hypatos-first-received-at-ms": 10_000_000,
        "x-hypatos-attempts": -5,
        "x-hypatos-deferrals": "x",
    }
    envelope = Envelope.from_message(props(user_id=WORKERS, headers=headers), workers_user=WORKERS, now=100.0)
    assert (envelope.first_received_at, envelope.attempts_before, envelope.deferrals) == (100.0, 0, 0)


def test_a_well_formed_traceparent_is_kept_and_anything_else_ignored() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for value, expected in [(good, good), ("not-a-trace", None), (good.upper(), None), ("x" * 500, None)]:
        envelope = Envelope.from_message(props(headers={"traceparent": value}), workers_user=WORKERS)
        assert envelope.traceparent == expected
