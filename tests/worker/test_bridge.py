"""The bridge's pure pieces: what makes a message answerable, and which confirm settles which request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from worker.bridge import HANDOFF_HEADER, ConfirmTracker, Undeliverable, decode_request


@dataclass
class FakeMessage:
    """Records what the tracker did with a request."""

    name: str
    outcome: list[str] = field(default_factory=list)

    def ack(self) -> None:
        self.outcome.append("ack")

    def requeue(self) -> None:
        self.outcome.append("requeue")


@dataclass
class Returned:
    headers: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1]", "not an object"),
        (b'{"connection": "a"}', "`id`"),
        (b'{"id": 7}', "`id`"),
        (b'{"id": ""}', "`id`"),
        ('{"id": "' + "x" * 129 + '"}', "`id`"),
    ],
)
def test_given_a_message_without_a_usable_id_then_it_is_undeliverable(body: bytes | str, reason: str) -> None:
    with pytest.raises(Undeliverable, match=reason):
        decode_request(body)


def test_given_an_object_with_an_id_then_it_is_handed_on_whatever_else_it_holds() -> None:
    assert decode_request(b'{"id": "r1", "operation": 5}') == {"id": "r1", "operation": 5}


def _tracked(count: int) -> tuple[ConfirmTracker, list[FakeMessage]]:
    tracker, messages = ConfirmTracker(), [FakeMessage(f"m{i}") for i in range(1, count + 1)]
    for message in messages:
        tracker.published(message)  # type: ignore[arg-type]
    return tracker, messages


def test_given_single_and_multiple_confirms_then_exactly_the_covered_requests_are_acknowledged() -> None:
    tracker, messages = _tracked(5)
    tracker.on_ack(2)
    assert [m.outcome for m in messages] == [[], ["ack"], [], [], []]
    tracker.on_ack(4, multiple=True)
    assert [m.outcome for m in messages] == [["ack"], ["ack"], ["ack"], ["ack"], []]
    assert len(tracker) == 1


def test_given_a_negative_confirm_then_the_requests_go_back_to_the_queue() -> None:
    tracker, messages = _tracked(3)
    tracker.on_nack(2, multiple=True)
    tracker.on_ack(3)
    assert [m.outcome for m in messages] == [["requeue"], ["requeue"], ["ack"]]


def test_given_an_unroutable_publish_then_its_request_is_requeued_not_acknowledged() -> None:
    tracker, messages = _tracked(3)
    tracker.on_return(Exception("NO_ROUTE"), "hypatos.tasks", "hypatos.tasks", Returned({HANDOFF_HEADER: 2}))
    tracker.on_ack(3, multiple=True)
    assert [m.outcome for m in messages] == [["ack"], ["requeue"], ["ack"]]


def test_the_next_sequence_is_what_the_next_publish_will_be_numbered() -> None:
    tracker, _ = _tracked(3)
    assert tracker.next_sequence() == 4
    tracker.forget()
    assert len(tracker) == 0
