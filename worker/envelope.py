"""What travels with a request besides its body: where the answer goes, who sent it, what it used up.

An `Envelope` is read once from the AMQP message (`Envelope.from_message`) and written once when a
request goes back to the broker to be retried later (`Envelope.deferred_headers`); nothing else
builds or copies its fields.

The delivery counters (first received, HTTP attempts and deferrals so far) and the original producer
are carried in ``x-hypatos-*`` headers of a deferred request.  Those headers are trusted only on a
message that the workers published themselves, which RabbitMQ proves: it checks the ``user_id``
property against the user that published the message, so a producer cannot set ``user_id`` to the
workers' user.  On any other message the headers are ignored and the counters start afresh, so a
producer cannot pose as another producer or reset a request's retry budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from worker import constants


def _number(headers: Mapping[str, Any], name: str, default: float) -> float:
    value = headers.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return max(float(value), 0.0)


#: W3C trace context ``traceparent``: version, trace id, parent id, flags (later versions may append).
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-zA-Z._-]{0,64})?")


def _traceparent(value: Any) -> str | None:
    """A well-formed ``traceparent`` header, else None (the W3C rule: ignore what does not parse)."""
    text = _text(value, 128)
    return text if text is not None and _TRACEPARENT.fullmatch(text) else None


def _text(value: Any, limit: int = 255) -> str | None:
    """An AMQP short string property as text, or None when absent, empty or unusable."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return value


@dataclass(frozen=True)
class Envelope:
    """One request's routing, sender and retry counters; see the module docstring."""

    #: Queue the result goes to (default exchange); None means the result queue.
    reply_to: str | None = None
    correlation_id: str | None = None
    #: The broker user that published the request, as validated by RabbitMQ; None when not given.
    producer: str | None = None
    #: When a worker first received the request (unix time).
    first_received_at: float = 0.0
    #: HTTP calls made by earlier deliveries.
    attempts_before: int = 0
    #: Times the request went back to the broker to wait.
    deferrals: int = 0
    #: W3C trace context of the request, passed on to logs and the result.
    traceparent: str | None = None

    @classmethod
    def from_message(cls, properties: Any, *, workers_user: str | None, now: float | None = None) -> Envelope:
        """The envelope of a delivered message (aiormq/pamqp ``Basic.Properties``)."""
        headers: Mapping[str, Any] = getattr(properties, "headers", None) or {}
        user_id = _text(getattr(properties, "user_id", None))
        received = time.time() if now is None else now
        envelope = cls(
            reply_to=_text(getattr(properties, "reply_to", None)),
            correlation_id=_text(getattr(properties, "correlation_id", None)),
            producer=user_id,
            first_received_at=received,
            traceparent=_traceparent(headers.get(constants.TRACEPARENT_HEADER)),
        )
        if workers_user is None or user_id != workers_user or constants.FIRST_RECEIVED_HEADER not in headers:
            return envelope
        return replace(
            envelope,
            producer=_text(headers.get(constants.PRODUCER_HEADER)),
            first_received_at=min(
                _number(headers, constants.FIRST_RECEIVED_HEADER, received * 1000) / 1000, received
            ),
            attempts_before=int(_number(headers, constants.ATTEMPTS_HEADER, 0)),
            deferrals=int(_number(headers, constants.DEFERRALS_HEADER, 0)),
        )

    def deferred(self, attempts: int) -> Envelope:
        """The envelope of this request's next delivery, after `attempts` HTTP calls in all."""
        return replace(self, attempts_before=attempts, deferrals=self.deferrals + 1)

    def deferred_headers(self) -> dict[str, Any]:
        """Headers that carry the counters and the producer to the next delivery."""
        headers: dict[str, Any] = {
            constants.FIRST_RECEIVED_HEADER: int(self.first_received_at * 1000),  # integers suit every client
            constants.ATTEMPTS_HEADER: self.attempts_before,
            constants.DEFERRALS_HEADER: self.deferrals,
        }
        if self.producer is not None:
            headers[constants.PRODUCER_HEADER] = self.producer
        if self.traceparent is not None:
            headers[constants.TRACEPARENT_HEADER] = self.traceparent
        return headers
