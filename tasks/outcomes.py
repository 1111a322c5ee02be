"""The small values passed between the request handler, the executor and the operations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.messages import Result
from worker.transport import ApiResponse


@dataclass(frozen=True)
class Processed:
    """The result to publish, its serialized body, and whether an earlier delivery stored it."""

    result: Result
    body: bytes
    replayed: bool = False


@dataclass(frozen=True)
class Answer:
    """What a successful operation produced, before it becomes a `Result`."""

    http_status: int | None
    data: Any
    attempts: int

    @classmethod
    def from_response(cls, response: ApiResponse) -> Answer:
        """The answer carried by a Hypatos response."""
        return cls(response.status, response.decoded(), response.attempts)


class Deferral(Exception):
    """Raised when a transient failure should be retried from the broker after `delay_s`."""

    def __init__(self, delay_s: float, attempts: int, code: str) -> None:
        super().__init__(f"retry in {delay_s:.1f} s after {code}")
        self.delay_s = delay_s
        self.attempts = attempts
        self.code = code
